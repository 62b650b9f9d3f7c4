"""The person's own view (issue 15 item 3): with the access code of their receipt and nothing else,
the person sees their consents and every request for their data with the answer and why, and
withdraws a consent in two steps. Codes are shown once, stored hashed, replaced by a worker
when lost, rate-limited, and never logged.

Runs on SQLite and, with ``CONSENT_TEST_DATABASE_URL``, on PostgreSQL.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import pytest
from api_helpers import all_rows_as_text, assert_error, assert_ok, table_counts
from flask import Flask
from flask.testing import FlaskClient
from governance_helpers import GOVERNMENT, MEMBER, MEMBER_CONSENT, OUTSIDER, PROVIDER, Governance
from security_helpers import legacy_consent
from sqlalchemy import select
from web_helpers import CHEAP_PASSWORDS, CSRF, WORKER, make_people, post_form, signed_in, text_of

from consent_service import create_app
from consent_service.container import EXTENSION
from consent_service.core import access_codes
from consent_service.core.wire import AuditTag
from consent_service.services import audit as audit_log
from consent_service.storage.models import AuditEntry, ConsentEvent

CODE = re.compile(r"^[2-9A-HJ-NP-Z]{4}(-[2-9A-HJ-NP-Z]{4}){4}$")
HEALTH_DENY = "Nation A has not approved health research"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, **CHEAP_PASSWORDS}


@pytest.fixture
def gov(client: FlaskClient, world: Any) -> Governance:
    return Governance(client, world)


def csrf_of(client: FlaskClient) -> str:
    match = CSRF.search(text_of(client.get("/me", follow_redirects=True)))
    assert match, "no CSRF token on /me"
    return match.group(1)


def enter(client: FlaskClient, code: str, **kwargs: Any) -> Any:
    """Type ``code`` into the form of /me, as the person would."""
    return client.post("/me", data={"code": code, "csrf_token": csrf_of(client)}, **kwargs)


def opened(app: Flask, code: str) -> FlaskClient:
    """A phone of the person's, on their page."""
    phone = app.test_client()
    response = enter(phone, code)
    assert response.status_code == 303, text_of(response)
    assert response.headers["Location"].endswith("/me/consents")
    return phone


def my_page(phone: FlaskClient) -> str:
    response = phone.get("/me/consents")
    assert response.status_code == 200, response.status_code
    return text_of(response)


def without_token(html: str) -> str:
    return CSRF.sub("", html)


def entries(app: Flask, tag: str) -> list[AuditEntry]:
    with app.extensions[EXTENSION].sessions() as session:
        rows = list(session.scalars(select(AuditEntry).where(AuditEntry.tag == tag).order_by(AuditEntry.seq)))
        session.expunge_all()
        return rows


class TestTheCode:
    def test_the_answer_that_records_a_consent_carries_a_code_of_100_bits(self, gov: Governance) -> None:
        consent = gov.consent()
        assert CODE.match(consent["access_code"]), consent["access_code"]
        assert access_codes.BITS == 100 and len(access_codes.ALPHABET) == 32
        assert not set("01IO") & set(access_codes.ALPHABET)
        # Shown once: reading the consent again does not show it.
        again = assert_ok(gov.client.get(f"/v1/consents/{consent['id']}", headers=gov.recorder()))
        assert "access_code" not in again

    def test_the_printable_receipt_points_to_the_page_but_never_holds_the_code(self, gov: Governance) -> None:
        consent = gov.consent()
        page = text_of(gov.client.get(f"/v1/consents/{consent['id']}/receipt.html", headers=gov.recorder()))
        assert 'id="own-page"' in page and "http://localhost/me" in page
        assert consent["access_code"] not in page

    def test_only_a_keyed_hash_is_stored(self, app: Flask, gov: Governance) -> None:
        code = gov.consent()["access_code"]
        stored = all_rows_as_text(app)
        bare = access_codes.normalize(code)
        assert bare is not None and code not in stored and bare not in stored
        assert access_codes.digest(app.extensions[EXTENSION].access_code_key, bare) in stored

    def test_the_code_opens_the_page_however_it_is_typed(self, app: Flask, gov: Governance) -> None:
        consent = gov.consent()
        code = consent["access_code"]
        for typed in (code, code.lower(), code.replace("-", ""), " ".join(code.split("-"))):
            page = my_page(opened(app, typed))
            assert consent["id"] in page

    def test_without_a_code_every_page_sends_the_visitor_to_the_form(
        self, app: Flask, gov: Governance
    ) -> None:
        consent = gov.consent()
        stranger = app.test_client()
        for method, path in (
            ("GET", "/me/consents"),
            ("GET", f"/me/consents/{consent['id']}/withdraw"),
            ("POST", f"/me/consents/{consent['id']}/withdraw"),
        ):
            data = {"csrf_token": csrf_of(stranger)} if method == "POST" else None
            response = stranger.open(path, method=method, data=data)
            assert response.status_code in (302, 303), (method, path, response.status_code)
            assert response.headers["Location"].endswith("/me")
        assert (
            assert_ok(gov.client.get(f"/v1/consents/{consent['id']}", headers=gov.recorder()))["status"]
            == "active"
        )

    def test_a_wrong_code_is_refused_without_saying_whether_it_exists(
        self, app: Flask, gov: Governance
    ) -> None:
        code = gov.consent()["access_code"]
        replaced = assert_ok(
            gov.client.post(f"/v1/consents/{gov.consent()['id']}/access-code", headers=gov.recorder()), 201
        )
        assert replaced["codes_replaced"] == 2  # both receipts' codes of the person
        never_issued = access_codes.display(access_codes.new_code())
        answers = []
        for typed in (code, never_issued, "not a code at all", ""):
            visitor = app.test_client()
            before = table_counts(app)
            response = enter(visitor, typed)
            assert response.status_code == 401
            answers.append(without_token(text_of(response)))
            assert visitor.get("/me/consents").status_code == 302  # no session was opened
            after = table_counts(app)
            assert {t: n for t, n in after.items() if n != before[t]}.keys() <= {
                "person_access_failures",
                "audit_entry",
                "audit_head",
            }
        assert len(set(answers)) == 1
        assert "does not open anything" in answers[0]
        assert code not in answers[0] and never_issued not in answers[0]  # what was typed is not echoed

    def test_wrong_codes_are_audited_in_aggregate(self, app: Flask, gov: Governance) -> None:
        gov.consent()
        visitor = app.test_client()
        for _ in range(10):
            assert enter(visitor, access_codes.new_code()).status_code == 401
        refused = entries(app, AuditTag.ACCESS_CODES_REFUSED)
        assert [e.payload["failures"] for e in refused] == [1, 10]
        assert all(e.actor_org is None and e.actor_client is None for e in refused)
        assert audit_log.verify(app.extensions[EXTENSION]).ok

    def test_a_sign_in_is_audited_as_the_person(self, app: Flask, gov: Governance) -> None:
        code = gov.consent()["access_code"]
        opened(app, code)
        [used] = entries(app, AuditTag.ACCESS_CODE_USED)
        assert used.actor_org == PROVIDER and used.actor_client == f"person-code:{used.object_id}"
        assert code not in str(used.payload)


class TestRotation:
    def test_a_new_code_works_and_the_old_one_stops_working_open_pages_too(
        self, app: Flask, gov: Governance
    ) -> None:
        consent = gov.consent()
        old = consent["access_code"]
        phone = opened(app, old)
        assert consent["id"] in my_page(phone)
        new = assert_ok(
            gov.client.post(f"/v1/consents/{consent['id']}/access-code", headers=gov.recorder()), 201
        )
        assert CODE.match(new["access_code"]) and new["access_code"] != old
        assert new["consent_id"] == consent["id"] and new["codes_replaced"] == 1
        # The page already open closes at its next request; the old code no longer opens it.
        response = phone.get("/me/consents")
        assert response.status_code == 302 and response.headers["Location"].endswith("/me")
        assert enter(app.test_client(), old).status_code == 401
        assert consent["id"] in my_page(opened(app, new["access_code"]))
        [rotated] = entries(app, AuditTag.ACCESS_CODE_ROTATED)
        assert rotated.object_id == consent["id"] and rotated.payload["codes_replaced"] == 1
        assert new["access_code"] not in str(rotated.payload)

    def test_another_organization_cannot_replace_the_code(self, app: Flask, gov: Governance) -> None:
        consent = gov.consent()
        outsider = gov.world.headers("shelter-b", "consents:write")
        before = table_counts(app)
        assert_error(
            gov.client.post(f"/v1/consents/{consent['id']}/access-code", headers=outsider), 404, "not_found"
        )
        assert table_counts(app) == before
        assert consent["id"] in my_page(opened(app, consent["access_code"]))

    def test_the_intake_page_shows_the_code_once_and_makes_a_new_one(
        self, app: Flask, gov: Governance
    ) -> None:
        make_people(gov.world)
        worker = signed_in(app.test_client(), WORKER)
        recorded = post_form(
            worker,
            "/web/intake/consents/new",
            {
                "system": MEMBER["system"],
                "value": MEMBER["value"],
                "purposes": ["service-delivery"],
                "data_categories": ["housing"],
                "recipients": [PROVIDER],
                "method": "verbal",
                "obtained_by": "Wes",
                "setting": "office",
            },
        )
        assert recorded.status_code == 302, text_of(recorded)
        receipt = recorded.headers["Location"]
        consent_id = receipt.split("/")[-2]
        first = worker.get(receipt)
        assert first.headers["Cache-Control"] == "no-store"
        code = re.search(r'id="access-code">([^<]+)<', text_of(first))
        assert code and CODE.match(code.group(1))
        assert "http://localhost/me" in text_of(first)
        # The cookie between the two requests held it encrypted, and now holds nothing of it.
        cookie = worker.get_cookie("consent_session")
        assert cookie is not None and code.group(1) not in cookie.value
        again = text_of(worker.get(receipt))
        assert 'id="access-code"' not in again and code.group(1) not in again
        assert consent_id in my_page(opened(app, code.group(1)))
        made = post_form(worker, f"/web/intake/consents/{consent_id}/access-code", {})
        assert made.status_code == 302
        fresh = re.search(r'id="access-code">([^<]+)<', text_of(worker.get(receipt)))
        assert fresh and fresh.group(1) != code.group(1)
        assert enter(app.test_client(), code.group(1)).status_code == 401
        assert consent_id in my_page(opened(app, fresh.group(1)))


class TestRekeying:
    def test_a_code_follows_the_person_when_a_v1_spelling_is_re_keyed(
        self, app: Flask, gov: Governance
    ) -> None:
        spelled = {"system": MEMBER["system"], "value": "  " + MEMBER["value"] + " "}
        legacy = legacy_consent(gov.client, gov.world, spelled)
        # A v1-era consent has no code: the worker makes one, under the key it is stored by.
        made = assert_ok(
            gov.client.post(f"/v1/consents/{legacy['id']}/access-code", headers=gov.recorder()), 201
        )
        assert made["codes_replaced"] == 0 and legacy["id"] in my_page(opened(app, made["access_code"]))
        asked = gov.ask("service-planning", "housing", subject=spelled, requester=GOVERNMENT)
        assert_ok(gov.client.post("/v1/subjects/rekey", headers=gov.recorder(), json={"subject": spelled}))
        page = my_page(opened(app, made["access_code"]))
        assert legacy["id"] in page and asked["decision_id"] not in page  # ids of decisions are not shown
        assert page.count('class="person-card decision') == 1  # the decision under the old key is found
        assert audit_log.verify(app.extensions[EXTENSION]).ok


class TestWhatThePageShows:
    def test_decisions_with_who_asked_the_answer_and_why(self, app: Flask, gov: Governance) -> None:
        consent = gov.consent()
        permitted = gov.ask("service-planning", "housing", requester=GOVERNMENT)
        gov.rule()  # Nation A: no health research
        refused = gov.ask("research", "health")
        assert permitted["decision"] == "permit" and refused["decision"] == "deny"
        page = my_page(opened(app, consent["access_code"]))
        assert "Allowed" in page and "Refused" in page
        assert HEALTH_DENY in page  # the community's reason, in its own words
        assert "Gla" in page and "Univ" in page  # who asked, by name
        assert page.count('class="person-card decision') == 2

    def test_nothing_about_other_subjects_or_other_organizations_consents(
        self, app: Flask, gov: Governance
    ) -> None:
        mine = gov.consent()
        theirs = gov.consent(subject=OUTSIDER)
        about_them = gov.ask("service-planning", "housing", subject=OUTSIDER, requester=GOVERNMENT)
        # The same person at another organization, under a shared system: its own code, its own view.
        shared = gov.world.system("urn:ca-on:health-card")
        person = {"system": shared, "value": "1234-567-890"}
        here = gov.consent(subject=person)
        elsewhere = assert_ok(
            gov.client.post(
                "/v1/consents",
                headers=gov.world.headers("shelter-b", "consents:write"),
                json={**MEMBER_CONSENT, "subject": person, "communities": [], "recipients": [GOVERNMENT]},
            ),
            201,
        )
        page = my_page(opened(app, mine["access_code"]))
        assert mine["id"] in page
        for hidden in (
            theirs["id"],
            about_them["decision_id"],
            here["id"],
            elsewhere["id"],
            OUTSIDER["value"],
        ):
            assert hidden not in page
        shared_page = my_page(opened(app, here["access_code"]))
        assert here["id"] in shared_page and elsewhere["id"] not in shared_page
        # Nor can another organization's consent, or another person's, be withdrawn from here.
        phone = opened(app, here["access_code"])
        token = csrf_of(phone)
        for other in (elsewhere["id"], mine["id"], str(uuid.uuid4())):
            for method in ("GET", "POST"):
                response = phone.open(
                    f"/me/consents/{other}/withdraw", method=method, data={"csrf_token": token}
                )
                assert response.status_code == 404, (other, method)
        assert (
            assert_ok(
                gov.client.get(
                    f"/v1/consents/{elsewhere['id']}", headers=gov.world.headers("shelter-b", "consents:read")
                )
            )["status"]
            == "active"
        )

    def test_the_page_is_in_french_for_a_french_reader(self, app: Flask, gov: Governance) -> None:
        code = gov.consent()["access_code"]
        phone = app.test_client()
        phone.post("/web/language", data={"language": "fr", "csrf_token": csrf_of(phone), "next": "/me"})
        assert "Voir vos consentements" in text_of(phone.get("/me"))
        enter(phone, code)
        page = my_page(phone)
        assert "Vos données : qui les a demandées, et pourquoi" in page
        assert "Retirer ce consentement" in page


class TestWithdrawal:
    def test_in_two_steps_recorded_as_done_by_the_person(self, app: Flask, gov: Governance) -> None:
        consent = gov.consent()
        phone = opened(app, consent["access_code"])
        page = my_page(phone)
        assert f"/me/consents/{consent['id']}/withdraw" in page  # step 1: the button beside it
        before = table_counts(app)
        confirm = phone.get(f"/me/consents/{consent['id']}/withdraw")  # step 2: confirm
        assert confirm.status_code == 200 and "Step 2 of 2" in text_of(confirm)
        assert table_counts(app) == before  # looking at step 2 changes nothing
        done = phone.post(
            f"/me/consents/{consent['id']}/withdraw",
            data={"reason": "I changed my mind", "csrf_token": csrf_of(phone)},
        )
        assert done.status_code == 303
        after = my_page(phone)
        assert "You have withdrawn this consent." in after and "I changed my mind" in after
        state = assert_ok(gov.client.get(f"/v1/consents/{consent['id']}", headers=gov.recorder()))
        assert state["status"] == "revoked"
        [revoked] = entries(app, AuditTag.CONSENT_REVOKED)
        assert revoked.object_id == consent["id"] and revoked.payload["by"] == "person"
        assert revoked.actor_client.startswith("person-code:") and revoked.actor_org == PROVIDER
        with app.extensions[EXTENSION].sessions() as session:
            [event] = session.scalars(
                select(ConsentEvent).where(
                    ConsentEvent.consent_id == consent["id"], ConsentEvent.kind == "revoked"
                )
            ).all()
            assert event.actor_client == revoked.actor_client and event.reason == "I changed my mind"
        # A decision after it is refused.
        assert gov.ask("service-planning", "housing", requester=GOVERNMENT)["decision"] == "deny"
        assert audit_log.verify(app.extensions[EXTENSION]).ok

    def test_without_the_form_token_nothing_is_withdrawn(self, app: Flask, gov: Governance) -> None:
        consent = gov.consent()
        phone = opened(app, consent["access_code"])
        before = table_counts(app)
        response = phone.post(f"/me/consents/{consent['id']}/withdraw", data={"reason": "forged"})
        assert response.status_code == 400
        assert table_counts(app) == before


class TestSession:
    def test_the_page_closes_after_its_minutes_whatever_the_use(
        self, app: Flask, gov: Governance, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        code = gov.consent()["access_code"]
        phone = opened(app, code)
        minutes = app.extensions[EXTENSION].settings["PERSON_SESSION_MINUTES"]
        assert minutes <= 15
        started = time.time()
        monkeypatch.setattr("consent_service.web.person.time.time", lambda: started + minutes * 60 - 5)
        my_page(phone)
        monkeypatch.setattr("consent_service.web.person.time.time", lambda: started + minutes * 60 + 1)
        response = phone.get("/me/consents")
        assert response.status_code == 302 and response.headers["Location"].endswith("/me")

    def test_closing_the_page_ends_the_session(self, app: Flask, gov: Governance) -> None:
        code = gov.consent()["access_code"]
        phone = opened(app, code)
        closed = phone.post("/me/sign-out", data={"csrf_token": csrf_of(phone)})
        assert closed.status_code == 303
        assert phone.get("/me/consents").status_code == 302

    def test_a_code_signs_a_worker_out_of_the_same_browser(self, app: Flask, gov: Governance) -> None:
        make_people(gov.world)
        code = gov.consent()["access_code"]
        desk = signed_in(app.test_client(), WORKER)
        assert enter(desk, code).status_code == 303
        assert desk.get("/web/intake/find").status_code == 302  # the worker's session is gone
        assert desk.get("/me/consents").status_code == 200


class TestLogs:
    def test_the_code_is_never_logged(
        self, app: Flask, gov: Governance, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        consent = gov.consent()
        code = consent["access_code"]
        phone = opened(app, code)
        my_page(phone)
        new = assert_ok(
            gov.client.post(f"/v1/consents/{consent['id']}/access-code", headers=gov.recorder()), 201
        )
        enter(app.test_client(), code)  # now a wrong code
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert caplog.records  # DEBUG logging was on
        for secret in (code, new["access_code"]):
            assert secret not in logged and access_codes.normalize(secret) not in logged


class TestRateLimits:
    @pytest.fixture
    def limited(self, app_config: dict[str, Any]):
        made: list[Flask] = []

        def make(**limits: Any) -> Flask:
            application = create_app(
                {
                    **app_config,
                    "RATELIMIT_ENABLED": True,
                    "RATELIMIT_DEFAULT": "1000 per hour",
                    "RATELIMIT_TOKEN": "1000 per hour",
                    "RATELIMIT_TOKEN_FAILURES": "1000 per hour",
                    **limits,
                }
            )
            made.append(application)
            return application

        yield make
        for application in made:
            application.extensions[EXTENSION].sessions.kw["bind"].dispose()

    def _code(self, application: Flask) -> str:
        from conftest import World

        client = application.test_client()
        gov = Governance(client, World(application, client))
        return str(gov.consent()["access_code"])

    def test_per_address_every_attempt_counts(self, limited: Any) -> None:
        application = limited(
            RATELIMIT_PERSON_CODE="3 per hour", RATELIMIT_PERSON_CODE_FAILURES="1000 per hour"
        )
        code = self._code(application)
        here = {"environ_base": {"REMOTE_ADDR": "10.0.0.7"}}
        phone = application.test_client()
        for _ in range(2):
            assert enter(phone, access_codes.new_code(), **here).status_code == 401
        assert enter(phone, code, **here).status_code == 303
        assert enter(application.test_client(), code, **here).status_code == 429  # even the right one now
        elsewhere = {"environ_base": {"REMOTE_ADDR": "10.0.0.8"}}
        assert enter(application.test_client(), code, **elsewhere).status_code == 303

    def test_wrong_codes_from_every_address_together(self, limited: Any) -> None:
        application = limited(
            RATELIMIT_PERSON_CODE="1000 per hour", RATELIMIT_PERSON_CODE_FAILURES="3 per hour"
        )
        code = self._code(application)
        for n in range(3):
            there = {"environ_base": {"REMOTE_ADDR": f"10.0.1.{n}"}}
            assert enter(application.test_client(), access_codes.new_code(), **there).status_code == 401
        late = {"environ_base": {"REMOTE_ADDR": "10.0.2.1"}}
        assert enter(application.test_client(), code, **late).status_code == 429
