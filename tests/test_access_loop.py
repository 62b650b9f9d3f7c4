"""The whole loop of issue 14, through the API only, as a requester and a community's steward:
refused -> access request -> review -> agreement with a duty -> grant -> permits with the rule's
obligations and labels -> the duty overdue -> refused, naming it -> the duty met -> permitted.
And the other ending: nobody decides by the deadline, and the request is refused, saying so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api_helpers import Clock, assert_error, assert_ok, in_days
from governance_helpers import (
    APPROVAL_RULE,
    GOVERNMENT,
    NATION_A,
    PROVIDER,
    RESEARCHER,
    Governance,
    reason_codes,
    seeded_governance,
)

from consent_service.container import EXTENSION
from consent_service.services import access_requests as cases


def _begin(gov: Governance) -> None:
    gov.consent()
    gov.rule(base=APPROVAL_RULE)
    gov.world.headers(GOVERNMENT, "authorize")
    gov.world.headers(PROVIDER, "authorize")


governance_seeds, seed, database_start, gov = seeded_governance("access-loop", also=_begin)

QUEUE = f"/v1/communities/{NATION_A}/access-requests"
AGREEMENTS = f"/v1/communities/{NATION_A}/agreements"


def _request(rule_id: str) -> dict[str, Any]:
    return {
        "community": NATION_A,
        "rule_id": rule_id,
        "purposes": ["research"],
        "data_categories": ["health"],
        "protocol": "We count diabetes cases by region, aggregated, cells of 10 or more.",
        "ethics_reference": "REB-2026-041",
        "benefit_plan": "Results returned to the council first; a community report in plain language.",
        "requested_until": in_days(180),
    }


def _told_rule(answer: dict[str, Any]) -> str:
    assert answer["decision"] == "deny" and reason_codes(answer) == ["approval_required"]
    [rule_id] = [reason["rule_id"] for reason in answer["reasons"] if "rule_id" in reason]
    return str(rule_id)


def test_refused_request_review_agreement_duty_and_back(gov: Governance, monkeypatch) -> None:
    clock = Clock(monkeypatch)
    researcher = gov.world.headers(RESEARCHER, "authorize")

    # refused, and told which rule
    rule_id = _told_rule(gov.ask())

    # the requester asks the community
    filed = assert_ok(gov.client.post("/v1/access-requests", headers=researcher, json=_request(rule_id)), 201)
    assert filed["status"] == "pending" and filed["decide_by"] > filed["filed_at"]

    # the stewards see it in their queue, waiting
    waiting = assert_ok(gov.client.get(QUEUE, headers=gov.steward(), query_string={"status": "pending"}))
    assert [r["id"] for r in waiting["access_requests"]] == [filed["id"]]

    # they record the agreement the grant rests on, with the duty it carries
    agreement = assert_ok(
        gov.client.post(
            AGREEMENTS,
            headers=gov.steward(),
            json={
                "title": "Diabetes study with the university",
                "parties": [RESEARCHER],
                "legal_authority": "Band Council Resolution 2026-14",
                "review_at": in_days(60),
                "approvals": [],
                "duties": [
                    {
                        "kind": "return_results",
                        "description": "Return the aggregate tables to the council",
                        "due_at": in_days(10),
                        "owed_by": RESEARCHER,
                    }
                ],
            },
        ),
        201,
    )
    [duty] = agreement["duties"]

    # and grant the request under it
    decided = assert_ok(
        gov.client.post(
            f"/v1/access-requests/{filed['id']}/decision",
            headers=gov.steward(),
            json={"decision": "grant", "note": "Council vote of 2026-11-20", "agreement_id": agreement["id"]},
        )
    )
    approval = decided["approval"]
    assert approval["agreement_id"] == agreement["id"] and approval["access_request_id"] == filed["id"]
    seen = assert_ok(gov.client.get(f"/v1/access-requests/{filed['id']}", headers=researcher))
    assert (seen["status"], seen["approval_id"], seen["note"]) == (
        "granted",
        approval["id"],
        "Council vote of 2026-11-20",
    )

    # permitted, with the rule's obligations and labels
    permitted = gov.ask()
    assert permitted["decision"] == "permit"
    told = repr(permitted["obligations"])
    assert "aggregate_only" in told and "min_cell_size" in told
    assert "TK Non-Commercial" in repr(permitted)

    # the duty falls due unmet: refused, naming it
    clock.advance(timedelta(days=11))
    held = gov.ask()
    assert held["decision"] == "deny" and reason_codes(held) == ["duty_overdue"]
    assert "Return the aggregate tables to the council" in held["reasons"][0]["message"]

    # the steward marks it met: permitted again
    assert_ok(
        gov.client.post(
            f"{AGREEMENTS}/{agreement['id']}/duties/{duty['id']}/met",
            headers=gov.steward(),
            json={"note": "Tables received"},
        )
    )
    assert gov.ask()["decision"] == "permit"


def test_no_decision_by_the_deadline_ends_in_refusal(gov: Governance, monkeypatch) -> None:
    clock = Clock(monkeypatch)
    government = gov.world.headers(GOVERNMENT, "authorize")
    assert_ok(gov.client.patch(f"/v1/communities/{NATION_A}", headers=gov.steward(), json={"review_days": 7}))
    rule_id = _told_rule(gov.ask(requester=GOVERNMENT))
    filed = assert_ok(gov.client.post("/v1/access-requests", headers=government, json=_request(rule_id)), 201)

    clock.advance(timedelta(days=7, minutes=1))
    seen = assert_ok(gov.client.get(f"/v1/access-requests/{filed['id']}", headers=government))
    assert (seen["status"], seen["refusal_reason"]) == ("refused", "no decision by deadline")
    late = gov.client.post(
        f"/v1/access-requests/{filed['id']}/decision",
        headers=gov.steward(),
        json={"decision": "grant", "note": "sorry, late"},
    )
    assert_error(late, 409, "conflict")
    assert reason_codes(gov.ask(requester=GOVERNMENT)) == ["approval_required"]

    # the daily command writes the refusal down; the requester reads the same
    services = gov.client.application.extensions[EXTENSION]
    [expired] = cases.expire(services, now=clock.now())
    assert (expired.id, expired.status) == (filed["id"], "refused")
    again = assert_ok(gov.client.get(f"/v1/access-requests/{filed['id']}", headers=government))
    assert (again["status"], again["refusal_reason"]) == ("refused", "no decision by deadline")
