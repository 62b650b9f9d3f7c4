"""A retried intake must not make two consents (Idempotency-Key on record and revoke)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from consent_service.storage.models import Consent, ConsentEvent

BODY = {
    "subject": {"system": "urn:outreach-org:client", "value": "C-1042"},
    "purposes": ["service-delivery"],
    "data_categories": ["housing"],
    "recipients": ["outreach-org"],
    "evidence": {"method": "verbal", "obtained_by": "worker-17"},
}


def _count(world, model) -> int:
    with world.services.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def _record(client, headers, key, body=BODY):
    return client.post("/v1/consents", json=body, headers={**headers, "Idempotency-Key": key})


class TestRecordWithIdempotencyKey:
    def test_a_retry_returns_the_same_consent_and_records_nothing_more(self, client, world):
        headers = world.headers("outreach-org", "consents:write")
        first = _record(client, headers, "intake-7")
        again = _record(client, headers, "intake-7")
        assert first.status_code == again.status_code == 201
        assert again.get_json()["id"] == first.get_json()["id"]
        assert _count(world, Consent) == 1

    def test_another_key_records_another_consent(self, client, world):
        headers = world.headers("outreach-org", "consents:write")
        assert (
            _record(client, headers, "a").get_json()["id"] != _record(client, headers, "b").get_json()["id"]
        )
        assert _count(world, Consent) == 2

    def test_the_same_key_with_a_different_request_is_a_conflict(self, client, world):
        headers = world.headers("outreach-org", "consents:write")
        _record(client, headers, "intake-8")
        other = _record(client, headers, "intake-8", {**BODY, "data_categories": ["health"]})
        assert other.status_code == 409
        assert other.get_json()["error"]["code"] == "conflict"
        assert _count(world, Consent) == 1

    def test_keys_are_per_client(self, client, world):
        first = _record(client, world.headers("outreach-org", "consents:write"), "k")
        second = _record(
            client,
            world.headers("shelter-org", "consents:write"),
            "k",
            {
                **BODY,
                "recipients": ["shelter-org"],
                "subject": {**BODY["subject"], "system": "urn:shelter-org:client"},
            },
        )
        assert second.status_code == 201
        assert second.get_json()["id"] != first.get_json()["id"]

    def test_an_unusable_key_is_refused_and_nothing_is_written(self, client, world):
        headers = world.headers("outreach-org", "consents:write")
        response = _record(client, headers, "x" * 201)
        assert response.status_code == 400
        assert _count(world, Consent) == 0

    def test_simultaneous_retries_make_one_consent(self, app, world):
        headers = world.headers("outreach-org", "consents:write")
        answers: list[int] = []
        ids: set[str] = set()

        def send() -> None:
            response = _record(app.test_client(), headers, "race-1")
            answers.append(response.status_code)
            if response.status_code == 201:
                ids.add(response.get_json()["id"])

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [201] * 4
        assert len(ids) == 1
        assert _count(world, Consent) == 1


class TestRevokeWithIdempotencyKey:
    def test_a_retried_revocation_answers_200_and_records_one_event(self, client, world):
        headers = world.headers("outreach-org", "consents:write")
        consent_id = client.post("/v1/consents", json=BODY, headers=headers).get_json()["id"]
        keyed = {**headers, "Idempotency-Key": "revoke-1"}
        first = client.post(f"/v1/consents/{consent_id}/revoke", json={"reason": "asked"}, headers=keyed)
        again = client.post(f"/v1/consents/{consent_id}/revoke", json={"reason": "asked"}, headers=keyed)
        assert first.status_code == again.status_code == 200
        assert again.get_json()["status"] == "revoked"
        with world.services.sessions() as session:
            kinds = session.scalars(
                select(ConsentEvent.kind).where(ConsentEvent.consent_id == consent_id)
            ).all()
        assert sorted(kinds) == ["recorded", "revoked"]

    def test_without_a_key_a_second_revocation_is_a_conflict(self, client, world):
        headers = world.headers("outreach-org", "consents:write")
        consent_id = client.post("/v1/consents", json=BODY, headers=headers).get_json()["id"]
        client.post(f"/v1/consents/{consent_id}/revoke", json={}, headers=headers)
        assert client.post(f"/v1/consents/{consent_id}/revoke", json={}, headers=headers).status_code == 409
