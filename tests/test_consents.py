"""Individual consent (contract, "Individual consent"): record, read, revoke, amend, expiry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import (
    CONSENT,
    SUBJECT,
    Clock,
    all_rows_as_text,
    ask,
    assert_error,
    assert_ok,
    body_with,
    in_days,
    iso,
    json_of,
    record_consent,
    rough_sleeper_orgs,
    table_counts,
    unchanged_tables,
    without,
)
from joserfc import jwt
from joserfc.jwk import KeySet

WRITE, READ = "consents:write", "consents:read"
AMENDED_TERMS = {
    "purposes": ["service-delivery"],
    "data_categories": ["housing"],
    "recipients": ["outreach-org"],
    "evidence": {"method": "written", "obtained_by": "worker-18"},
}


@pytest.fixture
def outreach(world) -> dict[str, str]:
    rough_sleeper_orgs(world)
    return world.headers("outreach-org", WRITE, READ)


@pytest.fixture
def consent(client, outreach) -> dict:
    return record_consent(client, outreach, expires_at="2099-11-22T00:00:00Z")


def read(client, headers, consent_id: str):
    return client.get(f"/v1/consents/{consent_id}", headers=headers)


def revoke(client, headers, consent_id: str, reason: str = "asked to withdraw"):
    return client.post(f"/v1/consents/{consent_id}/revoke", json={"reason": reason}, headers=headers)


def amend(client, headers, consent_id: str, **terms):
    return client.post(f"/v1/consents/{consent_id}/amend", json={**AMENDED_TERMS, **terms}, headers=headers)


def history(client, headers, consent_id: str) -> dict:
    return assert_ok(client.get(f"/v1/consents/{consent_id}/history", headers=headers))


def verified_receipt(client, receipt: str) -> dict:
    """The receipt's claims, verified with nothing but the public JWKS."""
    keys = KeySet.import_key_set(assert_ok(client.get("/.well-known/jwks.json")))
    return jwt.decode(receipt, keys, algorithms=["ES256"]).claims


class TestRecord:
    def test_answers_201_with_the_new_consent(self, consent):
        assert consent["id"]
        assert consent["version"] == 1
        assert consent["status"] == "active"
        assert consent["recorded_by"] == "outreach-org"
        for field in ("purposes", "data_categories", "recipients", "evidence"):
            assert consent[field] == CONSENT[field]
        assert consent["expires_at"] in ("2099-11-22T00:00:00+00:00", "2099-11-22T00:00:00Z")

    def test_expiry_and_communities_are_optional(self, client, outreach):
        consent = record_consent(client, outreach)
        assert consent["expires_at"] is None
        assert consent["communities"] == []

    @pytest.mark.parametrize(
        "field, value",
        [
            ("recorded_by", "gla"),
            ("id", "chosen-id"),
            ("version", 7),
            ("status", "revoked"),
            ("requester", "gla"),
        ],
    )
    def test_the_recorder_and_state_cannot_come_from_the_body(self, client, outreach, field, value):
        with unchanged_tables(client.application):
            response = client.post(
                "/v1/consents", json=body_with(CONSENT, **{field: value}), headers=outreach
            )
        assert field in assert_error(response, 400, "validation_error")["details"]

    def test_the_receipt_is_a_jws_anyone_can_verify(self, client, consent):
        claims = verified_receipt(client, consent["receipt"])
        assert claims["consent_id"] == consent["id"]
        assert claims["consent_version"] == 1
        assert claims["purposes"] == CONSENT["purposes"]
        assert claims["data_categories"] == CONSENT["data_categories"]
        assert claims["recipients"] == CONSENT["recipients"]
        assert claims["controller"]["id"] == "outreach-org"
        assert claims["receipt_id"] == consent["receipt_id"]

    def test_needs_consents_write(self, client, world):
        rough_sleeper_orgs(world)
        headers = world.headers("outreach-org", READ, "authorize")
        with unchanged_tables(client.application):
            response = client.post("/v1/consents", json=CONSENT, headers=headers)
        assert_error(response, 403, "forbidden")


class TestRead:
    def test_the_recording_organization_reads_it(self, client, consent, outreach):
        body = assert_ok(read(client, outreach, consent["id"]))
        # The answer that recorded it also carried the person's access code, shown that once.
        recorded = {name: value for name, value in consent.items() if name != "access_code"}
        assert "access_code" in consent and body == {**recorded, "status": "active"}

    def test_another_client_of_the_same_organization_with_consents_read(self, client, world, consent):
        assert_ok(read(client, world.headers("outreach-org", READ), consent["id"]))

    def test_admin_may_read_it(self, client, world, consent):
        assert assert_ok(read(client, world.admin(), consent["id"]))["id"] == consent["id"]

    def test_another_organization_gets_the_same_404_as_for_a_missing_id(self, client, world, consent):
        gla = world.headers("gla", READ, WRITE)
        not_yours = read(client, gla, consent["id"])
        missing = read(client, gla, str(uuid.uuid4()))
        assert_error(not_yours, 404, "not_found")
        assert json_of(not_yours) == json_of(missing)
        assert consent["id"] not in not_yours.get_data(as_text=True)

    def test_another_organization_cannot_read_its_history(self, client, world, consent):
        response = client.get(f"/v1/consents/{consent['id']}/history", headers=world.headers("gla", READ))
        assert_error(response, 404, "not_found")


class TestRevoke:
    def test_revoking_makes_it_revoked(self, client, consent, outreach):
        body = assert_ok(revoke(client, outreach, consent["id"]))
        assert body["status"] == "revoked"
        assert body["revoked_at"]
        assert body["revoked_reason"] == "asked to withdraw"
        assert assert_ok(read(client, outreach, consent["id"]))["status"] == "revoked"

    def test_revoking_again_is_409(self, client, consent, outreach):
        assert_ok(revoke(client, outreach, consent["id"]))
        with unchanged_tables(client.application):
            assert_error(revoke(client, outreach, consent["id"]), 409, "conflict")

    def test_another_organization_cannot_revoke_it(self, client, world, consent, outreach):
        gla = world.headers("gla", WRITE)
        with unchanged_tables(client.application):
            assert_error(revoke(client, gla, consent["id"]), 404, "not_found")
        assert assert_ok(read(client, outreach, consent["id"]))["status"] == "active"

    def test_a_missing_consent_is_404(self, client, outreach):
        assert_error(revoke(client, outreach, str(uuid.uuid4())), 404, "not_found")

    def test_the_revocation_is_kept_in_the_history(self, client, consent, outreach):
        assert_ok(revoke(client, outreach, consent["id"], reason="moved away"))
        events = history(client, outreach, consent["id"])["events"]
        assert [(e["kind"], e["reason"]) for e in events] == [("recorded", None), ("revoked", "moved away")]

    def test_a_revoked_consent_cannot_be_amended(self, client, consent, outreach):
        assert_ok(revoke(client, outreach, consent["id"]))
        assert_error(amend(client, outreach, consent["id"]), 409, "conflict")


class TestAmend:
    def test_an_amendment_is_version_2_with_the_new_terms(self, client, consent, outreach):
        body = assert_ok(amend(client, outreach, consent["id"], version=1))
        assert body["id"] == consent["id"]
        assert body["version"] == 2
        assert body["status"] == "active"
        assert body["purposes"] == AMENDED_TERMS["purposes"]
        assert body["data_categories"] == AMENDED_TERMS["data_categories"]
        assert verified_receipt(client, body["receipt"])["consent_version"] == 2
        assert assert_ok(read(client, outreach, consent["id"]))["version"] == 2

    def test_the_old_version_is_kept_in_the_history(self, client, consent, outreach):
        assert_ok(amend(client, outreach, consent["id"]))
        versions = history(client, outreach, consent["id"])["versions"]
        assert [v["version"] for v in versions] == [1, 2]
        assert versions[0]["purposes"] == CONSENT["purposes"]
        assert versions[0]["data_categories"] == CONSENT["data_categories"]
        assert versions[0]["receipt_id"] == consent["receipt_id"]
        assert versions[1]["purposes"] == AMENDED_TERMS["purposes"]

    def test_a_stale_version_is_409(self, client, consent, outreach):
        assert_ok(amend(client, outreach, consent["id"], version=1))
        with unchanged_tables(client.application):
            error = assert_error(amend(client, outreach, consent["id"], version=1), 409, "conflict")
        assert error["details"] == {"current_version": 2}

    def test_another_organization_cannot_amend_it(self, client, world, consent):
        gla = world.headers("gla", WRITE)
        with unchanged_tables(client.application):
            assert_error(amend(client, gla, consent["id"]), 404, "not_found")

    def test_the_new_terms_are_validated_like_a_new_consent(self, client, consent, outreach):
        with unchanged_tables(client.application):
            assert_error(
                amend(client, outreach, consent["id"], purposes=["no-such-purpose"]), 400, "unknown_code"
            )
            assert_error(
                amend(client, outreach, consent["id"], expires_at=in_days(-1)), 400, "validation_error"
            )


class TestPseudonymousSubjects:
    RAW = {"system": "urn:outreach-org:client-registry", "value": "C-1042-QX7Z"}

    def test_the_raw_subject_is_never_stored(self, client, app, world, outreach):
        """Every write that carries the subject, then every row of every table searched for it.
        (The system's name is stored once, registered; never with a value.)"""
        world.system(self.RAW["system"], "outreach-org")
        retried = {**outreach, "Idempotency-Key": "record-1"}
        consent = record_consent(client, retried, subject=self.RAW)
        assert_ok(amend(client, outreach, consent["id"]))
        ask(client, world.headers("gla", "authorize"), "service-planning", "housing", subject=self.RAW)
        assert_ok(revoke(client, {**outreach, "Idempotency-Key": "revoke-1"}, consent["id"]))
        written = {
            "consent",
            "consent_version",
            "consent_event",
            "decision",
            "audit_entry",
            "idempotency_record",
        }
        assert all(count > 0 for name, count in table_counts(app).items() if name in written)
        stored = all_rows_as_text(app)
        assert self.RAW["value"] not in stored
        # the subject_system row, its audit entry, and that entry's binding of the row (by its key)
        assert stored.count(self.RAW["system"]) == 3

    def test_the_same_subject_gets_the_same_pseudonym_and_others_do_not(self, client, world, outreach):
        world.system("urn:gla:person")
        first = record_consent(client, outreach)
        again = record_consent(client, outreach)
        other_value = record_consent(client, outreach, subject={**SUBJECT, "value": "C-1043"})
        other_system = record_consent(client, outreach, subject={**SUBJECT, "system": "urn:gla:person"})
        assert first["subject_pseudonym"] == again["subject_pseudonym"]
        assert (
            len(
                {
                    first["subject_pseudonym"],
                    other_value["subject_pseudonym"],
                    other_system["subject_pseudonym"],
                }
            )
            == 3
        )
        assert SUBJECT["value"] not in first["subject_pseudonym"]


class TestExpiry:
    def test_a_consent_shows_expired_after_its_expiry(self, client, outreach, monkeypatch):
        clock = Clock(monkeypatch)
        consent = record_consent(client, outreach, expires_at=iso(clock.now() + timedelta(hours=1)))
        assert assert_ok(read(client, outreach, consent["id"]))["status"] == "active"
        clock.advance(timedelta(hours=1))
        assert assert_ok(read(client, outreach, consent["id"]))["status"] == "expired"

    def test_an_expired_consent_can_still_be_revoked(self, client, outreach, monkeypatch):
        """Expiry is shown, not stored: the record keeps its terms and can still be revoked."""
        clock = Clock(monkeypatch)
        consent = record_consent(client, outreach, expires_at=iso(clock.now() + timedelta(minutes=5)))
        clock.advance(timedelta(days=1))
        assert assert_ok(revoke(client, outreach, consent["id"]))["status"] == "revoked"

    @pytest.mark.parametrize("offset", [timedelta(days=-9000), timedelta(seconds=-1), timedelta(0)])
    def test_an_expiry_not_in_the_future_is_400(self, client, outreach, offset):
        expires_at = iso(datetime.now(UTC) + offset)
        with unchanged_tables(client.application):
            response = client.post(
                "/v1/consents", json=body_with(CONSENT, expires_at=expires_at), headers=outreach
            )
        assert "expires_at" in assert_error(response, 400, "validation_error")["details"]

    def test_a_consent_without_expiry_never_expires(self, client, outreach, monkeypatch):
        clock = Clock(monkeypatch)
        consent = record_consent(client, outreach, **without("expires_at"))
        clock.advance(timedelta(days=365 * 50))
        assert assert_ok(read(client, outreach, consent["id"]))["status"] == "active"


class TestConsentState:
    """The use cases' result: a consent and the version shown, read through, out of any session."""

    @staticmethod
    def rows(*, status: str = "active", expires_at: datetime | None = None):
        from consent_service.storage.models import Consent, ConsentVersion

        at = datetime(2026, 1, 1, tzinfo=UTC)
        consent = Consent(
            id="c-1",
            subject_key="k",
            recorded_by="outreach-org",
            status=status,
            current_version=2,
            created_at=at,
            updated_at=at,
        )
        version = ConsentVersion(
            consent_id="c-1",
            version=1,
            purposes=["research"],
            data_categories=["health"],
            recipients=["univ"],
            communities=[],
            expires_at=expires_at,
            evidence={"method": "verbal"},
            recorded_at=at,
            recorded_by_client="cl",
            receipt_id="r-1",
            receipt="x.y.z",
        )
        return consent, version

    def test_fields_read_through_the_version_first_then_the_consent(self):
        from consent_service.services.consents import ConsentState

        state = ConsentState.of(*self.rows(), datetime(2026, 2, 1, tzinfo=UTC))
        assert (state.id, state.version, state.purposes, state.status) == ("c-1", 1, ["research"], "active")
        with pytest.raises(AttributeError):
            _ = state.no_such_field

    def test_status_is_revoked_expired_or_active_at_the_time_of_asking(self):
        from consent_service.services.consents import status_of

        now = datetime(2026, 2, 1, tzinfo=UTC)
        assert status_of(*self.rows(expires_at=now), now) == "expired"
        assert status_of(*self.rows(expires_at=now + timedelta(seconds=1)), now) == "active"
        assert status_of(*self.rows(status="revoked", expires_at=now), now) == "revoked"

    def test_the_rows_are_copies_out_of_the_session(self):
        from consent_service.services.consents import ConsentState

        consent, version = self.rows()
        state = ConsentState.of(consent, version, datetime(2026, 2, 1, tzinfo=UTC))
        consent.recorded_by = "someone-else"
        assert state.recorded_by == "outreach-org"
