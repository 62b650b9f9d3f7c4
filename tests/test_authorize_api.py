"""POST /v1/authorize (contract, "Authorize"): the rough-sleeper case, coverage, freshness, records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from api_helpers import (
    CONSENT,
    DEFAULT_OBLIGATIONS,
    NATIONALITY_AGGREGATE,
    SUBJECT,
    Clock,
    ask,
    assert_error,
    assert_ok,
    engine_of,
    iso,
    record_consent,
    rough_sleeper_orgs,
    table_counts,
    unchanged_tables,
)
from sqlalchemy import select

from consent_service.storage.models import AuditEntry, Decision


@pytest.fixture
def outreach(world) -> dict[str, str]:
    rough_sleeper_orgs(world)
    world.org("shelter-co")
    return world.headers("outreach-org", "consents:write", "authorize")


@pytest.fixture
def asker(world, outreach):
    """``asker(org)`` -> the authorize headers of that organization's client."""
    return lambda org: world.headers(org, "authorize")


@pytest.fixture
def consent(client, outreach) -> dict:
    """The contract's example consent, recorded by outreach-org."""
    return record_consent(client, outreach)


def given_consent(client, outreach, purposes: list[str], data_categories: list[str]) -> dict:
    """A consent with just these terms, gla a recipient."""
    return record_consent(
        client, outreach, purposes=purposes, data_categories=data_categories, recipients=["gla"]
    )


@contextmanager
def refused_inserts(app, table: str) -> Iterator[None]:
    """The database refuses every insert into ``table`` (a trigger), as a failing store would."""
    engine = engine_of(app)
    if engine.dialect.name == "sqlite":
        create = [
            f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'store down'); END"
        ]
        drop = ["DROP TRIGGER refuse_insert"]
    else:
        create = [
            "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'store down'; END $$",
            f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_insert()",
        ]
        drop = [f"DROP TRIGGER refuse_insert ON {table}", "DROP FUNCTION refuse_insert()"]
    with engine.begin() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)


def assert_permit(answer: dict, consent: dict) -> None:
    assert answer["decision"] == "permit", answer
    assert [r["code"] for r in answer["reasons"]] == ["consent"]
    assert answer["reasons"][0]["consent_id"] == consent["id"]
    # No community rule asks for anything here: only the deployment's obligations (nationality
    # outside service delivery also brings aggregate_only).
    assert answer["obligations"] in (DEFAULT_OBLIGATIONS, [*DEFAULT_OBLIGATIONS, NATIONALITY_AGGREGATE])


def assert_deny(answer: dict, code: str = "no_consent") -> None:
    assert answer["decision"] == "deny", answer
    assert [r["code"] for r in answer["reasons"]] == [code]
    assert all("consent_id" not in r for r in answer["reasons"])


class TestRoughSleeperCase:
    def test_the_planning_authority_is_permitted_for_service_planning(self, client, asker, consent):
        assert_permit(ask(client, asker("gla"), "service-planning", "nationality"), consent)

    def test_the_planning_permit_says_no_onward_disclosure_and_nationality_only_in_aggregate(
        self, client, asker, consent
    ):
        answer = ask(client, asker("gla"), "service-planning", "nationality")
        assert answer["obligations"] == [*DEFAULT_OBLIGATIONS, NATIONALITY_AGGREGATE]

    def test_the_recorder_is_permitted_for_service_delivery(self, client, asker, consent):
        assert_permit(ask(client, asker("outreach-org"), "service-delivery", "health", "housing"), consent)

    def test_immigration_enforcement_is_denied(self, client, asker, consent):
        assert_deny(ask(client, asker("home-office"), "immigration-enforcement", "nationality"))

    @pytest.mark.parametrize("org", ["home-office", "shelter-co"])
    def test_a_non_recipient_is_denied_even_for_a_consented_purpose(self, client, asker, consent, org):
        assert_deny(ask(client, asker(org), "service-planning", "nationality"))

    @pytest.mark.parametrize("purpose", ["research", "commercial", "law-enforcement", "program-evaluation"])
    def test_a_recipient_is_denied_a_purpose_outside_the_consent(self, client, asker, consent, purpose):
        assert_deny(ask(client, asker("gla"), purpose, "nationality"))

    def test_the_answer_has_the_contract_fields(self, client, asker, consent):
        answer = ask(client, asker("gla"), "service-planning", "nationality")
        # The contract's fields; the service may add more (it adds a signed `receipt`).
        assert {"decision", "decision_id", "reasons", "obligations"} <= set(answer)
        assert all(isinstance(r["message"], str) and r["message"] for r in answer["reasons"])


class TestEveryCategoryMustBeCovered:
    def test_all_covered_is_permitted(self, client, asker, consent):
        assert_permit(
            ask(client, asker("gla"), "service-planning", "nationality", "health", "housing"), consent
        )

    @pytest.mark.parametrize("extra", ["income", "identity", "justice", "demographic"])
    def test_one_category_outside_the_consent_denies_the_whole_request(self, client, asker, consent, extra):
        assert_deny(ask(client, asker("gla"), "service-planning", "nationality", extra))


class TestCategoryHierarchy:
    @pytest.mark.parametrize("child", ["mental-health", "substance-use"])
    def test_a_parent_category_covers_its_children(self, client, outreach, asker, child):
        consent = given_consent(client, outreach, ["service-planning"], ["health"])
        assert_permit(ask(client, asker("gla"), "service-planning", child), consent)

    def test_a_child_category_does_not_cover_its_parent(self, client, outreach, asker):
        given_consent(client, outreach, ["service-planning"], ["mental-health"])
        assert_deny(ask(client, asker("gla"), "service-planning", "health"))

    def test_a_child_category_does_not_cover_its_sibling(self, client, outreach, asker):
        given_consent(client, outreach, ["service-planning"], ["mental-health"])
        assert_deny(ask(client, asker("gla"), "service-planning", "substance-use"))

    def test_a_child_category_covers_itself(self, client, outreach, asker):
        consent = given_consent(client, outreach, ["service-planning"], ["mental-health"])
        assert_permit(ask(client, asker("gla"), "service-planning", "mental-health"), consent)


class TestPurposeHierarchy:
    @pytest.mark.parametrize("child", ["care-coordination", "referral"])
    def test_a_parent_purpose_covers_its_children(self, client, outreach, asker, child):
        consent = given_consent(client, outreach, ["service-delivery"], ["housing"])
        assert_permit(ask(client, asker("gla"), child, "housing"), consent)

    def test_a_child_purpose_does_not_cover_its_parent(self, client, outreach, asker):
        given_consent(client, outreach, ["care-coordination"], ["housing"])
        assert_deny(ask(client, asker("gla"), "service-delivery", "housing"))

    def test_a_child_purpose_does_not_cover_its_sibling(self, client, outreach, asker):
        given_consent(client, outreach, ["care-coordination"], ["housing"])
        assert_deny(ask(client, asker("gla"), "referral", "housing"))


class TestChangesTakeEffectOnTheNextCall:
    def test_revocation(self, client, outreach, asker, consent):
        assert_permit(ask(client, asker("gla"), "service-planning", "housing"), consent)
        assert_ok(client.post(f"/v1/consents/{consent['id']}/revoke", json={}, headers=outreach))
        assert_deny(ask(client, asker("gla"), "service-planning", "housing"))

    def test_expiry(self, client, outreach, asker, monkeypatch):
        clock = Clock(monkeypatch)
        consent = record_consent(client, outreach, expires_at=iso(clock.now() + timedelta(hours=1)))
        assert_permit(ask(client, asker("gla"), "service-planning", "housing"), consent)
        clock.advance(timedelta(minutes=59))
        assert_permit(ask(client, asker("gla"), "service-planning", "housing"), consent)
        clock.advance(timedelta(minutes=1))
        assert_deny(ask(client, asker("gla"), "service-planning", "housing"))

    def test_an_amendment_that_drops_a_recipient(self, client, outreach, asker, consent):
        assert_permit(ask(client, asker("gla"), "service-planning", "housing"), consent)
        terms = {key: CONSENT[key] for key in ("purposes", "data_categories", "evidence")}
        assert_ok(
            client.post(
                f"/v1/consents/{consent['id']}/amend",
                headers=outreach,
                json={**terms, "recipients": ["outreach-org"]},
            )
        )
        assert_deny(ask(client, asker("gla"), "service-planning", "housing"))

    def test_a_new_consent(self, client, outreach, asker):
        assert_deny(ask(client, asker("gla"), "service-planning", "housing"))
        consent = record_consent(client, outreach)
        assert_permit(ask(client, asker("gla"), "service-planning", "housing"), consent)

    def test_another_consent_still_in_force_keeps_permitting(self, client, outreach, asker, consent):
        other = record_consent(client, outreach)
        assert_ok(client.post(f"/v1/consents/{other['id']}/revoke", json={}, headers=outreach))
        assert_permit(ask(client, asker("gla"), "service-planning", "housing"), consent)


class TestUnknownSubject:
    def test_is_a_deny_not_an_error(self, client, asker, consent):
        stranger = {"system": SUBJECT["system"], "value": "nobody-we-know"}
        assert_deny(ask(client, asker("gla"), "service-planning", "housing", subject=stranger))

    def test_another_identifier_system_is_another_subject(self, client, asker, consent):
        elsewhere = {"system": "urn:gla:person", "value": SUBJECT["value"]}
        assert_deny(ask(client, asker("gla"), "service-planning", "housing", subject=elsewhere))


class TestEveryDecisionIsStored:
    @staticmethod
    def stored(app, decision_id: str) -> tuple[Decision, list[AuditEntry]]:
        with engine_of(app).connect() as conn:
            row = conn.execute(select(Decision).where(Decision.id == decision_id)).one()
            audit = conn.execute(select(AuditEntry).where(AuditEntry.object_id == decision_id)).all()
        return row, audit

    @pytest.mark.parametrize(
        "org, purpose, outcome",
        [("gla", "service-planning", "permit"), ("home-office", "immigration-enforcement", "deny")],
    )
    def test_one_decision_row_and_one_audit_entry_per_answer(
        self, client, app, asker, consent, org, purpose, outcome
    ):
        headers = asker(org)
        before = table_counts(app)
        answer = ask(client, headers, purpose, "nationality")
        after = table_counts(app)
        assert answer["decision"] == outcome
        changed = {name: after[name] - before[name] for name in after if after[name] != before[name]}
        assert changed == {"decision": 1, "audit_entry": 1}

        row, audit = self.stored(app, answer["decision_id"])
        assert row.outcome == outcome
        assert row.requester == org
        assert row.purpose == purpose
        assert row.data_categories == ["nationality"]
        assert row.consent_id == (consent["id"] if outcome == "permit" else None)
        assert [entry.tag for entry in audit] == [f"decision:{outcome}"]

    @pytest.mark.parametrize("table", ["decision", "audit_entry"])
    def test_no_answer_is_released_unless_the_record_is_written(self, client, app, asker, consent, table):
        headers = asker("gla")
        with refused_inserts(app, table), unchanged_tables(app):
            response = client.post(
                "/v1/authorize",
                headers=headers,
                json={"subject": SUBJECT, "purpose": "service-planning", "data_categories": ["nationality"]},
            )
            assert_error(response, 503, "unavailable")
        assert_permit(ask(client, headers, "service-planning", "nationality"), consent)


class TestTheRequesterComesFromTheToken:
    def test_a_requester_in_the_body_is_400(self, client, asker, consent):
        headers = asker("home-office")
        with unchanged_tables(client.application):
            response = client.post(
                "/v1/authorize",
                headers=headers,
                json={
                    "subject": SUBJECT,
                    "purpose": "service-planning",
                    "data_categories": ["nationality"],
                    "requester": "gla",
                },
            )
        assert "requester" in assert_error(response, 400, "validation_error")["details"]

    def test_the_decision_is_for_the_tokens_organization(self, client, app, asker, consent):
        answer = ask(client, asker("home-office"), "service-planning", "nationality")
        assert_deny(answer)
        assert TestEveryDecisionIsStored.stored(app, answer["decision_id"])[0].requester == "home-office"

    def test_needs_the_authorize_scope(self, client, world, consent):
        headers = world.headers("gla", "consents:read", "consents:write")
        with unchanged_tables(client.application):
            response = client.post(
                "/v1/authorize",
                headers=headers,
                json={"subject": SUBJECT, "purpose": "service-planning", "data_categories": ["nationality"]},
            )
        assert_error(response, 403, "forbidden")
