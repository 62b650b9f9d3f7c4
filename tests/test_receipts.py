"""Receipts: POST /v1/receipts/verify for both kinds, and key rotation keeping old receipts valid."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from conftest import World
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet
from trust_helpers import SUBJECT, consent_body, engine_of, run_cli

from consent_service import create_app
from consent_service.core.keys import new_signing_key

ASK = {"subject": SUBJECT, "purpose": "service-planning", "data_categories": ["nationality"]}


def check(client, world, token: str) -> dict[str, Any]:
    response = client.post(
        "/v1/receipts/verify", json={"receipt": token}, headers=world.headers("anyone", "consents:read")
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def kid_of(token: str) -> str:
    """The kid a receipt's header names (read without verifying)."""
    return str(json.loads(_b64(token.split(".")[0]))["kid"])


@pytest.fixture
def receipts(client, world) -> dict[str, str]:
    world.org("gla", "government")
    consent = client.post(
        "/v1/consents", json=consent_body(), headers=world.headers("outreach-org", "consents:write")
    ).get_json()
    decision = client.post("/v1/authorize", json=ASK, headers=world.headers("gla", "authorize")).get_json()
    return {
        "consent": consent["receipt"],
        "decision": decision["receipt"],
        "consent_id": consent["id"],
        "decision_id": decision["decision_id"],
    }


class TestVerify:
    def test_a_consent_receipt(self, client, world, receipts):
        result = check(client, world, receipts["consent"])
        assert result["valid"] is True and result["type"] == "consent-receipt" and result["kid"]
        claims = result["claims"]
        assert claims["consent_id"] == receipts["consent_id"] and claims["consent_version"] == 1
        assert claims["controller"]["id"] == "outreach-org"
        assert claims["purposes"] == consent_body()["purposes"] and claims["withdrawal"]["how"]

    def test_a_decision_receipt(self, client, world, receipts):
        result = check(client, world, receipts["decision"])
        assert result["valid"] is True and result["type"] == "decision-receipt"
        assert result["claims"]["decision_id"] == receipts["decision_id"]
        assert result["claims"]["decision"] == "permit"

    def test_a_changed_receipt_is_invalid_not_an_error(self, client, world, receipts):
        head, body, signature = receipts["consent"].split(".")
        claims = json.loads(_b64(body))
        claims["purposes"].append("commercial")
        forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        result = check(client, world, f"{head}.{forged_body}.{signature}")
        assert result["valid"] is False and result["type"] == "consent-receipt"
        assert "claims" not in result and "changed" in result["problem"]

    def test_a_receipt_signed_by_someone_else(self, client, world):
        stranger = new_signing_key()
        token = jwt.encode(
            {"alg": "ES256", "typ": "decision-receipt+jwt", "kid": stranger.kid},
            {"decision": "permit"},
            stranger,
            algorithms=["ES256"],
        )
        result = check(client, world, token)
        assert result["valid"] is False and result["kid"] == stranger.kid
        assert "not signed by any key" in result["problem"]

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", "...", "eyJhbGciOiJub25lIn0.e30."])
    def test_not_a_receipt(self, client, world, token):
        result = check(client, world, token)
        assert result == {"valid": False, "type": None, "kid": None, "problem": result["problem"]}

    def test_an_access_token_is_not_a_receipt(self, client, world):
        result = check(client, world, world.token("gla", "authorize"))
        assert result["valid"] is False and result["type"] is None

    def test_needs_a_token_and_a_receipt(self, client, world):
        assert client.post("/v1/receipts/verify", json={"receipt": "x"}).status_code == 401
        response = client.post(
            "/v1/receipts/verify", json={"receipt": ""}, headers=world.headers("gla", "authorize")
        )
        assert response.status_code == 400
        assert "receipt" in response.get_json()["error"]["details"]


class TestKeyRotation:
    @pytest.fixture
    def instance_keys_config(self, app_config) -> dict[str, Any]:
        return {**app_config, "SIGNING_KEYS": ""}  # keys generated and kept in the instance folder

    def test_old_receipts_still_verify_and_new_ones_carry_the_new_kid(self, instance_keys_config):
        before = create_app(instance_keys_config)
        try:
            world = World(before, before.test_client())
            old = TestKeyRotation._issue(world)
            old_kid = kid_of(old["consent"])
        finally:
            engine_of(before).dispose()

        rotated = run_cli(instance_keys_config, "keys", "rotate")
        assert rotated.exit_code == 0, rotated.stderr
        new_kid = rotated.stdout.strip()
        assert new_kid and new_kid != old_kid

        after = create_app(instance_keys_config)  # instances pick up the key file when they start
        try:
            client = after.test_client()
            world = World(after, client)
            published = {key["kid"] for key in client.get("/.well-known/jwks.json").get_json()["keys"]}
            assert {old_kid, new_kid} <= published
            for kind in ("consent", "decision"):
                result = check(client, world, old[kind])
                assert result["valid"] is True and result["kid"] == old_kid
                assert jwt.decode(
                    old[kind],
                    KeySet.import_key_set(client.get("/.well-known/jwks.json").get_json()),
                    algorithms=["ES256"],
                )

            new = TestKeyRotation._issue(world, value="C-2")
            assert kid_of(new["consent"]) == new_kid and kid_of(new["decision"]) == new_kid
            assert check(client, world, new["consent"])["valid"] is True
        finally:
            engine_of(after).dispose()

    @staticmethod
    def _issue(world: World, value: str = "C-1") -> dict[str, str]:
        world.org("gla", "government")
        subject = {"system": "urn:outreach-org:client", "value": value}
        consent = world.client.post(
            "/v1/consents",
            json=consent_body(subject=subject),
            headers=world.headers("outreach-org", "consents:write"),
        )
        assert consent.status_code == 201, consent.get_json()
        decision = world.client.post(
            "/v1/authorize", json={**ASK, "subject": subject}, headers=world.headers("gla", "authorize")
        )
        assert decision.get_json()["decision"] == "permit"
        return {"consent": consent.get_json()["receipt"], "decision": decision.get_json()["receipt"]}


# -- the JSON texts a bulk import fills in (core/json_text.py) -----------------------------------

_PART = st.text(max_size=6) | st.sampled_from(['"', "\\", '\\"', "é", "\u2028", "%s", "\ue000"])


@settings(max_examples=300, deadline=None, database=None)
@given(
    a=_PART,
    b=_PART | st.integers() | st.lists(st.none() | _PART, max_size=3),
    around=st.tuples(_PART, _PART),
    sort=st.booleans(),
)
def test_a_template_fills_in_the_text_serializing_the_whole_value_gives(
    a: str, b: Any, around: tuple[str, str], sort: bool
) -> None:
    """A part as a whole value or inside strings (also next to quotes and backslashes), with
    either key order: the filled text is exactly the serialized value."""
    from consent_service.core.json_text import Template

    def dumps(value: Any) -> str:
        return json.dumps(value, sort_keys=sort, separators=(",", ":"), ensure_ascii=False)

    def build(first: Any, second: Any) -> dict[str, Any]:
        before, after = around
        return {"z": first, "y": f"{before}{first}{after}", "x": [second, {"w": f"{first}/{first}"}]}

    assert Template(build, 2, dumps).fill((a, b)) == dumps(build(a, b))


def test_a_template_refuses_a_part_it_cannot_find() -> None:
    from consent_service.core.json_text import Template

    with pytest.raises(ValueError, match="every varying part"):
        Template(lambda a, b: {"a": a, "b": b[::-1]}, 2, lambda v: json.dumps(v, ensure_ascii=False))
