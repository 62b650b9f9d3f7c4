"""Data access requests (issue 14 item 3): a refused requester asks the community, its stewards
decide by a deadline the community sets, no decision by the deadline is a refusal, and a grant
is the approval that turns the refusal into a permit. Driven through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_helpers import (
    Clock,
    all_rows_as_text,
    assert_error,
    assert_ok,
    body_with,
    in_days,
    json_of,
    without,
)
from governance_helpers import (
    APPROVAL_RULE,
    COUNCIL_A,
    GOVERNMENT,
    NATION_A,
    NATION_B,
    PROVIDER,
    RESEARCHER,
    Governance,
    reason_codes,
    seeded_governance,
)
from sqlalchemy import select
from web_helpers import CHEAP_PASSWORDS, STEWARD_A, STEWARD_B, make_people, post_form, signed_in, text_of

from consent_service.container import EXTENSION
from consent_service.core.wire import AuditTag
from consent_service.services import access_requests as cases
from consent_service.storage.models import AccessRequest, AuditEntry


def _begin(gov: Governance) -> None:
    gov.consent()
    gov.rule(base=APPROVAL_RULE)
    gov.world.headers(GOVERNMENT, "authorize")
    gov.world.headers(PROVIDER, "authorize")
    gov.world.headers(COUNCIL_A, "community:read")
    make_people(gov.world)


governance_seeds, seed, database_start, gov = seeded_governance(
    "access-requests", also=_begin, settings=CHEAP_PASSWORDS
)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, **CHEAP_PASSWORDS}


REQUEST = {
    "community": NATION_A,
    "purposes": ["research"],
    "data_categories": ["health"],
    "protocol": "We count diabetes cases by region, aggregated, cells of 10 or more.",
    "ethics_reference": "REB-2026-041",
    "benefit_plan": "Results returned to the council first; a community report in plain language.",
}


def requester(gov: Governance, org: str = RESEARCHER) -> dict[str, str]:
    return gov.world.headers(org, "authorize")


def refused_rule(gov: Governance) -> str:
    """The rule id a denial told the researcher (it asks about the member, and is refused)."""
    answer = gov.ask()
    assert reason_codes(answer) == ["approval_required"]
    [rule_id] = [reason["rule_id"] for reason in answer["reasons"] if "rule_id" in reason]
    return str(rule_id)


def file(gov: Governance, rule_id: str, status: int = 201, org: str = RESEARCHER, **changes: Any) -> Any:
    body = body_with({**REQUEST, "rule_id": rule_id, "requested_until": in_days(180)}, **changes)
    response = gov.client.post("/v1/access-requests", headers=requester(gov, org), json=body)
    return assert_ok(response, status) if status < 400 else response


def decide(gov: Governance, request_id: str, body: dict[str, Any], headers: Any = None) -> Any:
    return gov.client.post(
        f"/v1/access-requests/{request_id}/decision", headers=headers or gov.steward(), json=body
    )


def read(gov: Governance, request_id: str, org: str = RESEARCHER) -> Any:
    return gov.client.get(f"/v1/access-requests/{request_id}", headers=requester(gov, org))


def queue(gov: Governance, **query: Any) -> list[dict[str, Any]]:
    response = gov.client.get(
        f"/v1/communities/{NATION_A}/access-requests", headers=gov.steward(), query_string=query
    )
    return list(assert_ok(response)["access_requests"])


def services_of(gov: Governance) -> Any:
    return gov.client.application.extensions[EXTENSION]


def entries(gov: Governance, object_id: str) -> list[AuditEntry]:
    with services_of(gov).sessions() as session:
        rows = list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.object_id == object_id).order_by(AuditEntry.seq)
            )
        )
        session.expunge_all()
        return rows


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class TestFiling:
    def test_a_refused_requester_files_and_reads_its_pending_request(self, gov):
        rule_id = refused_rule(gov)
        filed = file(gov, rule_id)
        assert filed["status"] == "pending" and filed["requester"] == RESEARCHER
        assert filed["rule_id"] == rule_id and filed["community"] is None  # Nation A hides its id
        assert parse(filed["decide_by"]) - parse(filed["filed_at"]) == timedelta(days=30)
        assert (filed["closed_at"], filed["approval_id"], filed["refusal_reason"]) == (None, None, None)
        assert assert_ok(read(gov, filed["id"])) == filed
        own = assert_ok(gov.client.get("/v1/access-requests", headers=requester(gov)))
        assert own["access_requests"] == [filed]
        [entry] = entries(gov, filed["id"])
        assert entry.tag == AuditTag.ACCESS_REQUEST_FILED and entry.actor_org == RESEARCHER
        assert entry.payload["rule_id"] == rule_id and entry.payload["community"] == NATION_A

    def test_the_deadline_is_the_communitys_setting(self, gov):
        rule_id = refused_rule(gov)
        changed = assert_ok(
            gov.client.patch(f"/v1/communities/{NATION_A}", headers=gov.steward(), json={"review_days": 7})
        )
        assert changed["review_days"] == 7 and changed["show_community_id"] is False
        filed = file(gov, rule_id)
        assert parse(filed["decide_by"]) - parse(filed["filed_at"]) == timedelta(days=7)

    @pytest.mark.parametrize("days", [0, 366, "soon"])
    def test_a_review_period_out_of_range_is_refused(self, gov, app, days):
        before = all_rows_as_text(app)
        response = gov.client.patch(
            f"/v1/communities/{NATION_A}", headers=gov.steward(), json={"review_days": days}
        )
        assert "review_days" in assert_error(response, 400, "validation_error")["details"]
        assert all_rows_as_text(app) == before

    def test_a_settings_change_must_name_a_setting(self, gov):
        response = gov.client.patch(f"/v1/communities/{NATION_A}", headers=gov.steward(), json={})
        assert_error(response, 400, "validation_error")

    def test_an_end_date_in_the_past_is_refused_naming_the_field(self, gov, app):
        rule_id = refused_rule(gov)
        before = all_rows_as_text(app)
        error = assert_error(file(gov, rule_id, 400, requested_until=in_days(-1)), 400, "validation_error")
        assert set(error["details"]) == {"requested_until"}
        assert all_rows_as_text(app) == before

    def test_a_guessed_community_is_answered_alike_where_the_community_hides_its_id(self, gov):
        """The rule names its community. Where the community hides its id (the default), naming
        the right community, a wrong one or none files the same request and no answer names the
        community: filing cannot confirm which community the person belongs to."""
        rule_id = refused_rule(gov)
        answers = [file(gov, rule_id, community=guess) for guess in (NATION_A, NATION_B, "nation-z", None)]
        assert {a["community"] for a in answers} == {None}
        assert {a["rule_id"] for a in answers} == {rule_id}
        queue = assert_ok(
            gov.client.get(f"/v1/communities/{NATION_A}/access-requests", headers=gov.steward())
        )
        assert {r["id"] for r in queue["access_requests"]} == {a["id"] for a in answers}
        assert all(r["community"] == NATION_A for r in queue["access_requests"])  # its stewards know it

    def test_where_the_community_shows_its_id_a_wrong_one_is_refused_and_the_right_one_named(self, gov, app):
        assert_ok(
            gov.client.patch(
                f"/v1/communities/{NATION_A}", headers=gov.steward(), json={"show_community_id": True}
            )
        )
        rule_id = refused_rule(gov)
        before = all_rows_as_text(app)
        error = assert_error(file(gov, rule_id, 400, community="nation-z"), 400, "validation_error")
        assert set(error["details"]) == {"rule_id"}
        assert all_rows_as_text(app) == before
        assert file(gov, rule_id)["community"] == NATION_A

    @pytest.mark.parametrize("missing", ["protocol", "ethics_reference", "benefit_plan", "requested_until"])
    def test_each_part_of_the_request_is_required(self, gov, missing):
        rule_id = refused_rule(gov)
        error = assert_error(file(gov, rule_id, 400, **without(missing)), 400, "validation_error")
        assert missing in error["details"]

    @pytest.mark.parametrize("field", ["protocol", "ethics_reference", "benefit_plan"])
    def test_a_blank_part_of_the_request_is_refused_naming_it(self, gov, app, field):
        rule_id = refused_rule(gov)
        before = all_rows_as_text(app)
        response = file(gov, rule_id, 400, **{field: "   \n "})
        assert set(assert_error(response, 400, "validation_error")["details"]) == {field}
        assert all_rows_as_text(app) == before

    def test_unknown_codes_are_refused(self, gov):
        rule_id = refused_rule(gov)
        error = assert_error(file(gov, rule_id, 400, purposes=["astrology"]), 400, "unknown_code")
        assert "purposes" in error["details"]

    def test_no_rule_the_requester_was_not_told_can_be_named(self, gov, app):
        """Unknown, another community's, not told to this requester, retired: one identical 400."""
        told = refused_rule(gov)
        other = gov.rule(NATION_B, base=APPROVAL_RULE)["id"]
        never_told = gov.rule(reason="A rule nobody was refused under yet", purposes=["commercial"])["id"]
        only_for_others = gov.rule(requesters=[GOVERNMENT], purposes=["service-planning"])["id"]
        bodies = []
        for rule_id in ("no-such-rule", other, never_told, only_for_others):
            response = file(gov, rule_id, 400)
            error = assert_error(response, 400, "validation_error")
            assert set(error["details"]) == {"rule_id"}
            bodies.append(json_of(response))
        assert all(body == bodies[0] for body in bodies)
        gov.retire({"community": NATION_A, "id": told})
        assert json_of(file(gov, told, 400)) == bodies[0]
        assert not any(r.tag == AuditTag.ACCESS_REQUEST_FILED for r in entries(gov, told))

    def test_a_requester_told_nothing_cannot_name_the_rule_a_member_is_under(self, gov, app):
        """The provider is named by no consent: its denial says only ``no_consent``, no rule id.
        Filing with the community's real rule answers exactly like an unknown rule."""
        rule_id = refused_rule(gov)
        answer = gov.ask(requester=PROVIDER)
        assert reason_codes(answer) == ["no_consent"]
        assert not any("rule_id" in reason for reason in answer["reasons"])
        before = all_rows_as_text(app)
        real = file(gov, rule_id, 400, org=PROVIDER)
        unknown = file(gov, "no-such-rule", 400, org=PROVIDER)
        assert json_of(real) == json_of(unknown)
        assert all_rows_as_text(app) == before

    def test_a_steward_client_cannot_file(self, gov):
        rule_id = refused_rule(gov)
        body = {**REQUEST, "rule_id": rule_id, "requested_until": in_days(30)}
        assert_error(
            gov.client.post("/v1/access-requests", headers=gov.steward(), json=body), 403, "forbidden"
        )


class TestPrivacy:
    def test_anothers_request_is_a_404_exactly_like_none(self, gov, app):
        filed = file(gov, refused_rule(gov))
        theirs, missing = read(gov, filed["id"], GOVERNMENT), read(gov, "no-such-request", GOVERNMENT)
        assert_error(theirs, 404, "not_found")
        assert json_of(theirs) == json_of(missing)
        before = all_rows_as_text(app)
        withdraw_theirs = gov.client.post(
            f"/v1/access-requests/{filed['id']}/withdraw", headers=requester(gov, GOVERNMENT)
        )
        withdraw_missing = gov.client.post(
            "/v1/access-requests/no-such-request/withdraw", headers=requester(gov, GOVERNMENT)
        )
        assert_error(withdraw_theirs, 404, "not_found")
        assert json_of(withdraw_theirs) == json_of(withdraw_missing)
        listed = assert_ok(gov.client.get("/v1/access-requests", headers=requester(gov, GOVERNMENT)))
        assert listed == {"access_requests": []}
        assert all_rows_as_text(app) == before

    def test_the_communitys_stewards_read_a_request_and_no_other_steward_does(self, gov):
        filed = file(gov, refused_rule(gov))
        for headers in (gov.steward(), gov.world.headers(COUNCIL_A, "community:read")):
            response = gov.client.get(f"/v1/access-requests/{filed['id']}", headers=headers)
            assert assert_ok(response) == {**filed, "community": NATION_A}  # its stewards know it
        for scope in ("rules:write", "community:read"):
            other = gov.world.headers("nation-b-council", scope)
            theirs = gov.client.get(f"/v1/access-requests/{filed['id']}", headers=other)
            missing = gov.client.get("/v1/access-requests/no-such-request", headers=other)
            assert_error(theirs, 404, "not_found")
            assert json_of(theirs) == json_of(missing)

    def test_another_communitys_steward_cannot_see_or_decide(self, gov, app):
        filed = file(gov, refused_rule(gov))
        other = gov.steward(NATION_B)
        response = gov.client.get(f"/v1/communities/{NATION_A}/access-requests", headers=other)
        assert_error(response, 403, "forbidden")
        before = all_rows_as_text(app)
        theirs = decide(gov, filed["id"], {"decision": "grant"}, headers=other)
        missing = decide(gov, "no-such-request", {"decision": "grant"}, headers=other)
        assert_error(theirs, 404, "not_found")
        assert json_of(theirs) == json_of(missing)
        assert all_rows_as_text(app) == before


class TestReview:
    def test_the_queue_lists_the_communitys_requests_nearest_deadline_first(self, gov):
        rule_id = refused_rule(gov)
        later = file(gov, rule_id)
        gov.client.patch(f"/v1/communities/{NATION_A}", headers=gov.steward(), json={"review_days": 3})
        sooner = file(gov, rule_id, protocol="A second, shorter study.")
        assert [r["id"] for r in queue(gov)] == [sooner["id"], later["id"]]
        assert [r["id"] for r in queue(gov, status="pending")] == [sooner["id"], later["id"]]
        assert queue(gov, status="granted") == []
        reader = gov.world.headers(COUNCIL_A, "community:read")
        listed = gov.client.get(f"/v1/communities/{NATION_A}/access-requests", headers=reader)
        assert len(assert_ok(listed)["access_requests"]) == 2
        bad = gov.client.get(
            f"/v1/communities/{NATION_A}/access-requests", headers=reader, query_string={"status": "lost"}
        )
        assert_error(bad, 400, "validation_error")

    def test_granting_creates_the_approval_and_the_requester_is_permitted(self, gov):
        filed = file(gov, refused_rule(gov))
        decided = assert_ok(decide(gov, filed["id"], {"decision": "grant", "note": "Council vote 2026-11"}))
        request, approval = decided["access_request"], decided["approval"]
        assert request["status"] == "granted" and request["note"] == "Council vote 2026-11"
        assert request["closed_by"] == COUNCIL_A and request["approval_id"] == approval["id"]
        assert approval["access_request_id"] == filed["id"] and approval["requester"] == RESEARCHER
        assert (approval["purposes"], approval["data_categories"]) == (["research"], ["health"])
        assert approval["expires_at"] == filed["requested_until"]
        assert gov.ask()["decision"] == "permit"
        assert assert_ok(read(gov, filed["id"]))["status"] == "granted"
        tags = [e.tag for e in entries(gov, filed["id"])]
        assert tags == [AuditTag.ACCESS_REQUEST_FILED, AuditTag.ACCESS_REQUEST_GRANTED]
        [granted] = entries(gov, approval["id"])
        assert granted.tag == AuditTag.APPROVAL_GRANTED and granted.payload["access_request"] == filed["id"]
        approvals = assert_ok(gov.client.get(f"/v1/communities/{NATION_A}/approvals", headers=gov.steward()))
        assert [a["id"] for a in approvals["approvals"]] == [approval["id"]]

    def test_a_grant_may_narrow_the_request(self, gov):
        rule_id = refused_rule(gov)
        filed = file(
            gov, rule_id, purposes=["research", "service-planning"], data_categories=["health", "housing"]
        )
        until = in_days(60)
        body = {
            "decision": "grant",
            "purposes": ["research"],
            "data_categories": ["health"],
            "expires_at": until,
        }
        approval = assert_ok(decide(gov, filed["id"], body))["approval"]
        assert (approval["purposes"], approval["data_categories"]) == (["research"], ["health"])
        assert parse(approval["expires_at"]) == parse(until)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("purposes", ["research", "commercial"]), ("data_categories", ["housing"]), ("expires_at", 400)],
    )
    def test_a_grant_never_widens_the_request(self, gov, app, field, value):
        filed = file(gov, refused_rule(gov))
        before = all_rows_as_text(app)
        body = {"decision": "grant", field: in_days(value) if field == "expires_at" else value}
        error = assert_error(decide(gov, filed["id"], body), 400, "validation_error")
        assert set(error["details"]) == {field}
        assert all_rows_as_text(app) == before

    def test_refusing_is_recorded_with_its_note_and_the_requester_stays_refused(self, gov):
        filed = file(gov, refused_rule(gov))
        decided = assert_ok(
            decide(gov, filed["id"], {"decision": "refuse", "note": "No benefit plan we accept"})
        )
        assert decided["approval"] is None
        seen = assert_ok(read(gov, filed["id"]))
        assert (seen["status"], seen["note"], seen["refusal_reason"]) == (
            "refused",
            "No benefit plan we accept",
            None,
        )
        assert reason_codes(gov.ask()) == ["approval_required"]
        assert [e.tag for e in entries(gov, filed["id"])][-1] == AuditTag.ACCESS_REQUEST_REFUSED

    def test_a_request_is_decided_once(self, gov, app):
        filed = file(gov, refused_rule(gov))
        assert_ok(decide(gov, filed["id"], {"decision": "refuse"}))
        before = all_rows_as_text(app)
        assert_error(decide(gov, filed["id"], {"decision": "grant"}), 409, "conflict")
        withdrawn = gov.client.post(f"/v1/access-requests/{filed['id']}/withdraw", headers=requester(gov))
        assert_error(withdrawn, 409, "conflict")
        assert all_rows_as_text(app) == before

    def test_a_requester_cannot_decide_its_own_request(self, gov):
        filed = file(gov, refused_rule(gov))
        assert_error(
            decide(gov, filed["id"], {"decision": "grant"}, headers=requester(gov)), 403, "forbidden"
        )

    def test_an_unknown_decision_is_refused(self, gov):
        filed = file(gov, refused_rule(gov))
        error = assert_error(decide(gov, filed["id"], {"decision": "maybe"}), 400, "validation_error")
        assert "decision" in error["details"]

    def _agreement(self, gov: Governance, parties: list[str]) -> dict[str, Any]:
        body = {
            "title": "Health research with the university",
            "parties": parties,
            "legal_authority": "Band Council Resolution 2026-14",
            "review_at": in_days(90),
            "approvals": [],
            "duties": [],
        }
        response = gov.client.post(f"/v1/communities/{NATION_A}/agreements", headers=gov.steward(), json=body)
        return dict(assert_ok(response, 201))

    def test_a_grant_under_the_communitys_agreement(self, gov):
        filed = file(gov, refused_rule(gov))
        agreement = self._agreement(gov, [RESEARCHER])
        body = {"decision": "grant", "note": "Under the 2026 agreement", "agreement_id": agreement["id"]}
        decided = assert_ok(decide(gov, filed["id"], body))
        approval = decided["approval"]
        assert approval["agreement_id"] == agreement["id"] and approval["access_request_id"] == filed["id"]
        assert decided["access_request"]["approval_id"] == approval["id"]
        assert gov.ask()["decision"] == "permit"

    def test_a_grant_under_an_unknown_agreement_or_one_the_requester_is_not_party_to(self, gov, app):
        filed = file(gov, refused_rule(gov))
        not_a_party = self._agreement(gov, [GOVERNMENT])
        for agreement_id in ("no-such-agreement", not_a_party["id"]):
            before = all_rows_as_text(app)
            body = {"decision": "grant", "agreement_id": agreement_id}
            error = assert_error(decide(gov, filed["id"], body), 400, "validation_error")
            assert set(error["details"]) == {"agreement_id"}
            assert all_rows_as_text(app) == before
        assert assert_ok(read(gov, filed["id"]))["status"] == "pending"
        assert reason_codes(gov.ask()) == ["approval_required"]

    @pytest.mark.parametrize(
        "terms",
        [
            {"purposes": ["research"]},
            {"data_categories": ["health"]},
            {"agreement_id": "some-agreement"},
            {"expires_at": 30, "purposes": ["research"]},
        ],
    )
    def test_a_refusal_takes_no_terms(self, gov, app, terms):
        filed = file(gov, refused_rule(gov))
        body = {"decision": "refuse", **terms}
        if "expires_at" in terms:
            body["expires_at"] = in_days(terms["expires_at"])
        before = all_rows_as_text(app)
        error = assert_error(decide(gov, filed["id"], body), 400, "validation_error")
        assert set(error["details"]) == set(terms)
        assert all_rows_as_text(app) == before
        assert assert_ok(read(gov, filed["id"]))["status"] == "pending"

    def test_the_requester_lists_its_requests_by_status(self, gov):
        rule_id = refused_rule(gov)
        first = file(gov, rule_id)
        second = file(gov, rule_id, protocol="A second, shorter study.")
        assert_ok(decide(gov, first["id"], {"decision": "refuse", "note": "Not now"}))

        def mine(**query: Any) -> list[tuple[str, str]]:
            response = gov.client.get("/v1/access-requests", headers=requester(gov), query_string=query)
            return [(r["id"], r["status"]) for r in assert_ok(response)["access_requests"]]

        assert sorted(mine()) == sorted([(first["id"], "refused"), (second["id"], "pending")])
        assert mine(status="pending") == [(second["id"], "pending")]
        assert mine(status="refused") == [(first["id"], "refused")]
        assert mine(status="granted") == []
        bad = gov.client.get("/v1/access-requests", headers=requester(gov), query_string={"status": "lost"})
        assert "status" in assert_error(bad, 400, "validation_error")["details"]


class TestWithdrawal:
    def test_the_requester_withdraws_its_pending_request(self, gov, app):
        filed = file(gov, refused_rule(gov))
        withdrawn = assert_ok(
            gov.client.post(f"/v1/access-requests/{filed['id']}/withdraw", headers=requester(gov))
        )
        assert withdrawn["status"] == "withdrawn" and withdrawn["closed_by"] == RESEARCHER
        assert [r["status"] for r in queue(gov)] == ["withdrawn"]
        before = all_rows_as_text(app)
        assert_error(decide(gov, filed["id"], {"decision": "grant"}), 409, "conflict")
        assert all_rows_as_text(app) == before
        assert [e.tag for e in entries(gov, filed["id"])][-1] == AuditTag.ACCESS_REQUEST_WITHDRAWN


class TestDeadline:
    def test_no_decision_by_the_deadline_is_a_refusal_that_says_so(self, gov, app, monkeypatch):
        clock = Clock(monkeypatch)
        rule_id = refused_rule(gov)
        gov.client.patch(f"/v1/communities/{NATION_A}", headers=gov.steward(), json={"review_days": 5})
        filed = file(gov, rule_id)
        clock.advance(timedelta(days=5, minutes=1))
        seen = assert_ok(read(gov, filed["id"]))
        assert (seen["status"], seen["refusal_reason"]) == ("refused", "no decision by deadline")
        assert seen["closed_at"] == filed["decide_by"]
        assert [r["id"] for r in queue(gov, status="refused")] == [filed["id"]]
        assert queue(gov, status="pending") == []
        before = all_rows_as_text(app)
        late = decide(gov, filed["id"], {"decision": "grant", "note": "too late"})
        assert "no decision by deadline" in assert_error(late, 409, "conflict")["message"]
        withdrawn = gov.client.post(f"/v1/access-requests/{filed['id']}/withdraw", headers=requester(gov))
        assert_error(withdrawn, 409, "conflict")
        assert all_rows_as_text(app) == before
        assert reason_codes(gov.ask()) == ["approval_required"]

    def test_the_expire_command_records_the_refusals(self, gov):
        filed = file(gov, refused_rule(gov))
        services = services_of(gov)
        assert cases.expire(services, now=datetime.now(UTC)) == []  # not yet due
        later = datetime.now(UTC) + timedelta(days=31)
        [expired] = cases.expire(services, now=later)
        assert (expired.id, expired.status, expired.refusal_reason) == (
            filed["id"],
            "refused",
            "no decision by deadline",
        )
        with services.sessions() as session:
            row = session.get(AccessRequest, filed["id"])
            assert row is not None and (row.status, row.refusal_reason) == (
                "refused",
                "no decision by deadline",
            )
        assert cases.expire(services, now=later) == []  # recorded once
        entry = entries(gov, filed["id"])[-1]
        assert entry.tag == AuditTag.ACCESS_REQUEST_EXPIRED and (entry.actor_org, entry.actor_client) == (
            None,
            None,
        )
        seen = assert_ok(read(gov, filed["id"]))
        assert (seen["status"], seen["refusal_reason"]) == ("refused", "no decision by deadline")


class TestStewardPages:
    def test_the_queue_shows_each_request_with_its_deadline(self, gov, app):
        filed = file(gov, refused_rule(gov))
        browser = signed_in(app.test_client(), STEWARD_A)
        page = browser.get(f"/web/communities/{NATION_A}/access-requests")
        assert page.status_code == 200
        text = text_of(page)
        assert f"/web/communities/{NATION_A}/access-requests/{filed['id']}" in text
        assert "Decide by" in text and "waiting for a decision" in text
        assert (
            text_of(browser.get(f"/web/communities/{NATION_A}/access-requests?status=granted")).count(
                filed["id"]
            )
            == 0
        )
        opened = text_of(browser.get(f"/web/communities/{NATION_A}/access-requests/{filed['id']}"))
        assert REQUEST["protocol"] in opened and REQUEST["ethics_reference"] in opened
        assert REQUEST["benefit_plan"] in opened and 'id="decide-form"' in opened

    def test_granting_needs_a_note_and_a_confirmation(self, gov, app):
        filed = file(gov, refused_rule(gov))
        browser = signed_in(app.test_client(), STEWARD_A)
        path = f"/web/communities/{NATION_A}/access-requests/{filed['id']}/decision"
        before = all_rows_as_text(app)
        unconfirmed = post_form(browser, path, {"decision": "grant", "note": "vote of the council"})
        assert unconfirmed.status_code == 400 and "confirm" in text_of(unconfirmed)
        no_note = post_form(browser, path, {"decision": "grant", "confirm": "yes"})
        assert no_note.status_code == 400
        assert all_rows_as_text(app) == before
        done = post_form(
            browser, path, {"decision": "grant", "note": "vote of the council", "confirm": "yes"}
        )
        assert done.status_code == 302
        seen = assert_ok(read(gov, filed["id"]))
        assert (seen["status"], seen["note"]) == ("granted", "vote of the council")
        assert gov.ask()["decision"] == "permit"
        again = post_form(browser, path, {"decision": "refuse", "note": "changed our mind", "confirm": "yes"})
        assert again.status_code == 302 and assert_ok(read(gov, filed["id"]))["status"] == "granted"

    def test_granting_under_an_agreement_from_the_page(self, gov, app):
        filed = file(gov, refused_rule(gov))
        agreements = {}
        for parties in ([RESEARCHER], [GOVERNMENT]):
            body = {
                "title": f"Agreement with {parties[0]}",
                "parties": parties,
                "legal_authority": "Band Council Resolution 2026-14",
                "review_at": in_days(90),
                "approvals": [],
                "duties": [],
            }
            response = gov.client.post(
                f"/v1/communities/{NATION_A}/agreements", headers=gov.steward(), json=body
            )
            agreements[parties[0]] = assert_ok(response, 201)["id"]
        browser = signed_in(app.test_client(), STEWARD_A)
        opened = text_of(browser.get(f"/web/communities/{NATION_A}/access-requests/{filed['id']}"))
        assert f'value="{agreements[RESEARCHER]}"' in opened  # the requester is a party
        assert agreements[GOVERNMENT] not in opened  # not a party: not offered
        path = f"/web/communities/{NATION_A}/access-requests/{filed['id']}/decision"
        form = {"decision": "grant", "note": "under the agreement", "confirm": "yes"}
        before = all_rows_as_text(app)
        wrong = post_form(browser, path, {**form, "agreement_id": agreements[GOVERNMENT]})
        assert wrong.status_code == 400 and 'id="agreement_id"' in text_of(wrong)
        assert all_rows_as_text(app) == before
        done = post_form(browser, path, {**form, "agreement_id": agreements[RESEARCHER]})
        assert done.status_code == 302
        approval_id = assert_ok(read(gov, filed["id"]))["approval_id"]
        approvals = assert_ok(gov.client.get(f"/v1/communities/{NATION_A}/approvals", headers=gov.steward()))
        [approval] = [a for a in approvals["approvals"] if a["id"] == approval_id]
        assert approval["agreement_id"] == agreements[RESEARCHER]

    def test_refusing_from_the_page(self, gov, app):
        filed = file(gov, refused_rule(gov))
        browser = signed_in(app.test_client(), STEWARD_A)
        path = f"/web/communities/{NATION_A}/access-requests/{filed['id']}/decision"
        done = post_form(browser, path, {"decision": "refuse", "note": "not this year", "confirm": "yes"})
        assert done.status_code == 302
        assert assert_ok(read(gov, filed["id"]))["status"] == "refused"

    def test_another_communitys_steward_gets_nothing(self, gov, app):
        filed = file(gov, refused_rule(gov))
        browser = signed_in(app.test_client(), STEWARD_B)
        assert browser.get(f"/web/communities/{NATION_A}/access-requests").status_code == 403
        assert browser.get(f"/web/communities/{NATION_B}/access-requests/{filed['id']}").status_code == 404
        before = all_rows_as_text(app)
        path = f"/web/communities/{NATION_B}/access-requests/{filed['id']}/decision"
        response = post_form(browser, path, {"decision": "grant", "note": "mine now", "confirm": "yes"})
        assert response.status_code == 404
        assert all_rows_as_text(app) == before

    def test_the_pages_speak_french(self, gov, app):
        file(gov, refused_rule(gov))
        browser = signed_in(app.test_client(), STEWARD_A)
        post_form(browser, "/web/language", {"language": "fr"})
        text = text_of(browser.get(f"/web/communities/{NATION_A}/access-requests"))
        assert "Demandes d'accès" in text or "Demandes d&#39;accès" in text
