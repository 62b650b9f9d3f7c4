"""The web pages through Flask's test client: sign-in, CSRF, permissions, and that each page
does what the API does (issue 7). The browser tests (test_web_browser.py) drive the same pages
in Chromium."""

from __future__ import annotations

import html
import os
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import pytest
from api_helpers import SUBJECT, assert_ok, unchanged_tables
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from governance_helpers import (
    APPROVAL_RULE,
    COUNCIL_A,
    DENY_RULE,
    MEMBER,
    NATION_A,
    OUTSIDER,
    PROVIDER,
    RESEARCHER,
    Governance,
    reason_codes,
    seeded_governance,
)
from sqlalchemy import select, update
from web_helpers import (
    CHEAP_PASSWORDS,
    PASSWORD,
    STEWARD_A,
    STEWARD_B,
    WORKER,
    csrf_token,
    make_people,
    post_form,
    sign_in,
    signed_in,
    text_of,
)

from consent_service.cli import main
from consent_service.storage.models import CommunityRule, UserAccount
from consent_service.web.qr import qr_svg


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, **CHEAP_PASSWORDS}


governance_seeds, seed, database_start, gov = seeded_governance(
    "web-pages", also=lambda governance: make_people(governance.world), settings=CHEAP_PASSWORDS
)


@pytest.fixture
def browser_a(app: Flask, gov: Governance) -> FlaskClient:
    """A separate test client (its own cookies) signed in as Nation A's steward."""
    return signed_in(app.test_client(), STEWARD_A)


@pytest.fixture
def browser_b(app: Flask, gov: Governance) -> FlaskClient:
    return signed_in(app.test_client(), STEWARD_B)


@pytest.fixture
def worker(app: Flask, gov: Governance) -> FlaskClient:
    return signed_in(app.test_client(), WORKER)


def user_row(app: Flask, email: str) -> UserAccount:
    with app.extensions["consent_service"].sessions() as session:
        row = session.scalars(select(UserAccount).where(UserAccount.email == email)).one()
        session.expunge(row)
        return row


def set_user(app: Flask, email: str, **values: Any) -> None:
    with app.extensions["consent_service"].sessions() as session:
        session.execute(update(UserAccount).where(UserAccount.email == email).values(**values))
        session.commit()


def hidden_fields(page: str) -> str:
    """The page's hidden inputs (but the CSRF token) as a query string, as the browser posts them."""
    pairs = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    return urlencode([(name, html.unescape(value)) for name, value in pairs if name != "csrf_token"])


def rules_of(app: Flask, community: str) -> list[CommunityRule]:
    with app.extensions["consent_service"].sessions() as session:
        return list(session.scalars(select(CommunityRule).where(CommunityRule.community_id == community)))


# -- sign-in, sessions, lockout ------------------------------------------------------------------


class TestSignIn:
    def test_pages_ask_to_sign_in_first(self, app: Flask, gov: Governance) -> None:
        response = app.test_client().get(f"/web/communities/{NATION_A}/")
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/web/sign-in?next=")

    def test_the_session_cookie_is_httponly_and_samesite_lax(self, app: Flask, gov: Governance) -> None:
        response = sign_in(app.test_client(), STEWARD_A)
        assert response.status_code == 302
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # plain HTTP here

    def test_the_session_cookie_is_secure_over_tls(self, app: Flask, gov: Governance) -> None:
        response = app.test_client().get("/web/sign-in", base_url="https://consent.example")
        assert "Secure" in response.headers["Set-Cookie"]

    def test_a_wrong_password_is_refused(self, app: Flask, gov: Governance) -> None:
        client = app.test_client()
        response = sign_in(client, STEWARD_A, "not the password at all")
        assert response.status_code == 401
        assert "not right" in text_of(response)
        assert client.get("/web/").status_code == 302

    def test_an_unknown_email_is_refused_the_same_way(self, app: Flask, gov: Governance) -> None:
        wrong = sign_in(app.test_client(), STEWARD_A, "not the password at all")
        unknown = sign_in(app.test_client(), "nobody@example.org", "not the password at all")
        assert unknown.status_code == wrong.status_code == 401
        pattern = re.compile(r'<div class="error-summary".*?</div>', re.S)
        assert pattern.search(text_of(unknown)).group(0) == pattern.search(text_of(wrong)).group(0)

    def test_the_account_locks_after_repeated_failures_and_unlocks_later(
        self, app: Flask, gov: Governance
    ) -> None:
        threshold = app.extensions["consent_service"].settings["WEB_LOCKOUT_THRESHOLD"]
        client = app.test_client()
        for _ in range(threshold):
            assert sign_in(client, STEWARD_A, "wrong password, again").status_code == 401
        locked = user_row(app, STEWARD_A)
        assert locked.locked_until is not None and locked.locked_until > datetime.now(UTC)
        assert sign_in(client, STEWARD_A).status_code == 401  # even the right password
        set_user(app, STEWARD_A, locked_until=datetime.now(UTC) - timedelta(seconds=1))
        assert sign_in(client, STEWARD_A).status_code == 302
        assert user_row(app, STEWARD_A).failed_sign_ins == 0

    def test_a_success_resets_the_count_of_failures(self, app: Flask, gov: Governance) -> None:
        client = app.test_client()
        sign_in(client, STEWARD_A, "wrong password, again")
        assert user_row(app, STEWARD_A).failed_sign_ins == 1
        assert sign_in(client, STEWARD_A).status_code == 302
        assert user_row(app, STEWARD_A).failed_sign_ins == 0

    def test_a_disabled_person_cannot_sign_in_and_is_signed_out(
        self, app: Flask, browser_a: FlaskClient
    ) -> None:
        set_user(app, STEWARD_A, disabled_at=datetime.now(UTC))
        assert browser_a.get("/web/").status_code == 302
        assert sign_in(app.test_client(), STEWARD_A).status_code == 401

    def test_sign_out_ends_the_session_even_for_a_copied_cookie(
        self, app: Flask, browser_a: FlaskClient
    ) -> None:
        cookie = browser_a.get_cookie("consent_session")
        assert cookie is not None
        assert browser_a.get("/web/").status_code == 200
        response = post_form(browser_a, "/web/sign-out", {})
        assert response.status_code == 302 and response.headers["Location"] == "/web/sign-in"
        assert browser_a.get("/web/").status_code == 302
        thief = app.test_client()
        thief.set_cookie("consent_session", cookie.value)
        assert thief.get("/web/").status_code == 302

    def test_after_sign_in_only_pages_of_this_site_are_followed(self, app: Flask, gov: Governance) -> None:
        client = app.test_client()
        response = client.post(
            "/web/sign-in",
            data={
                "email": STEWARD_A,
                "password": PASSWORD,
                "next": "https://evil.example/",
                "csrf_token": csrf_token(client),
            },
        )
        assert response.headers["Location"] == "/web/"


class TestCsrf:
    def test_a_sign_in_without_the_token_is_refused(self, app: Flask, gov: Governance) -> None:
        client = app.test_client()
        client.get("/web/sign-in")
        response = client.post("/web/sign-in", data={"email": STEWARD_A, "password": PASSWORD})
        assert response.status_code == 400
        assert client.get("/web/").status_code == 302

    @pytest.mark.parametrize(
        "path, data",
        [
            (
                f"/web/communities/{NATION_A}/rules/new",
                {
                    "action": "save",
                    "effect": "deny",
                    "purposes": "research",
                    "data_categories": "health",
                    "requesters": "*",
                    "reason": "no",
                },
            ),
            (
                f"/web/communities/{NATION_A}/approvals",
                {"requester": RESEARCHER, "purposes": "research", "data_categories": "health"},
            ),
            ("/web/sign-out", {}),
        ],
    )
    def test_a_steward_form_without_the_token_changes_nothing(
        self, app: Flask, browser_a: FlaskClient, path: str, data: dict[str, str]
    ) -> None:
        with unchanged_tables(app):
            assert browser_a.post(path, data=data).status_code == 400
            assert browser_a.post(path, data={**data, "csrf_token": "forged"}).status_code == 400
        assert browser_a.get("/web/").status_code == 200  # still signed in: sign-out was refused too

    def test_a_consent_form_without_the_token_records_nothing(self, app: Flask, worker: FlaskClient) -> None:
        with unchanged_tables(app):
            response = worker.post(
                "/web/intake/consents/new",
                data={
                    "system": SUBJECT["system"],
                    "value": SUBJECT["value"],
                    "purposes": "service-delivery",
                    "data_categories": "housing",
                    "recipients": PROVIDER,
                    "method": "verbal",
                    "obtained_by": "w",
                },
            )
            assert response.status_code == 400

    def test_a_token_from_another_session_is_refused(
        self, app: Flask, browser_a: FlaskClient, browser_b: FlaskClient
    ) -> None:
        token_of_b = csrf_token(browser_b, "/web/")
        with unchanged_tables(app):
            response = browser_a.post(
                f"/web/communities/{NATION_A}/approvals",
                data={
                    "requester": RESEARCHER,
                    "purposes": "research",
                    "data_categories": "health",
                    "csrf_token": token_of_b,
                },
            )
            assert response.status_code == 400


# -- permissions: the same as the API's -------------------------------------------------------------


COMMUNITY_PAGES = ["/", "/rules/new", "/approvals", "/waiting", "/decisions"]


class TestStewardPermissions:
    @pytest.mark.parametrize("page", COMMUNITY_PAGES)
    def test_a_steward_of_b_cannot_open_a_pages(self, browser_b: FlaskClient, page: str) -> None:
        response = browser_b.get(f"/web/communities/{NATION_A}{page}")
        assert response.status_code == 403
        assert "Nation A" not in text_of(response).split("<main", 1)[1]

    @pytest.mark.parametrize("page", COMMUNITY_PAGES)
    def test_a_community_that_does_not_exist_is_not_found(self, browser_a: FlaskClient, page: str) -> None:
        assert browser_a.get(f"/web/communities/nation-z{page}").status_code == 404

    def test_a_steward_of_b_cannot_add_a_rule_to_a(self, app: Flask, browser_b: FlaskClient) -> None:
        for action in ("preview", "save"):
            response = post_form(
                browser_b,
                f"/web/communities/{NATION_A}/rules/new",
                {
                    "action": action,
                    "effect": "deny",
                    "purposes": "research",
                    "data_categories": "health",
                    "requesters": "*",
                    "reason": "not ours to say",
                },
            )
            assert response.status_code == 403
        assert rules_of(app, NATION_A) == []

    def test_a_steward_of_b_cannot_retire_or_approve_for_a(
        self, app: Flask, gov: Governance, browser_b: FlaskClient
    ) -> None:
        rule = gov.rule()
        approval = gov.approval()
        assert browser_b.get(f"/web/communities/{NATION_A}/rules/{rule['id']}/retire").status_code == 403
        assert (
            post_form(
                browser_b, f"/web/communities/{NATION_A}/rules/{rule['id']}/retire", {"reason": "x"}
            ).status_code
            == 403
        )
        assert (
            post_form(
                browser_b, f"/web/communities/{NATION_A}/approvals/{approval['id']}/revoke", {"reason": "x"}
            ).status_code
            == 403
        )
        assert (
            post_form(
                browser_b,
                f"/web/communities/{NATION_A}/approvals",
                {"requester": RESEARCHER, "purposes": "research", "data_categories": "health"},
            ).status_code
            == 403
        )
        assert all(r.retired_at is None for r in rules_of(app, NATION_A))

    def test_the_list_shows_only_the_communities_stewarded(self, browser_b: FlaskClient) -> None:
        page = text_of(browser_b.get("/web/communities/"))
        assert "Nation B" in page and "Nation A" not in page

    def test_a_person_without_the_steward_role_cannot_open_steward_pages(self, worker: FlaskClient) -> None:
        assert worker.get("/web/communities/").status_code == 403
        assert worker.get(f"/web/communities/{NATION_A}/").status_code == 403

    def test_a_steward_without_the_intake_role_cannot_record_or_find(self, browser_a: FlaskClient) -> None:
        assert browser_a.get("/web/intake/consents/new").status_code == 403
        assert browser_a.get("/web/intake/find").status_code == 403


# -- steward pages ------------------------------------------------------------------------------


def ask_a_few(gov: Governance) -> None:
    """Two permitted health research requests and one housing one about a member, one about an outsider."""
    gov.consent()
    gov.consent(subject=OUTSIDER, communities=[])
    gov.ask("research", "health")
    gov.ask("research", "health")
    gov.ask("research", "housing")
    gov.ask("research", "health", subject=OUTSIDER)


class TestRulesPage:
    def test_rules_are_in_plain_language_with_who_and_when(
        self, gov: Governance, browser_a: FlaskClient
    ) -> None:
        gov.rule()
        page = text_of(browser_a.get(f"/web/communities/{NATION_A}/"))
        assert "No one may use members&#39; health data for research." in page
        assert "Nation-A-Council" in page  # who made it (the organization's name)
        assert str(datetime.now(UTC).year) in page
        assert DENY_RULE["reason"] in page

    def test_the_preview_counts_the_decisions_the_rule_would_have_changed(
        self, gov: Governance, browser_a: FlaskClient
    ) -> None:
        ask_a_few(gov)
        response = post_form(
            browser_a,
            f"/web/communities/{NATION_A}/rules/new",
            {
                "action": "preview",
                "effect": "deny",
                "purposes": "research",
                "data_categories": "health",
                "requesters": "*",
                "reason": "No health research",
            },
        )
        assert response.status_code == 200
        assert re.search(r"would have changed 2 of the 3 decisions", text_of(response))

    def test_a_rule_is_saved_only_as_previewed_and_then_denies_through_the_api(
        self, app: Flask, gov: Governance, browser_a: FlaskClient
    ) -> None:
        gov.consent()
        assert gov.ask("research", "health")["decision"] == "permit"
        form = {
            "effect": "deny",
            "purposes": "research",
            "data_categories": "health",
            "requesters": "*",
            "reason": "No health research",
        }
        preview = post_form(
            browser_a, f"/web/communities/{NATION_A}/rules/new", {**form, "action": "preview"}
        )
        fingerprint = re.search(r'name="previewed" value="([0-9a-f]+)"', text_of(preview)).group(1)

        changed = post_form(
            browser_a,
            f"/web/communities/{NATION_A}/rules/new",
            {**form, "purposes": "program-evaluation", "action": "save", "previewed": fingerprint},
        )
        assert changed.status_code == 200 and "changed since its preview" in text_of(changed)
        assert rules_of(app, NATION_A) == []

        saved = post_form(
            browser_a,
            f"/web/communities/{NATION_A}/rules/new",
            {**form, "action": "save", "previewed": fingerprint},
        )
        assert saved.status_code == 302
        [rule] = rules_of(app, NATION_A)
        assert rule.created_by == COUNCIL_A and rule.created_by_client.startswith("user:")
        decision = gov.ask("research", "health")
        assert decision["decision"] == "deny" and reason_codes(decision) == ["community_rule"]

    def test_a_rule_the_api_would_refuse_is_refused(self, app: Flask, browser_a: FlaskClient) -> None:
        with unchanged_tables(app):
            response = post_form(
                browser_a,
                f"/web/communities/{NATION_A}/rules/new",
                {
                    "action": "preview",
                    "effect": "deny",
                    "purposes": "research",
                    "data_categories": "no-such-code",
                    "requesters": "*",
                    "reason": "x",
                },
            )
        page = text_of(response)
        assert response.status_code == 400
        assert "“no-such-code” is not a kind of information this service knows." in page

    def test_retiring_needs_a_reason_and_keeps_the_rule_in_history(
        self, app: Flask, gov: Governance, browser_a: FlaskClient
    ) -> None:
        rule = gov.rule()
        path = f"/web/communities/{NATION_A}/rules/{rule['id']}/retire"
        assert post_form(browser_a, path, {"reason": ""}).status_code == 400
        assert post_form(browser_a, path, {"reason": "Agreement signed"}).status_code == 302
        [row] = rules_of(app, NATION_A)
        assert row.retired_reason == "Agreement signed" and row.retired_by == COUNCIL_A
        page = text_of(browser_a.get(f"/web/communities/{NATION_A}/"))
        assert "Retired rules" in page and "Agreement signed" in page


class TestApprovalsPages:
    def test_grant_with_expiry_list_and_revoke(
        self, gov: Governance, client: FlaskClient, browser_a: FlaskClient
    ) -> None:
        until = (datetime.now(UTC) + timedelta(days=30)).date()
        response = post_form(
            browser_a,
            f"/web/communities/{NATION_A}/approvals",
            {
                "requester": RESEARCHER,
                "purposes": "research",
                "data_categories": "health",
                "valid_until": until.isoformat(),
            },
        )
        # Step 2 of 2: what the approval allows, and a note for the record (required).
        assert response.status_code == 200 and "Confirm the approval" in text_of(response)
        assert "Univ may use members&#39; health data for research." in text_of(response)
        form = dict(parse_qsl(hidden_fields(text_of(response))))
        assert form["step"] == "confirm" and form["requester"] == RESEARCHER
        path = f"/web/communities/{NATION_A}/approvals"
        assert post_form(browser_a, path, {**form, "notes": "  "}).status_code == 400
        assert assert_ok(client.get(path.replace("/web/", "/v1/"), headers=gov.steward()))["approvals"] == []
        response = post_form(browser_a, path, {**form, "notes": "DSA 2027-04"})
        assert response.status_code == 302
        [approval] = assert_ok(client.get(f"/v1/communities/{NATION_A}/approvals", headers=gov.steward()))[
            "approvals"
        ]
        assert approval["expires_at"].startswith((until + timedelta(days=1)).isoformat())
        page = text_of(browser_a.get(f"/web/communities/{NATION_A}/approvals"))
        assert "Univ may use members&#39; health data for research." in page

        assert approval["notes"] == "DSA 2027-04"

        # Revoking: the button opens the confirmation, which needs a reason.
        revoke = f"/web/communities/{NATION_A}/approvals/{approval['id']}/revoke"
        assert f'href="{revoke}"' in page
        confirm = browser_a.get(revoke)
        assert confirm.status_code == 200 and "Yes, revoke this approval" in text_of(confirm)
        assert post_form(browser_a, revoke, {"reason": " "}).status_code == 400
        assert post_form(browser_a, revoke, {"reason": "ended"}).status_code == 302
        listed = assert_ok(
            client.get(
                f"/v1/communities/{NATION_A}/approvals",
                headers=gov.steward(),
                query_string={"include_revoked": "true"},
            )
        )["approvals"]
        assert listed[0]["status"] == "revoked" and listed[0]["revoked_reason"] == "ended"

    def test_waiting_requests_are_grouped_and_granted_after_a_confirmation(
        self, gov: Governance, browser_a: FlaskClient
    ) -> None:
        gov.rule(base=APPROVAL_RULE)
        gov.consent()
        for _ in range(2):
            assert reason_codes(gov.ask("research", "health")) == ["approval_required"]
        page = text_of(browser_a.get(f"/web/communities/{NATION_A}/waiting"))
        assert "Univ: Research" in page and "2 refused requests" in page
        assert MEMBER["value"] not in page

        response = post_form(
            browser_a,
            f"/web/communities/{NATION_A}/approvals",
            {
                "from": "waiting",
                "requester": RESEARCHER,
                "purposes": "research",
                "data_categories": "health",
                "valid_until": (datetime.now(UTC) + timedelta(days=90)).date().isoformat(),
            },
        )
        assert response.status_code == 200 and "Step 2 of 2" in text_of(response)
        assert gov.ask("research", "health")["decision"] == "deny"  # nothing granted yet
        form = dict(parse_qsl(hidden_fields(text_of(response))))
        assert form["from"] == "waiting"
        response = post_form(
            browser_a, f"/web/communities/{NATION_A}/approvals", {**form, "notes": "Agreement 12"}
        )
        assert response.status_code == 302 and response.headers["Location"].endswith("/waiting")
        assert gov.ask("research", "health")["decision"] == "permit"
        assert "An approval in force now covers" in text_of(
            browser_a.get(f"/web/communities/{NATION_A}/waiting")
        )


class TestDecisionsPage:
    def test_a_chart_and_a_table_and_never_a_subject(
        self, app: Flask, gov: Governance, browser_a: FlaskClient
    ) -> None:
        ask_a_few(gov)
        gov.rule()
        gov.ask("research", "health")
        response = browser_a.get(f"/web/communities/{NATION_A}/decisions")
        page = text_of(response)
        assert response.status_code == 200
        assert '<svg class="chart"' in page and 'class="bar-permit"' in page and 'class="bar-deny"' in page
        assert "3 allowed and 1 refused" in page
        services = app.extensions["consent_service"]
        with services.sessions() as session:
            pseudonym = services.subject(session, **MEMBER).key
        consent_ids = [c.id for c in _consents(app)]
        for secret in (MEMBER["value"], OUTSIDER["value"], pseudonym, *consent_ids):
            assert secret not in page

    def test_other_periods(self, browser_a: FlaskClient) -> None:
        assert "last 30 days" in text_of(browser_a.get(f"/web/communities/{NATION_A}/decisions?days=30"))
        assert browser_a.get(f"/web/communities/{NATION_A}/decisions?days=7").status_code == 200


def _consents(app: Flask) -> list[Any]:
    from consent_service.storage.models import Consent

    with app.extensions["consent_service"].sessions() as session:
        return list(session.scalars(select(Consent)))


# -- intake pages ------------------------------------------------------------------------------

CONSENT_FORM = {
    "system": SUBJECT["system"],
    "value": SUBJECT["value"],
    "communities": NATION_A,
    "purposes": ["service-delivery", "service-planning"],
    "data_categories": ["health", "housing"],
    "recipients": [PROVIDER, RESEARCHER],
    "method": "verbal",
    "obtained_by": "Wes",
    "notes": "interpreter present",
    "setting": "office",
}


def record_through_the_form(worker: FlaskClient, **changes: Any) -> str:
    response = post_form(worker, "/web/intake/consents/new", {**CONSENT_FORM, **changes})
    assert response.status_code == 302, text_of(response)
    return response.headers["Location"].split("/")[-2]


class TestRecordConsent:
    def test_the_form_explains_each_purpose_and_category(self, worker: FlaskClient) -> None:
        page = text_of(worker.get("/web/intake/consents/new?setting=office"))
        assert "Providing a service to the person directly." in page
        assert "Sharing between the person&#39;s own service providers" in page

    def test_in_french(self, app: Flask, worker: FlaskClient) -> None:
        post_form(worker, "/web/language", {"language": "fr"})
        page = text_of(worker.get("/web/intake/consents/new?setting=office"))
        assert '<html lang="fr">' in page
        assert "Prestation de services" in page and "Fournir un service directement à la personne." in page
        assert "Enregistrer le consentement d&#39;une personne" in page
        assert user_row(app, WORKER).language == "fr"

    def test_recording_makes_the_same_consent_as_the_api_and_shows_a_receipt(
        self, app: Flask, world: Any, worker: FlaskClient, client: FlaskClient
    ) -> None:
        until = (datetime.now(UTC) + timedelta(days=365)).date()
        consent_id = record_through_the_form(worker, valid_until=until.isoformat())
        consent = assert_ok(
            client.get(f"/v1/consents/{consent_id}", headers=world.headers(PROVIDER, "consents:read"))
        )
        assert consent["recorded_by"] == PROVIDER and consent["communities"] == [NATION_A]
        assert consent["purposes"] == ["service-delivery", "service-planning"]
        assert consent["evidence"] == {
            "method": "verbal",
            "obtained_by": "Wes",
            "notes": "interpreter present",
            "setting": "office",
        }
        # The typed date ends at midnight in the deployment's zone (America/Toronto by default).
        midnight = datetime.min.time()
        end = datetime.combine(until + timedelta(days=1), midnight, tzinfo=ZoneInfo("America/Toronto"))
        assert datetime.fromisoformat(consent["expires_at"]) == end

        page = text_of(worker.get(f"/web/intake/consents/{consent_id}/receipt"))
        assert (
            "the person agreed that Outreach-Org and Univ may use information about their health and "
            "housing for service delivery and service planning." in page
        )
        assert str(qr_svg(consent["receipt"], title="Signed receipt (QR code)")) in page

    def test_what_the_api_refuses_the_form_refuses_and_nothing_is_written(
        self, app: Flask, worker: FlaskClient
    ) -> None:
        with unchanged_tables(app):
            missing = post_form(worker, "/web/intake/consents/new", {**CONSENT_FORM, "purposes": []})
            unknown = post_form(
                worker, "/web/intake/consents/new", {**CONSENT_FORM, "recipients": "no-such-org"}
            )
            past = post_form(
                worker, "/web/intake/consents/new", {**CONSENT_FORM, "valid_until": "2001-01-01"}
            )
        assert missing.status_code == 400 and "Tick at least one use." in text_of(missing)
        assert unknown.status_code == 400 and "unknown organization: no-such-org" in text_of(unknown)
        assert past.status_code == 400 and "must be in the future" in text_of(past)

    def test_another_organizations_receipt_is_not_found(
        self, app: Flask, gov: Governance, worker: FlaskClient
    ) -> None:
        theirs = gov.world.headers("gla", "consents:write")
        consent = assert_ok(
            gov.client.post(
                "/v1/consents",
                headers=theirs,
                json={
                    "subject": {**SUBJECT, "system": "urn:gla:client"},
                    "purposes": ["research"],
                    "data_categories": ["health"],
                    "recipients": ["gla"],
                    "evidence": {"method": "verbal", "obtained_by": "x"},
                },
            ),
            201,
        )
        assert worker.get(f"/web/intake/consents/{consent['id']}/receipt").status_code == 404
        assert worker.get(f"/web/intake/consents/{consent['id']}/withdraw").status_code == 404


class TestFindAndWithdraw:
    def test_find_by_identifier_then_withdraw_in_two_steps(
        self, world: Any, worker: FlaskClient, client: FlaskClient
    ) -> None:
        consent_id = record_through_the_form(worker)
        found = post_form(
            worker, "/web/intake/find", {"system": SUBJECT["system"], "value": SUBJECT["value"]}
        )
        assert found.status_code == 200 and f"/web/intake/consents/{consent_id}/withdraw" in text_of(found)

        step_one = worker.get(f"/web/intake/consents/{consent_id}/withdraw")
        assert step_one.status_code == 200 and "Step 2 of 2" in text_of(step_one)
        headers = world.headers(PROVIDER, "consents:read")
        assert assert_ok(client.get(f"/v1/consents/{consent_id}", headers=headers))["status"] == "active"

        step_two = post_form(worker, f"/web/intake/consents/{consent_id}/withdraw", {"reason": "asked to"})
        assert step_two.status_code == 302
        consent = assert_ok(client.get(f"/v1/consents/{consent_id}", headers=headers))
        assert consent["status"] == "revoked" and consent["revoked_reason"] == "asked to"
        assert "withdrawn" in text_of(worker.get(f"/web/intake/consents/{consent_id}/receipt"))

    def test_nobody_found_says_so_without_an_error(self, worker: FlaskClient) -> None:
        response = post_form(worker, "/web/intake/find", {"system": "urn:x", "value": "nobody"})
        assert response.status_code == 200 and "has recorded no consent of this person" in text_of(response)

    def test_the_access_report_prints(self, worker: FlaskClient) -> None:
        record_through_the_form(worker)
        response = post_form(
            worker, "/web/intake/access-report", {"system": SUBJECT["system"], "value": SUBJECT["value"]}
        )
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


# -- every page: CSP, language, labels ----------------------------------------------------------


class _Audit(HTMLParser):
    """Collects what the accessibility and CSP checks need from one page."""

    def __init__(self) -> None:
        super().__init__()
        self.html_lang: str | None = None
        self.inputs: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.inline_scripts = 0
        self.style_attributes = 0
        self.ids: list[str] = []
        self.described_by: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.html_lang = attributes.get("lang")
        if "style" in attributes or tag == "style":
            self.style_attributes += 1
        if tag == "script" and "src" not in attributes:
            self.inline_scripts += 1
        if tag in ("input", "select", "textarea") and attributes.get("type") not in ("hidden", "submit"):
            self.inputs.append(attributes)
        if tag == "label" and attributes.get("for"):
            self.label_for.add(str(attributes["for"]))
        if any(name.startswith("on") for name in attributes):
            self.inline_scripts += 1
        if attributes.get("id"):
            self.ids.append(str(attributes["id"]))
        for name in ("aria-describedby", "aria-labelledby"):
            self.described_by |= set(str(attributes.get(name) or "").split())


def audit_page(response: Any) -> _Audit:
    assert response.status_code in (200, 400), response.status_code
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    audit = _Audit()
    audit.feed(text_of(response))
    assert audit.html_lang in ("en", "fr")
    assert audit.inline_scripts == 0 and audit.style_attributes == 0
    unlabelled = [i for i in audit.inputs if i.get("id") not in audit.label_for and not i.get("aria-label")]
    assert not unlabelled, unlabelled
    assert len(audit.ids) == len(set(audit.ids)), "ids must be unique"
    assert audit.described_by <= set(audit.ids), audit.described_by - set(audit.ids)
    return audit


class TestEveryPage:
    def test_pages_have_labels_a_language_and_no_inline_script_or_style(
        self, app: Flask, gov: Governance, browser_a: FlaskClient, worker: FlaskClient
    ) -> None:
        ask_a_few(gov)
        rule = gov.rule(base=APPROVAL_RULE)
        gov.approval()
        consent_id = record_through_the_form(worker)
        audit_page(app.test_client().get("/web/sign-in"))
        for path in [
            "/web/",
            "/web/communities/",
            *(f"/web/communities/{NATION_A}{p}" for p in COMMUNITY_PAGES),
            f"/web/communities/{NATION_A}/rules/{rule['id']}/retire",
        ]:
            audit_page(browser_a.get(path))
        audit_page(
            post_form(
                browser_a,
                f"/web/communities/{NATION_A}/rules/new",
                {
                    "action": "preview",
                    "effect": "deny",
                    "purposes": "research",
                    "data_categories": "health",
                    "requesters": "*",
                    "reason": "x",
                },
            )
        )
        for path in [
            "/web/",
            "/web/intake/consents/new",
            "/web/intake/consents/new?setting=street-outreach",
            "/web/intake/find",
            "/web/intake/reviews",
            f"/web/intake/consents/{consent_id}/receipt",
            f"/web/intake/consents/{consent_id}/withdraw",
        ]:
            audit_page(worker.get(path))
        audit_page(
            post_form(worker, "/web/intake/find", {"system": SUBJECT["system"], "value": SUBJECT["value"]})
        )
        audit_page(post_form(worker, "/web/intake/consents/new", {}))
        audit_page(post_form(worker, "/web/intake/consents/new", {"setting": "office"}))

    def test_error_pages_are_pages(self, browser_b: FlaskClient) -> None:
        response = browser_b.get(f"/web/communities/{NATION_A}/")
        assert response.mimetype == "text/html" and "You may not open this page" in text_of(response)

    def test_static_files_are_served(self, client: FlaskClient) -> None:
        for name in ("web.css", "web.js"):
            response = client.get(f"/static/{name}")
            assert response.status_code == 200
            response.close()


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in [n for n in os.environ if n.startswith("CONSENT_") and n != "CONSENT_TEST_DATABASE_URL"]:
        monkeypatch.delenv(name)
    env = {
        "CONSENT_INSTANCE_PATH": str(tmp_path / "instance"),
        "CONSENT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CONSENT_RATELIMIT_ENABLED": "false",
        **{f"CONSENT_{name}": str(value) for name, value in CHEAP_PASSWORDS.items()},
    }
    runner = CliRunner()

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)

    run.env = env  # type: ignore[attr-defined]
    assert run("db", "upgrade").exit_code == 0
    assert run("admin", "create-client", "--name", "x", "--organization", "outreach-org").exit_code == 0
    return run


class TestUsersCli:
    def test_create_then_sign_in(self, cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        import json

        from consent_service import create_app

        result = cli(
            "users",
            "create",
            "--email",
            "Wes@Outreach.example",
            "--name",
            "Wes",
            "--organization",
            "outreach-org",
            "--role",
            "intake",
            "--json",
            input=f"{PASSWORD}\n{PASSWORD}\n",
        )
        assert result.exit_code == 0, result.output
        created = json.loads(result.stdout.strip().splitlines()[-1])
        assert created["email"] == "wes@outreach.example"
        assert created["scopes"] == ["consents:read", "consents:write"]
        for name, value in cli.env.items():
            monkeypatch.setenv(name, value)
        app = create_app()
        try:
            client = app.test_client()
            assert sign_in(client, "wes@outreach.example").status_code == 302
            assert client.get("/web/intake/consents/new").status_code == 200
        finally:
            app.extensions["consent_service"].sessions.kw["bind"].dispose()

    def test_refuses_unknown_roles_short_passwords_unknown_organizations(self, cli) -> None:  # type: ignore[no-untyped-def]
        base = ["users", "create", "--email", "a@b.example", "--name", "A", "--organization", "outreach-org"]
        assert cli(*base, "--role", "admin", "--password", PASSWORD).exit_code != 0
        assert cli(*base, "--role", "intake", "--password", "short").exit_code != 0
        assert cli(*base[:-1], "nowhere", "--role", "intake", "--password", PASSWORD).exit_code != 0
        assert cli(*base, "--role", "intake", "--password", PASSWORD).exit_code == 0
        assert cli(*base, "--role", "intake", "--password", PASSWORD).exit_code != 0  # exists already
        listed = cli("users", "list")
        assert "a@b.example" in listed.output and "active" in listed.output


class TestQrCode:
    def test_the_svg_draws_exactly_the_modules_of_the_code(self) -> None:
        import qrcode
        import qrcode.constants

        data = "eyJhbGciOiJFUzI1NiJ9." + "x" * 1500 + ".sig"
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, border=4)
        code.add_data(data)
        code.make(fit=True)
        expected = {(x, y) for y, row in enumerate(code.get_matrix()) for x, dark in enumerate(row) if dark}
        path = re.search(r' d="([^"]+)"', str(qr_svg(data, title="t"))).group(1)
        drawn = {
            (x + i, y)
            for x, y, n in (
                (int(a), int(b), int(c)) for a, b, c in re.findall(r"M(\d+) (\d+)\.5h(\d+)", path)
            )
            for i in range(n)
        }
        assert drawn == expected
