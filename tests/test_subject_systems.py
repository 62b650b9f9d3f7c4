"""One person, one spelling (issue 12, contract v1.1 sections 4 and 5).

Subject systems are registered (to one organization, or shared); consents are recorded only
under one's own or a shared system; every spelling of one identifier is one person on every
path; subjects recorded before normalization are found by the spelling they were recorded
under, and re-keyed without losing a rule, membership, revocation or decision; the access
report shows an organization only what its own consents open.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from api_helpers import assert_error, assert_ok, unchanged_tables
from governance_helpers import (
    DENY_RULE,
    MEMBER_CONSENT,
    NATION_A,
    PROVIDER,
    RESEARCHER,
    Governance,
    reason_codes,
    seeded_governance,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from security_helpers import legacy_consent
from sqlalchemy import select

from consent_service.core import pseudonyms
from consent_service.storage.models import AuditEntry

SHARED = "urn:ca-on:health-card"


governance_seeds, seed, database_start, gov = seeded_governance("subject-systems")


def register(gov: Governance, headers: dict[str, str] | None = None, **body: Any):
    return gov.client.post("/v1/subject-systems", headers=headers or gov.world.admin(), json=body)


def consent_of(gov: Governance, subject: dict[str, str], org: str = PROVIDER, **changes: Any):
    """POST /v1/consents (the client is made on first use: call once before counting rows)."""
    return gov.client.post(
        "/v1/consents",
        headers=gov.world.headers(org, "consents:write"),
        json={**MEMBER_CONSENT, "subject": subject, **changes},
    )


def report(gov: Governance, subject: dict[str, str], org: str = PROVIDER):
    return gov.client.post(
        "/v1/subjects/access-report",
        headers=gov.world.headers(org, "consents:read"),
        json={"subject": subject},
    )


def ask(gov: Governance, subject: dict[str, str], purpose: str = "research", category: str = "health"):
    return gov.ask(purpose, category, subject=subject)


class TestRegistering:
    def test_to_an_organization_or_shared_then_listed(self, gov):
        made = assert_ok(register(gov, system="urn:shelter:resident", organization=PROVIDER), 201)
        assert made | {"created_at": None} == {
            "system": "urn:shelter:resident",
            "organization": PROVIDER,
            "shared": False,
            "case_insensitive": False,
            "created_at": None,
        }
        assert_ok(register(gov, system=SHARED, shared=True, case_insensitive=True), 201)
        anyone = gov.world.headers(RESEARCHER, "authorize")
        listed = assert_ok(gov.client.get("/v1/subject-systems", headers=anyone))
        by_system = {s["system"]: s for s in listed["subject_systems"]}
        assert by_system[SHARED]["shared"] and by_system[SHARED]["case_insensitive"]
        assert by_system["urn:shelter:resident"]["organization"] == PROVIDER

    @pytest.mark.parametrize("spelling", [SHARED, "URN:CA-ON:health-card", f" {SHARED} "])
    def test_a_system_registered_already_is_409_in_any_spelling(self, gov, app, spelling):
        assert_ok(register(gov, system=SHARED, shared=True), 201)
        with unchanged_tables(app):
            assert_error(register(gov, system=spelling, organization=PROVIDER), 409, "conflict")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"system": "urn:x:y"}, "organization"),
            ({"system": "urn:x:y", "organization": PROVIDER, "shared": True}, "organization"),
            ({"system": "client-registry", "shared": True}, "system"),
            ({"system": "http://example.org/ids", "shared": True}, "system"),
            ({"system": "urn:", "shared": True}, "system"),
        ],
    )
    def test_bad_bodies_are_400_naming_the_field(self, gov, app, body, field):
        with unchanged_tables(app):
            error = assert_error(register(gov, **body), 400, "validation_error")
        assert field in error["details"], error

    def test_an_unknown_organization_is_unknown_code(self, gov, app):
        with unchanged_tables(app):
            assert_error(register(gov, system="urn:x:y", organization="nobody"), 400, "unknown_code")

    def test_only_admin_registers(self, gov, app):
        headers = gov.world.headers(PROVIDER, "consents:write", "rules:write")
        with unchanged_tables(app):
            assert_error(register(gov, headers, system="urn:x:y", shared=True), 403, "forbidden")


class TestRecordingNeedsASystemOfOne:
    def test_an_unregistered_system_is_400_unknown_code_naming_it(self, gov, app):
        gov.world.headers(PROVIDER, "consents:write")
        with unchanged_tables(app):
            error = assert_error(
                consent_of(gov, {"system": "urn:nobody:x", "value": "C-1"}), 400, "unknown_code"
            )
        assert "subject.system" in error["details"], error

    def test_another_organizations_system_is_refused(self, gov, app):
        """Issue 12 finding 4: a throwaway consent under another organization's system was the
        way into the person's history; it is refused, so the report stays closed."""
        gov.world.headers("other-sp", "consents:write")
        with unchanged_tables(app):
            error = assert_error(
                consent_of(gov, MEMBER_CONSENT["subject"], org="other-sp"), 400, "unknown_code"
            )
        assert "subject.system" in error["details"]
        assert_error(report(gov, MEMBER_CONSENT["subject"], org="other-sp"), 404, "not_found")

    def test_a_shared_system_is_anyones(self, gov):
        gov.world.system(SHARED)
        gov.world.org("other-sp")
        for org in (PROVIDER, "other-sp"):
            assert_ok(consent_of(gov, {"system": SHARED, "value": "1234-567-890"}, org=org), 201)

    @pytest.mark.parametrize("system", ["client-registry", "mailto:x@example.org", "urn:", "   "])
    def test_a_system_that_is_not_an_absolute_uri_is_a_validation_error(self, gov, app, system):
        gov.world.headers(PROVIDER, "consents:write")
        with unchanged_tables(app):
            error = assert_error(consent_of(gov, {"system": system, "value": "C-1"}), 400, "validation_error")
        assert "subject" in error["details"], error


NFC, NFD = unicodedata.normalize("NFC", "Élodie-Ŝ-9"), unicodedata.normalize("NFD", "Élodie-Ŝ-9")


class TestOneSpelling:
    @pytest.mark.parametrize(
        ("recorded", "asked"),
        [
            ({"value": NFC}, {"value": NFD}),
            ({"value": NFD}, {"value": f"  {NFC}  "}),
            ({"value": "AB-9"}, {"value": " AB-9 "}),
            ({"value": "AB-9"}, {"system": "URN:Outreach-Org:client", "value": "AB-9"}),
        ],
    )
    def test_every_spelling_is_one_person_and_the_community_rule_reaches_it(self, gov, recorded, asked):
        """Issue 12 finding 7: a rule recorded on one spelling did not reach the other."""
        base = MEMBER_CONSENT["subject"]
        consent = assert_ok(consent_of(gov, {**base, **recorded}), 201)
        gov.rule(NATION_A, DENY_RULE)
        other = {**base, **asked}
        assert reason_codes(ask(gov, other)) == ["community_rule"]
        assert assert_ok(consent_of(gov, other), 201)["subject_pseudonym"] == consent["subject_pseudonym"]
        assert assert_ok(report(gov, other))["subject"]["pseudonym"] == consent["subject_pseudonym"]

    def test_a_case_insensitive_system_folds_case_and_a_sensitive_one_does_not(self, gov):
        gov.world.system(SHARED, case_insensitive=True)
        upper = assert_ok(consent_of(gov, {"system": SHARED, "value": "AB-9"}), 201)
        lower = assert_ok(consent_of(gov, {"system": SHARED, "value": "ab-9 "}), 201)
        assert upper["subject_pseudonym"] == lower["subject_pseudonym"]
        base = MEMBER_CONSENT["subject"]
        sensitive = [
            assert_ok(consent_of(gov, {**base, "value": v}), 201)["subject_pseudonym"]
            for v in ("AB-9", "ab-9")
        ]
        assert sensitive[0] != sensitive[1]

    def test_batch_takes_two_spellings_as_one_person(self, gov):
        base = MEMBER_CONSENT["subject"]
        assert_ok(consent_of(gov, {**base, "value": NFC}), 201)
        body = {
            "subjects": [{**base, "value": NFC}, {**base, "value": NFD}],
            "purpose": "service-planning",
            "data_categories": ["housing"],
        }
        headers = gov.world.headers(RESEARCHER, "authorize")
        answer = assert_ok(gov.client.post("/v1/authorize/batch", headers=headers, json=body))
        assert [d["decision"] for d in answer["decisions"]] == ["permit", "permit"]

    def test_the_web_intake_records_the_same_person_as_the_api(self, gov, app):
        from web_helpers import WORKER, make_people, post_form, signed_in

        base = MEMBER_CONSENT["subject"]
        api = assert_ok(consent_of(gov, {**base, "value": NFC}), 201)
        make_people(gov.world)
        browser = signed_in(app.test_client(), WORKER)
        page = post_form(browser, "/web/intake/find", {"system": base["system"], "value": f" {NFD} "})
        assert page.status_code == 200
        assert api["id"] in page.get_data(as_text=True)

    def test_the_web_intake_refuses_a_system_that_is_not_a_uri_on_its_field(self, gov, app):
        from web_helpers import WORKER, make_people, post_form, signed_in

        make_people(gov.world)
        browser = signed_in(app.test_client(), WORKER)
        page = post_form(browser, "/web/intake/find", {"system": "client-registry", "value": "C-1"})
        assert page.status_code == 400
        assert "must be an absolute URI" in page.get_data(as_text=True)


class TestRecordedBeforeNormalization:
    """A v1 database holds keys of identifiers as they were sent; they cannot be recomputed."""

    SPELLED = {"system": MEMBER_CONSENT["subject"]["system"], "value": "  C-7 "}
    NORMAL = {"system": MEMBER_CONSENT["subject"]["system"], "value": "C-7"}

    def legacy(self, gov: Governance) -> dict[str, Any]:
        terms = {k: MEMBER_CONSENT[k] for k in ("purposes", "data_categories", "recipients", "evidence")}
        consent = legacy_consent(gov.client, gov.world, self.SPELLED, communities=[NATION_A], **terms)
        gov.rule(NATION_A, DENY_RULE)
        return consent

    def test_the_spelling_as_given_still_finds_consent_membership_and_rule(self, gov):
        self.legacy(gov)
        assert reason_codes(ask(gov, self.SPELLED)) == ["community_rule"]
        answer = ask(gov, self.SPELLED, "service-planning", "housing")
        assert answer["decision"] == "permit", answer
        assert reason_codes(ask(gov, self.NORMAL)) == ["no_consent"]  # until re-keyed

    def test_rekey_moves_it_and_nothing_is_lost(self, gov, world, client):
        consent = self.legacy(gov)
        before = ask(gov, self.SPELLED, "service-planning", "housing")
        writer = world.headers(PROVIDER, "consents:write")
        moved = assert_ok(client.post("/v1/subjects/rekey", headers=writer, json={"subject": self.SPELLED}))
        assert moved["consents"] == [consent["id"]] and moved["communities"] == [NATION_A]
        # Every spelling now reaches the consent, the membership and the community's rule.
        for spelling in (self.NORMAL, self.SPELLED, {**self.NORMAL, "value": "C-7\n".strip() + " "}):
            assert reason_codes(ask(gov, spelling)) == ["community_rule"]
            assert ask(gov, spelling, "service-planning", "housing")["decision"] == "permit"
        # The decisions made under the old key stay in the person's report.
        decisions = {d["decision_id"] for d in assert_ok(report(gov, self.NORMAL))["decisions"]}
        assert before["decision_id"] in decisions
        # Audited, and the chain still verifies.
        with world.services.sessions() as session:
            tags = list(session.scalars(select(AuditEntry.tag)))
        assert "subject:rekeyed" in tags
        assert assert_ok(client.get("/v1/audit/verify", headers=world.headers("admin", "audit:read")))["ok"]
        # Sent again, nothing is left under the old spelling.
        assert_error(
            client.post("/v1/subjects/rekey", headers=writer, json={"subject": self.SPELLED}),
            404,
            "not_found",
        )

    def test_a_revocation_recorded_under_the_old_key_holds_after_rekey(self, gov, world, client):
        consent = self.legacy(gov)
        writer = world.headers(PROVIDER, "consents:write")
        revoke = f"/v1/consents/{consent['id']}/revoke"
        assert_ok(client.post(revoke, headers=writer, json={"reason": "asked"}))
        assert_ok(client.post("/v1/subjects/rekey", headers=writer, json={"subject": self.SPELLED}))
        assert reason_codes(ask(gov, self.NORMAL, "service-planning", "housing")) == ["no_consent"]
        # The membership (which belongs to the person, not the consent) still carries the rule:
        # the decision records it, though the requester, no longer named by any consent, is told
        # only what an unknown person's answer says (contract v1.1, section 3).
        answer = ask(gov, self.NORMAL)
        assert reason_codes(answer) == ["no_consent"]
        recorded = assert_ok(
            client.get(f"/v1/decisions/{answer['decision_id']}", headers=world.headers("admin", "audit:read"))
        )
        assert [r["code"] for r in recorded["reasons"]] == ["community_rule"]
        listed = assert_ok(report(gov, self.NORMAL))["consents"]
        assert [(c["id"], c["status"]) for c in listed] == [(consent["id"], "revoked")]

    def test_only_an_organization_with_a_consent_under_that_spelling_may_rekey(self, gov, world, client, app):
        self.legacy(gov)
        world.headers("other-sp", "consents:write")
        world.headers(PROVIDER, "consents:write")
        with unchanged_tables(app):
            other = world.headers("other-sp", "consents:write")
            assert_error(
                client.post("/v1/subjects/rekey", headers=other, json={"subject": self.SPELLED}),
                404,
                "not_found",
            )
            assert_error(
                client.post(
                    "/v1/subjects/rekey",
                    headers=world.headers(PROVIDER, "consents:write"),
                    json={"subject": self.NORMAL},
                ),
                404,
                "not_found",
            )


class TestAccessReport:
    def test_an_organization_without_a_consent_gets_404_as_for_an_unknown_person(self, gov):
        gov.world.system(SHARED)
        gov.world.org("other-sp")
        person = {"system": SHARED, "value": "1234"}
        assert_ok(consent_of(gov, person), 201)
        known = assert_error(report(gov, person, org="other-sp"), 404, "not_found")
        unknown = assert_error(
            report(gov, {"system": SHARED, "value": "9999"}, org="other-sp"), 404, "not_found"
        )
        assert known == unknown

    def test_under_a_shared_system_only_from_ones_own_first_consent(self, gov, world):
        world.system(SHARED)
        world.org("other-sp")
        person = {"system": SHARED, "value": "1234"}
        assert_ok(consent_of(gov, person), 201)
        earlier = ask(gov, person, "service-planning", "housing")
        assert_ok(consent_of(gov, person, org="other-sp", recipients=["other-sp"]), 201)
        later = ask(gov, person, "service-planning", "housing")
        theirs = {d["decision_id"] for d in assert_ok(report(gov, person, org="other-sp"))["decisions"]}
        assert later["decision_id"] in theirs and earlier["decision_id"] not in theirs
        # The first recorder, too, sees everything only under its own system; under a shared
        # one it sees from its own first consent, which came before both decisions here.
        ours = {d["decision_id"] for d in assert_ok(report(gov, person))["decisions"]}
        assert {earlier["decision_id"], later["decision_id"]} <= ours

    def test_under_ones_own_system_every_decision(self, gov):
        person = MEMBER_CONSENT["subject"]
        assert_ok(consent_of(gov, person, communities=[]), 201)
        first = ask(gov, person, "service-planning", "housing")
        body = assert_ok(report(gov, person))
        assert first["decision_id"] in {d["decision_id"] for d in body["decisions"]}

    def test_every_report_asked_for_is_an_entry_of_the_persons_report(self, gov, world):
        person = MEMBER_CONSENT["subject"]
        assert_ok(consent_of(gov, person), 201)
        first = assert_ok(report(gov, person))
        assert [r["organization"] for r in first["reports"]] == [PROVIDER]  # this one
        world.org("other-sp")
        assert_error(report(gov, person, org="other-sp"), 404, "not_found")  # refused: not an entry
        second = assert_ok(report(gov, person))
        assert [r["organization"] for r in second["reports"]] == [PROVIDER, PROVIDER]
        assert second["reports"][0]["at"] == first["generated_at"]
        page = gov.client.post(
            "/v1/subjects/access-report",
            query_string={"format": "html"},
            headers=world.headers(PROVIDER, "consents:read"),
            json={"subject": person},
        )
        listed = page.get_data(as_text=True).split("asked for this report</h2>")[1].split("</section>")[0]
        assert listed.count(": Outreach-Org</li>") == 3  # the two before, and this one


class TestUpgradingAVersion1Database:
    """A deployment upgraded from v1 (docs/upgrading.md): its consents were keyed by identifiers
    as they were sent, and no system was registered. Made here by recording as today, going
    back to migration 0004 (before subject systems) and re-keying the rows as v1 keyed them."""

    def test_migration_0007_registers_the_recorders_systems_and_keeps_every_subject(
        self, app, app_config, client, world
    ):
        from alembic import command
        from sqlalchemy import update

        from consent_service import create_app
        from consent_service.container import EXTENSION
        from consent_service.core import pseudonyms
        from consent_service.storage import models
        from consent_service.storage.migrate import alembic_config, upgrade

        gov = Governance(client, world)
        spelled = {"system": "URN:Outreach-Org:client", "value": "C-42 "}  # v1 took it as sent
        terms = {k: MEMBER_CONSENT[k] for k in ("purposes", "data_categories", "recipients", "evidence")}
        consent = assert_ok(consent_of(gov, spelled, communities=[NATION_A], **terms), 201)
        gov.rule(NATION_A, DENY_RULE)
        services = app.extensions[EXTENSION]
        v1_key = pseudonyms.key_as_given(services.pseudonym_key, **spelled)
        url, schema = app_config["DATABASE_URL"], app_config.get("DB_SCHEMA", "")
        services.sessions.kw["bind"].dispose()
        try:
            command.downgrade(alembic_config(url, schema), "0004")
            with services.sessions() as session:
                for table in (models.Consent, models.Membership):
                    session.execute(update(table).values(subject_key=v1_key))
                session.commit()
            services.sessions.kw["bind"].dispose()
        finally:
            upgrade(url, schema=schema)

        upgraded = create_app(app_config)
        client = upgraded.test_client()
        world.__init__(upgraded, client)
        gov = Governance.__new__(Governance)
        gov.client, gov.world = client, world
        # The recorder's conventional system was registered by the migration: it records again.
        listed = assert_ok(client.get("/v1/subject-systems", headers=world.headers(RESEARCHER, "authorize")))
        assert {
            "system": "urn:outreach-org:client",
            "organization": PROVIDER,
            "shared": False,
            "case_insensitive": False,
        } in [
            {k: s[k] for k in ("system", "organization", "shared", "case_insensitive")}
            for s in listed["subject_systems"]
        ]
        assert_ok(consent_of(gov, {"system": "urn:outreach-org:client", "value": "C-43"}), 201)
        # The v1 subject: found by its spelling, its community's rule reaching it; then re-keyed.
        assert reason_codes(ask(gov, spelled)) == ["community_rule"]
        writer = world.headers(PROVIDER, "consents:write")
        moved = assert_ok(client.post("/v1/subjects/rekey", headers=writer, json={"subject": spelled}))
        assert moved["consents"] == [consent["id"]]
        normal = {"system": "urn:outreach-org:client", "value": "C-42"}
        assert reason_codes(ask(gov, normal)) == ["community_rule"]
        assert ask(gov, normal, "service-planning", "housing")["decision"] == "permit"
        upgraded.extensions[EXTENSION].sessions.kw["bind"].dispose()


@settings(max_examples=300, deadline=None, database=None)
@given(
    system=st.sampled_from(
        ["urn:outreach-org:client", "URN:Outreach-Org:client", " https://X.org/id", "urn:x"]
    ),
    value=st.text(max_size=12),
    insensitive=st.booleans(),
)
def test_both_keys_at_once_are_the_two_keys(system: str, value: str, insensitive: bool) -> None:
    """``pseudonyms.keys`` (what resolving a subject computes) is ``subject_key`` of the normalized
    spelling and ``key_as_given`` of the spelling sent, also when it skips the second HMAC."""
    secret = b"s" * 32
    normalized = pseudonyms.normalize_system(system)
    norm_value = pseudonyms.normalize_value(value, case_insensitive=insensitive)
    assert pseudonyms.keys(
        secret, system=normalized, value=norm_value, given_system=system, given_value=value
    ) == (
        pseudonyms.subject_key(secret, system=normalized, value=norm_value),
        pseudonyms.key_as_given(secret, system=system, value=value),
    )
