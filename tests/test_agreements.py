"""Data sharing agreements and duties (issue 14 items 4 and 5), through the HTTP API.

The loop a community relies on: an approval granted under an agreement permits; the
agreement's review date passes unrenewed -> ``agreement_review_overdue``; renewed -> permits;
a duty the requester owes falls due unmet -> ``duty_overdue`` naming it; marked met ->
permits. Plus every refusal: bad input names its field and writes nothing; only the
community's stewards see or change its agreements.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_helpers import Clock, assert_error, assert_ok, unchanged_tables
from governance_helpers import (
    APPROVAL,
    APPROVAL_RULE,
    COUNCIL_B,
    GOVERNMENT,
    MEMBER,
    NATION_A,
    NATION_B,
    PROVIDER,
    RESEARCHER,
    Governance,
    reason_codes,
    seeded_governance,
)
from web_helpers import CHEAP_PASSWORDS, STEWARD_A, STEWARD_B, make_people, post_form, signed_in, text_of

from consent_service.container import EXTENSION
from consent_service.web import steward_agreements


def _begin(governance: Governance) -> None:
    governance.consent()
    make_people(governance.world)


governance_seeds, seed, database_start, gov = seeded_governance(
    "agreements", also=_begin, settings=CHEAP_PASSWORDS
)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, **CHEAP_PASSWORDS}


PDF = b"%PDF-1.4\n% a signed data sharing agreement\n"


def _at(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def agreement_body(**changes: Any) -> dict[str, Any]:
    body = {
        "title": "Health research with the university",
        "parties": [RESEARCHER],
        "legal_authority": "Band Council Resolution 2026-14; OCAP principles",
        "review_at": _at(30),
        "approvals": [],
        "duties": [],
    }
    return {**body, **changes}


def duty_body(**changes: Any) -> dict[str, Any]:
    body = {
        "kind": "return_results",
        "description": "Return the aggregate tables to the council",
        "due_at": _at(10),
        "owed_by": RESEARCHER,
    }
    return {**body, **changes}


def create(gov: Governance, community: str = NATION_A, **changes: Any) -> dict[str, Any]:
    response = gov.client.post(
        f"/v1/communities/{community}/agreements",
        headers=gov.steward(community),
        json=agreement_body(**changes),
    )
    return assert_ok(response, 201)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def governed(gov: Governance) -> dict[str, Any]:
    """The community asks for approval of health research; it granted one to the researcher,
    under an agreement with a duty."""
    gov.rule(NATION_A, APPROVAL_RULE)
    approval = gov.approval()
    agreement = create(gov, approvals=[approval["id"]], duties=[duty_body()])
    return {"approval": approval, "agreement": agreement}


class TestTheLoop:
    def test_permits_while_the_agreement_stands(self, gov, governed):
        assert governed["agreement"]["approvals"] == [governed["approval"]["id"]]
        assert governed["agreement"]["status"] == "in_force"
        assert gov.ask()["decision"] == "permit"

    def test_a_review_date_passed_holds_the_approval_until_renewed(self, gov, clock):
        gov.rule(NATION_A, APPROVAL_RULE)
        approval = gov.approval()
        agreement = create(gov, approvals=[approval["id"]])
        clock.advance(timedelta(days=31))
        answer = gov.ask()
        assert answer["decision"] == "deny" and reason_codes(answer) == ["agreement_review_overdue"]
        assert "due for review" in answer["reasons"][0]["message"]
        listed = assert_ok(gov.client.get(f"/v1/communities/{NATION_A}/agreements", headers=gov.steward()))
        assert listed["agreements"][0]["status"] == "review_overdue"

        renewed = assert_ok(
            gov.client.post(
                f"/v1/communities/{NATION_A}/agreements/{agreement['id']}/renew",
                headers=gov.steward(),
                json={"review_at": (clock.now() + timedelta(days=365)).isoformat()},
            )
        )
        assert renewed["status"] == "in_force" and renewed["renewed_by"] == "nation-a-council"
        assert gov.ask()["decision"] == "permit"

    def test_an_overdue_duty_outranks_the_overdue_review(self, gov, governed, clock):
        """Both hold the approval: the requester is told of its own duty, which it can act on."""
        clock.advance(timedelta(days=31))
        assert reason_codes(gov.ask()) == ["duty_overdue"]

    def test_an_overdue_duty_is_named_until_a_steward_marks_it_met(self, gov, governed, clock):
        clock.advance(timedelta(days=11))
        answer = gov.ask()
        assert answer["decision"] == "deny" and reason_codes(answer) == ["duty_overdue"]
        message = answer["reasons"][0]["message"]
        assert "Return the aggregate tables to the council" in message and "return_results" in message
        (duty,) = governed["agreement"]["duties"]
        shown = assert_ok(
            gov.client.get(
                f"/v1/communities/{NATION_A}/agreements/{governed['agreement']['id']}", headers=gov.steward()
            )
        )
        assert shown["duties"][0]["status"] == "overdue"

        met = assert_ok(
            gov.client.post(
                f"/v1/communities/{NATION_A}/agreements/{governed['agreement']['id']}/duties/{duty['id']}/met",
                headers=gov.steward(),
                json={"note": "Tables received on paper"},
            )
        )
        assert met["status"] == "met" and met["met_note"] == "Tables received on paper"
        assert gov.ask()["decision"] == "permit"

    def test_batch_authorize_holds_the_approval_as_single_authorize_does(self, gov, governed, clock):
        def batch() -> dict[str, Any]:
            response = gov.client.post(
                "/v1/authorize/batch",
                headers=gov.world.headers(RESEARCHER, "authorize"),
                json={"subjects": [MEMBER], "purpose": "research", "data_categories": ["health"]},
            )
            (decision,) = assert_ok(response)["decisions"]
            return decision  # type: ignore[no-any-return]

        assert reason_codes(batch()) != ["duty_overdue"]
        clock.advance(timedelta(days=11))
        held = batch()
        assert held["decision"] == "deny" and reason_codes(held) == ["duty_overdue"]
        assert held["reasons"][0]["message"] == gov.ask()["reasons"][0]["message"]

    def test_a_duty_holds_every_approval_of_that_community_for_that_requester(self, gov, governed, clock):
        """The duty is owed to the community: a second approval outside the agreement is held too."""
        gov.approval(purposes=["research"], data_categories=["health", "housing"])
        clock.advance(timedelta(days=11))
        assert reason_codes(gov.ask()) == ["duty_overdue"]

    def test_another_requester_is_not_held_by_the_researchers_duty(self, gov, governed, clock):
        gov.approval(requester=GOVERNMENT)
        clock.advance(timedelta(days=11))
        assert gov.ask(requester=GOVERNMENT)["decision"] == "permit"

    def test_an_approval_granted_under_an_agreement_by_its_id(self, gov):
        gov.rule(NATION_A, APPROVAL_RULE)
        agreement = create(gov, review_at=_at(5))
        approval = gov.approval(agreement_id=agreement["id"])
        assert approval["agreement_id"] == agreement["id"]
        assert gov.ask()["decision"] == "permit"

    def test_reminders_list_what_falls_due_soon(self, gov):
        soon, later = create(gov, review_at=_at(10)), create(gov, review_at=_at(200), title="Later")
        listed = assert_ok(
            gov.client.get(
                f"/v1/communities/{NATION_A}/agreements",
                headers=gov.steward(),
                query_string={"review_due_within": 30},
            )
        )
        assert [a["id"] for a in listed["agreements"]] == [soon["id"]]
        assert soon["review_due_soon"] is True and later["review_due_soon"] is False


class TestTheDocument:
    def url(self, agreement: dict[str, Any]) -> str:
        return f"/v1/communities/{NATION_A}/agreements/{agreement['id']}/document"

    def test_upload_keeps_the_bytes_and_audits_their_hash(self, gov, app):
        agreement = create(gov)
        stored = assert_ok(
            gov.client.put(
                self.url(agreement),
                data=PDF,
                headers={**gov.steward(), "Content-Type": "application/pdf"},
                query_string={"name": "agreement.pdf"},
            )
        )
        digest = hashlib.sha256(PDF).hexdigest()
        assert stored["document"] == {
            "sha256": digest,
            "name": "agreement.pdf",
            "media_type": "application/pdf",
            "size": len(PDF),
        }
        read = gov.client.get(self.url(agreement), headers=gov.steward(NATION_A, "community:read"))
        assert read.status_code == 200 and read.data == PDF and read.mimetype == "application/octet-stream"
        assert read.headers["X-Document-Type"] == "application/pdf"
        assert (
            read.headers["Repr-Digest"]
            == "sha-256=:" + base64.b64encode(hashlib.sha256(PDF).digest()).decode() + ":"
        )
        entries = gov.client.get(
            "/v1/audit/entries", headers=gov.world.headers("admin", "audit:read")
        ).get_json()
        attached = [e for e in entries["entries"] if e["tag"] == "agreement:document_attached"]
        assert attached and attached[-1]["payload"]["sha256"] == digest

    def test_too_large_or_of_another_type_is_refused_and_nothing_kept(self, gov, app):
        agreement = create(gov)
        headers = {**gov.steward(), "Content-Type": "application/pdf"}
        app.extensions[EXTENSION].settings["AGREEMENT_MAX_BYTES"] = 16
        with unchanged_tables(app):
            response = gov.client.put(self.url(agreement), data=b"x" * 17, headers=headers)
            assert_error(response, 413, "payload_too_large")
        app.extensions[EXTENSION].settings["AGREEMENT_MAX_BYTES"] = 1024
        with unchanged_tables(app):
            response = gov.client.put(
                self.url(agreement),
                data=b"MZ\x90",
                headers={**headers, "Content-Type": "application/x-msdownload"},
            )
            assert_error(response, 415, "unsupported_media_type")
            assert "Content-Type" in response.get_json()["error"]["details"]
            assert_error(
                gov.client.put(self.url(agreement), data=b"", headers=headers), 400, "validation_error"
            )
        assert gov.client.get(self.url(agreement), headers=gov.steward()).status_code == 404


class TestBadInputChangesNothing:
    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"review_at": "2020-01-01T00:00:00+00:00"}, "review_at"),
            ({"parties": ["nobody-we-know"]}, "parties"),
            ({"approvals": ["no-such-approval"]}, "approvals"),
            (
                {
                    "duties": [
                        {
                            "kind": "return_results",
                            "description": "x",
                            "due_at": "2020-01-01T00:00:00+00:00",
                            "owed_by": RESEARCHER,
                        }
                    ]
                },
                "duties",
            ),
            (
                {
                    "duties": [
                        {
                            "kind": "return_results",
                            "description": "x",
                            "due_at": "2099-01-01T00:00:00+00:00",
                            "owed_by": GOVERNMENT,
                        }
                    ]
                },
                "duties",
            ),
            (
                {
                    "duties": [
                        {
                            "kind": "gift",
                            "description": "x",
                            "due_at": "2099-01-01T00:00:00+00:00",
                            "owed_by": RESEARCHER,
                        }
                    ]
                },
                "duties",
            ),
            ({"title": ""}, "title"),
            ({"surprise": 1}, "surprise"),
        ],
        ids=[
            "past-review",
            "unknown-party",
            "unknown-approval",
            "past-duty",
            "duty-of-a-non-party",
            "unknown-kind",
            "empty-title",
            "unknown-field",
        ],
    )
    def test_refused_naming_the_field(self, gov, app, changes, field):
        with unchanged_tables(app):
            response = gov.client.post(
                f"/v1/communities/{NATION_A}/agreements",
                headers=gov.steward(),
                json=agreement_body(**changes),
            )
            assert response.status_code == 400, response.get_json()
            assert field in response.get_json()["error"]["details"], response.get_json()

    def test_an_approval_of_another_community_or_a_non_party_is_refused(self, gov, app):
        other = assert_ok(
            gov.client.post(
                f"/v1/communities/{NATION_B}/approvals", headers=gov.steward(NATION_B), json=APPROVAL
            ),
            201,
        )
        mine = gov.approval(requester=GOVERNMENT)
        for approvals in ([other["id"]], [mine["id"]]):
            with unchanged_tables(app):
                response = gov.client.post(
                    f"/v1/communities/{NATION_A}/agreements",
                    headers=gov.steward(),
                    json=agreement_body(approvals=approvals),
                )
                assert_error(response, 400, "validation_error")
                assert "approvals" in response.get_json()["error"]["details"]

    def test_an_approval_under_two_agreements_is_a_conflict(self, gov, app):
        approval = gov.approval()
        create(gov, approvals=[approval["id"]])
        with unchanged_tables(app):
            response = gov.client.post(
                f"/v1/communities/{NATION_A}/agreements",
                headers=gov.steward(),
                json=agreement_body(approvals=[approval["id"]]),
            )
            assert_error(response, 409, "conflict")

    def test_an_approval_naming_an_unknown_agreement_or_one_it_is_not_party_to(self, gov, app):
        agreement = create(gov)
        for agreement_id, requester in (("no-such-agreement", RESEARCHER), (agreement["id"], GOVERNMENT)):
            with unchanged_tables(app):
                response = gov.client.post(
                    f"/v1/communities/{NATION_A}/approvals",
                    headers=gov.steward(),
                    json={**APPROVAL, "requester": requester, "agreement_id": agreement_id},
                )
                assert_error(response, 400, "validation_error")
                assert "agreement_id" in response.get_json()["error"]["details"]

    def test_renewing_into_the_past_and_meeting_a_duty_twice(self, gov, governed, app):
        base = f"/v1/communities/{NATION_A}/agreements/{governed['agreement']['id']}"
        with unchanged_tables(app):
            response = gov.client.post(
                f"{base}/renew", headers=gov.steward(), json={"review_at": "2020-01-01T00:00:00+00:00"}
            )
            assert_error(response, 400, "validation_error")
        (duty,) = governed["agreement"]["duties"]
        assert_ok(gov.client.post(f"{base}/duties/{duty['id']}/met", headers=gov.steward(), json={}))
        with unchanged_tables(app):
            assert_error(
                gov.client.post(f"{base}/duties/{duty['id']}/met", headers=gov.steward(), json={}),
                409,
                "conflict",
            )
            assert_error(
                gov.client.post(f"{base}/duties/no-such-duty/met", headers=gov.steward(), json={}),
                404,
                "not_found",
            )


class TestOnlyItsStewards:
    def test_another_community_s_steward_and_the_requester_are_refused(self, gov, governed, app):
        agreement_id = governed["agreement"]["id"]
        base = f"/v1/communities/{NATION_A}/agreements"
        outsiders = [
            gov.world.headers(COUNCIL_B, "rules:write"),
            gov.world.headers(RESEARCHER, "rules:write"),
            gov.world.admin(),
        ]
        for headers in outsiders:
            with unchanged_tables(app):
                assert gov.client.get(base, headers=headers).status_code == 403
                assert gov.client.get(f"{base}/{agreement_id}", headers=headers).status_code == 403
                assert gov.client.post(base, headers=headers, json=agreement_body()).status_code == 403
                assert (
                    gov.client.post(
                        f"{base}/{agreement_id}/renew", headers=headers, json={"review_at": _at(90)}
                    ).status_code
                    == 403
                )

    def test_an_agreement_of_another_community_is_not_found(self, gov, governed):
        response = gov.client.get(
            f"/v1/communities/{NATION_B}/agreements/{governed['agreement']['id']}",
            headers=gov.steward(NATION_B),
        )
        assert_error(response, 404, "not_found")


class TestStewardPage:
    """The steward's agreements page: review dates with a notice, duties, and marking one met."""

    def test_lists_agreements_with_review_notice_and_duties(self, gov, governed, app, clock, monkeypatch):
        monkeypatch.setattr(steward_agreements, "now", clock.now)
        browser = signed_in(app.test_client(), STEWARD_A)
        page = browser.get(f"/web/communities/{NATION_A}/agreements")
        assert page.status_code == 200
        text = text_of(page)
        assert "Health research with the university" in text
        assert "Return the aggregate tables to the council" in text and "not yet due" in text
        assert 'id="review-notice"' in text  # review in 30 days: within the reminder window

        clock.advance(timedelta(days=11))
        overdue = text_of(browser.get(f"/web/communities/{NATION_A}/agreements"))
        assert "overdue: holds the requester" in overdue

    def test_every_community_page_reminds_of_a_review_due_soon(self, gov, app):
        browser = signed_in(app.test_client(), STEWARD_A)
        rules_page = f"/web/communities/{NATION_A}/"
        assert browser.get(rules_page).status_code == 200
        assert 'id="agreements-due"' not in text_of(browser.get(rules_page))
        create(gov, title="Housing study", review_at=_at(90))  # outside the 30 days: no notice
        assert 'id="agreements-due"' not in text_of(browser.get(rules_page))
        create(gov, title="Health research", review_at=_at(20))
        rules = text_of(browser.get(rules_page))
        assert 'id="agreements-due"' in rules and "Health research" in rules and "Housing study" not in rules
        other = signed_in(app.test_client(), STEWARD_B)
        assert 'id="agreements-due"' not in text_of(other.get(f"/web/communities/{NATION_B}/"))

    def test_marking_met_needs_a_note_and_a_confirmation(self, gov, governed, app, clock):
        clock.advance(timedelta(days=11))
        (duty,) = governed["agreement"]["duties"]
        path = f"/web/communities/{NATION_A}/agreements/{governed['agreement']['id']}/duties/{duty['id']}/met"
        browser = signed_in(app.test_client(), STEWARD_A)
        with unchanged_tables(app):
            assert post_form(browser, path, {"note": "received"}).status_code == 400
            no_note = post_form(browser, path, {"confirm": "yes"})
            assert no_note.status_code == 400 and "Write a note" in text_of(no_note)
        assert reason_codes(gov.ask()) == ["duty_overdue"]

        done = post_form(browser, path, {"note": "Tables received at the assembly", "confirm": "yes"})
        assert done.status_code == 302
        assert gov.ask()["decision"] == "permit"
        shown = assert_ok(
            gov.client.get(
                f"/v1/communities/{NATION_A}/agreements/{governed['agreement']['id']}", headers=gov.steward()
            )
        )
        assert shown["duties"][0]["status"] == "met"
        assert shown["duties"][0]["met_note"] == "Tables received at the assembly"

    def test_another_community_s_steward_cannot_see_or_mark(self, gov, governed, app):
        (duty,) = governed["agreement"]["duties"]
        browser = signed_in(app.test_client(), STEWARD_B)
        assert browser.get(f"/web/communities/{NATION_A}/agreements").status_code == 403
        path = f"/web/communities/{NATION_A}/agreements/{governed['agreement']['id']}/duties/{duty['id']}/met"
        with unchanged_tables(app):
            response = post_form(browser, path, {"note": "mine now", "confirm": "yes"})
        assert response.status_code == 403

    def test_in_french(self, gov, governed, app):
        browser = signed_in(app.test_client(), STEWARD_A)
        post_form(browser, "/web/language", {"language": "fr"})
        text = text_of(browser.get(f"/web/communities/{NATION_A}/agreements"))
        assert "Ententes" in text and "Date de révision" in text and "comme remplie" in text


class TestWhatTheRequesterIsTold:
    """The new reasons go through disclosure like ``approval_required``: the community's id only
    where the community shows it; a requester no consent names hears only ``no_consent``."""

    def test_the_community_is_named_only_where_it_chose_to_be(self, gov, governed, clock):
        clock.advance(timedelta(days=11))
        (reason,) = gov.ask()["reasons"]
        assert reason["code"] == "duty_overdue" and reason["rule_id"] and "community" not in reason
        assert NATION_A not in reason["message"]
        assert_ok(
            gov.client.patch(
                f"/v1/communities/{NATION_A}", headers=gov.steward(), json={"show_community_id": True}
            )
        )
        (reason,) = gov.ask()["reasons"]
        assert (reason["code"], reason["community"]) == ("duty_overdue", NATION_A)

    def test_a_requester_no_consent_names_is_told_nothing_of_its_duty(self, gov, clock):
        gov.rule(NATION_A, APPROVAL_RULE)
        approval = gov.approval(requester=PROVIDER)
        create(
            gov,
            parties=[PROVIDER],
            approvals=[approval["id"]],
            duties=[duty_body(owed_by=PROVIDER, description="Send the progress report")],
        )
        clock.advance(timedelta(days=11))
        answer = gov.ask(requester=PROVIDER)
        assert reason_codes(answer) == ["no_consent"]
        assert "progress report" not in str(answer) and "rule_id" not in answer["reasons"][0]
