"""The community's whole loop (issue 14 item 8), through the API only, on every backend:

refused -> the requester asks the community -> a steward reviews and grants -> an agreement
with a duty covers the approval -> permits carry the rule's obligations and Local Contexts
labels -> the duty falls due unmet -> refused, naming the duty -> the steward marks it met ->
permitted again. And a request nobody decides by its deadline ends refused, and says so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from api_helpers import Clock, assert_error, assert_ok
from governance_helpers import (
    APPROVAL_RULE,
    NATION_A,
    RESEARCHER,
    Governance,
    reason_codes,
    seeded_governance,
)

governance_seeds, seed, database_start, gov = seeded_governance("governance-loop", also=lambda g: g.consent())


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


def file_request(gov: Governance, clock: Clock, rule_id: str) -> dict[str, Any]:
    return assert_ok(
        gov.client.post(
            "/v1/access-requests",
            headers=gov.world.headers(RESEARCHER, "authorize"),
            json={
                "community": NATION_A,
                "rule_id": rule_id,
                "purposes": ["research"],
                "data_categories": ["health"],
                "protocol": "Diabetes outcomes across the Nation's clinics, aggregate tables only",
                "ethics_reference": "REB-2026-117",
                "benefit_plan": "Results returned to the council before publication",
                "requested_until": (clock.now() + timedelta(days=365)).isoformat(),
            },
        ),
        201,
    )


def test_refused_asked_granted_bound_by_a_duty_held_and_released(gov: Governance, clock: Clock) -> None:
    rule = gov.rule(NATION_A, APPROVAL_RULE)
    refused = gov.ask()
    assert refused["decision"] == "deny" and reason_codes(refused) == ["approval_required"]
    assert refused["reasons"][0]["rule_id"] == rule["id"]

    request = file_request(gov, clock, rule["id"])
    assert request["status"] == "pending" and request["decide_by"] > request["filed_at"]
    queue = assert_ok(gov.client.get(f"/v1/communities/{NATION_A}/access-requests", headers=gov.steward()))
    assert [r["id"] for r in queue["access_requests"]] == [request["id"]]

    decided = assert_ok(
        gov.client.post(
            f"/v1/access-requests/{request['id']}/decision",
            headers=gov.steward(),
            json={"decision": "grant", "note": "Approved at the council meeting of 12 March"},
        )
    )
    approval = decided["approval"]
    assert decided["access_request"]["status"] == "granted" and approval["access_request_id"] == request["id"]

    agreement = assert_ok(
        gov.client.post(
            f"/v1/communities/{NATION_A}/agreements",
            headers=gov.steward(),
            json={
                "title": "Diabetes outcomes study",
                "parties": [RESEARCHER],
                "legal_authority": "Council resolution 2026-03; OCAP",
                "review_at": (clock.now() + timedelta(days=180)).isoformat(),
                "approvals": [approval["id"]],
                "duties": [
                    {
                        "kind": "return_results",
                        "description": "Return the aggregate tables to the council",
                        "due_at": (clock.now() + timedelta(days=60)).isoformat(),
                        "owed_by": RESEARCHER,
                    }
                ],
            },
        ),
        201,
    )

    permitted = gov.ask()
    assert permitted["decision"] == "permit"
    codes = {o["code"] for o in permitted["obligations"]}
    assert {"aggregate_only", "return_results_to_community", "local_contexts"} <= codes
    (labels,) = [o for o in permitted["obligations"] if o["code"] == "local_contexts"]
    assert set(labels["labels"]) == {"TK Non-Commercial", "BC Consent Verified"}

    clock.advance(timedelta(days=61))
    held = gov.ask()
    assert held["decision"] == "deny" and reason_codes(held) == ["duty_overdue"]
    assert "Return the aggregate tables to the council" in held["reasons"][0]["message"]

    (duty,) = agreement["duties"]
    assert_ok(
        gov.client.post(
            f"/v1/communities/{NATION_A}/agreements/{agreement['id']}/duties/{duty['id']}/met",
            headers=gov.steward(),
            json={"note": "Tables received and discussed at council"},
        )
    )
    assert gov.ask()["decision"] == "permit"

    clock.advance(timedelta(days=120))  # past the review date (day 180), never renewed
    assert reason_codes(gov.ask()) == ["agreement_review_overdue"]


def test_no_decision_by_the_deadline_is_a_refusal_that_says_so(gov: Governance, clock: Clock) -> None:
    rule = gov.rule(NATION_A, APPROVAL_RULE)
    gov.ask()  # refused: the answer names the rule the request may cite
    request = file_request(gov, clock, rule["id"])
    clock.advance(timedelta(days=31))  # the community's default review period is 30 days
    seen = assert_ok(
        gov.client.get(
            f"/v1/access-requests/{request['id']}", headers=gov.world.headers(RESEARCHER, "authorize")
        )
    )
    assert seen["status"] == "refused" and seen["refusal_reason"] == "no decision by deadline"
    late = gov.client.post(
        f"/v1/access-requests/{request['id']}/decision", headers=gov.steward(), json={"decision": "grant"}
    )
    assert_error(late, 409, "conflict")
    assert gov.ask()["decision"] == "deny"
