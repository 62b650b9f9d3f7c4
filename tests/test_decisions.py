"""Signed decisions and decision lookup: every authorize answer carries a decision receipt the
requester can verify with the JWKS, and GET /v1/decisions/{id} shows exactly what produced it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from trust_helpers import SUBJECT, add_community, add_rule, consent_body

ASK = {"subject": SUBJECT, "purpose": "service-planning", "data_categories": ["nationality"]}


def jwks(client) -> KeySet:
    return KeySet.import_key_set(client.get("/.well-known/jwks.json").get_json())


@pytest.fixture
def consent(client, world) -> dict[str, Any]:
    world.org("gla", "government")
    response = client.post(
        "/v1/consents", json=consent_body(), headers=world.headers("outreach-org", "consents:write")
    )
    assert response.status_code == 201
    return response.get_json()  # type: ignore[no-any-return]


def ask(client, world, org: str = "gla", **changes: Any) -> dict[str, Any]:
    response = client.post("/v1/authorize", json={**ASK, **changes}, headers=world.headers(org, "authorize"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


class TestDecisionReceipt:
    def test_a_permit_carries_a_receipt_verifiable_with_the_jwks(self, client, world, consent):
        answer = ask(client, world)
        assert answer["decision"] == "permit"
        token = jwt.decode(answer["receipt"], jwks(client), algorithms=["ES256"])
        assert token.header["typ"] == "decision-receipt+jwt"
        assert token.header["kid"] in {
            key["kid"] for key in client.get("/.well-known/jwks.json").get_json()["keys"]
        }
        claims = token.claims
        assert claims["decision_id"] == claims["jti"] == answer["decision_id"]
        assert claims["requester"] == "gla"
        assert claims["purpose"] == "service-planning" and claims["data_categories"] == ["nationality"]
        assert claims["subject"] == {"pseudonym": consent["subject_pseudonym"]}
        assert claims["decision"] == "permit"
        assert claims["consent"] == {"id": consent["id"], "version": 1}
        assert claims["rule_ids"] == [] and claims["policy_versions"] == {}
        assert claims["decided_at"] and claims["iss"] and claims["iat"]
        assert "C-1042" not in str(claims)

    def test_a_deny_is_signed_too(self, client, world):
        answer = ask(client, world, org="home-office")
        claims = jwt.decode(answer["receipt"], jwks(client), algorithms=["ES256"]).claims
        assert claims["decision"] == "deny" and claims["consent"] is None
        assert claims["reasons"][0]["code"] == "no_consent"

    @pytest.mark.parametrize("shown", [False, True])
    def test_a_community_deny_names_rule_and_policy_version(self, app, client, world, consent, shown):
        add_community(client, world, show_community_id=shown)
        world.org("gla", "government")
        writer = world.headers("outreach-org", "consents:write")
        body = {k: v for k, v in consent_body(communities=["nation-a"]).items() if k != "subject"}
        assert (
            client.post(f"/v1/consents/{consent['id']}/amend", json=body, headers=writer).status_code == 200
        )
        rule = add_rule(app, community="nation-a", purposes=["service-planning"], data_categories=["*"])
        answer = ask(client, world)
        claims = jwt.decode(answer["receipt"], jwks(client), algorithms=["ES256"]).claims
        assert claims["decision"] == "deny" and claims["rule_ids"] == [rule]
        # The receipt says what the requester was told: the community only where it shows its id.
        assert claims["policy_versions"] == ({"nation-a": 2} if shown else {})
        assert claims["reasons"] == answer["reasons"]
        assert ("nation-a" in json.dumps(claims)) is shown

    def test_a_tampered_receipt_does_not_verify(self, client, world, consent):
        head, body, signature = ask(client, world)["receipt"].split(".")
        forged = f"{head}.{body[:-4]}AAAA.{signature}"
        with pytest.raises(Exception):  # noqa: B017 - joserfc raises its own family of errors
            jwt.decode(forged, jwks(client), algorithms=["ES256"])


class TestDecisionLookup:
    def test_the_requester_sees_the_exact_consent_version(self, client, world, consent):
        first = ask(client, world)
        writer = world.headers("outreach-org", "consents:write")
        body = {k: v for k, v in consent_body().items() if k != "subject"}
        assert (
            client.post(f"/v1/consents/{consent['id']}/amend", json=body, headers=writer).status_code == 200
        )
        second = ask(client, world)

        headers = world.headers("gla", "authorize")
        old = client.get(f"/v1/decisions/{first['decision_id']}", headers=headers)
        assert old.status_code == 200, old.get_json()
        assert old.get_json()["consent_id"] == consent["id"] and old.get_json()["consent_version"] == 1
        new = client.get(f"/v1/decisions/{second['decision_id']}", headers=headers).get_json()
        assert new["consent_version"] == 2
        assert new["decision"] == "permit" and new["requester"] == "gla"
        assert new["purpose"] == "service-planning" and new["data_categories"] == ["nationality"]
        assert new["reasons"] == second["reasons"] and new["rule_ids"] == [] and new["policy_versions"] == {}
        assert new["audit"]["seq"] > 0 and len(new["audit"]["hash"]) == 64

    def test_it_matches_the_signed_receipt(self, client, world, consent):
        answer = ask(client, world)
        claims = jwt.decode(answer["receipt"], jwks(client), algorithms=["ES256"]).claims
        record = client.get(
            f"/v1/decisions/{answer['decision_id']}", headers=world.headers("gla", "authorize")
        ).get_json()
        assert record["consent_id"] == claims["consent"]["id"]
        assert record["consent_version"] == claims["consent"]["version"]
        assert record["subject_pseudonym"] == claims["subject"]["pseudonym"]

    @pytest.mark.parametrize("shown", [False, True])
    def test_rule_ids_and_policy_versions_of_a_community_deny(self, app, client, world, shown):
        add_community(client, world, show_community_id=shown)
        world.org("gla", "government")
        writer = world.headers("outreach-org", "consents:write")
        assert (
            client.post(
                "/v1/consents", json=consent_body(communities=["nation-a"]), headers=writer
            ).status_code
            == 201
        )
        rule = add_rule(
            app, community="nation-a", purposes=["service-planning"], data_categories=["nationality"]
        )
        answer = ask(client, world)
        record = client.get(
            f"/v1/decisions/{answer['decision_id']}", headers=world.headers("gla", "authorize")
        ).get_json()
        assert record["decision"] == "deny" and record["rule_ids"] == [rule]
        assert record["reasons"] == answer["reasons"]  # the requester sees what it was told
        assert record["policy_versions"] == ({"nation-a": 2} if shown else {})
        assert record["consent_id"] is None and record["reasons"][0].get("community") == (
            "nation-a" if shown else None
        )
        oversight = client.get(
            f"/v1/decisions/{answer['decision_id']}", headers=world.headers("auditor", "audit:read")
        ).get_json()
        assert oversight["policy_versions"] == {"nation-a": 2}  # oversight sees it as recorded
        assert oversight["reasons"][0]["community"] == "nation-a"
        assert oversight["told"] == (
            None
            if shown
            else {
                "outcome": "deny",
                "reasons": answer["reasons"],
                "obligations": [],
                "rule_ids": [rule],
                "policy_versions": {},
            }
        )

    def test_an_auditor_may_look(self, client, world, consent):
        answer = ask(client, world)
        response = client.get(
            f"/v1/decisions/{answer['decision_id']}", headers=world.headers("auditor", "audit:read")
        )
        assert response.status_code == 200

    def test_another_organization_gets_404(self, client, world, consent):
        answer = ask(client, world)
        for org, scopes in (
            ("home-office", ("authorize",)),
            ("outreach-org", ("authorize", "consents:read")),
        ):
            response = client.get(
                f"/v1/decisions/{answer['decision_id']}", headers=world.headers(org, *scopes)
            )
            assert response.status_code == 404
            assert response.get_json()["error"]["code"] == "not_found"

    def test_unknown_id_is_404_and_scope_is_checked(self, client, world):
        response = client.get("/v1/decisions/nope", headers=world.headers("gla", "authorize"))
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
        assert client.get("/v1/decisions/nope").status_code == 401
        assert (
            client.get("/v1/decisions/nope", headers=world.headers("gla", "consents:read")).status_code == 403
        )
