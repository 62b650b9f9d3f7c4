"""OAuth 2.0 client credentials (contract, "Authentication") and bearer-token validation."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from api_helpers import CONSENT, assert_error, assert_ok, record_consent, rough_sleeper_orgs, unchanged_tables
from conftest import basic_auth
from joserfc import jwt
from joserfc.jwk import KeySet

from consent_service.auth.tokens import ACCESS_TOKEN_TYP
from consent_service.container import EXTENSION
from consent_service.core.keys import SigningKeys, new_signing_key
from consent_service.core.receipts import RECEIPT_TYP

SCOPES = ("authorize", "consents:read")


def request_token(client, client_id: str, secret: str, *, method: str = "basic", **form: str):
    """POST /oauth/token with client_secret_basic or client_secret_post."""
    data = {"grant_type": "client_credentials", **form}
    if method == "basic":
        return client.post("/oauth/token", data=data, headers=basic_auth(client_id, secret))
    return client.post("/oauth/token", data={**data, "client_id": client_id, "client_secret": secret})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def vocabulary(client, token: str):
    return client.get("/v1/vocabulary", headers=bearer(token))


@pytest.fixture
def creds(world) -> tuple[str, str]:
    return world.credentials("outreach-org", *SCOPES)


@pytest.fixture
def settings(app) -> dict[str, Any]:
    return app.extensions[EXTENSION].settings


def claims_for(client_id: str, settings: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The claims our own issuer would put in a token for ``client_id``, with ``changes``."""
    now = int(time.time())
    claims = {
        "iss": settings["TOKEN_ISSUER"],
        "aud": settings["TOKEN_AUDIENCE"],
        "sub": client_id,
        "client_id": client_id,
        "org": "outreach-org",
        "scope": " ".join(SCOPES),
        "iat": now,
        "exp": now + 900,
        "jti": "test-token",
    }
    claims.update(changes)
    return claims


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class TestTokenIssue:
    @pytest.mark.parametrize("method", ["basic", "post"])
    def test_client_authentication_methods_issue_a_bearer_token(self, client, creds, method):
        body = assert_ok(request_token(client, *creds, method=method, scope="authorize"))
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 900
        assert body["scope"] == "authorize"
        assert isinstance(body["access_token"], str) and body["access_token"]

    def test_no_scope_asked_grants_all_the_clients_scopes(self, client, creds):
        body = assert_ok(request_token(client, *creds))
        assert set(body["scope"].split()) == set(SCOPES)

    def test_the_token_is_an_rfc9068_jwt_of_the_clients_organization(self, client, creds, app, settings):
        token = assert_ok(request_token(client, *creds, scope="authorize"))["access_token"]
        _, claims = app.extensions[EXTENSION].keys.verify(token, typ=ACCESS_TOKEN_TYP)
        assert claims["iss"] == settings["TOKEN_ISSUER"]
        assert claims["aud"] == settings["TOKEN_AUDIENCE"]
        assert claims["client_id"] == creds[0]
        assert claims["org"] == "outreach-org"
        assert claims["exp"] - claims["iat"] == 900


class TestTokenRefusals:
    @pytest.mark.parametrize("method", ["basic", "post"])
    def test_wrong_secret_is_401(self, client, creds, method):
        assert_error(request_token(client, creds[0], "not-the-secret", method=method), 401, "unauthorized")

    @pytest.mark.parametrize("method", ["basic", "post"])
    def test_unknown_client_is_401(self, client, creds, method):
        assert_error(request_token(client, "cl_nobody", creds[1], method=method), 401, "unauthorized")

    def test_no_client_authentication_is_401(self, client):
        assert_error(
            client.post("/oauth/token", data={"grant_type": "client_credentials"}), 401, "unauthorized"
        )

    @pytest.mark.parametrize("scope", ["admin", "authorize admin", "no-such-scope"])
    def test_a_scope_the_client_lacks_is_400_not_an_empty_grant(self, client, creds, scope):
        error = assert_error(request_token(client, *creds, scope=scope), 400, "validation_error")
        assert error["details"]["oauth_error"] == "invalid_scope"

    @pytest.mark.parametrize("grant_type", ["authorization_code", "password", "refresh_token", "bogus"])
    def test_an_unsupported_grant_type_is_400(self, client, creds, grant_type):
        error = assert_error(request_token(client, *creds, grant_type=grant_type), 400, "validation_error")
        assert error["details"]["oauth_error"] == "unsupported_grant_type"

    def test_a_disabled_client_gets_no_new_token(self, client, world, creds):
        assert_ok(client.post(f"/v1/clients/{creds[0]}/disable", headers=world.admin()))
        assert_error(request_token(client, *creds), 401, "unauthorized")


class TestBearerValidation:
    @pytest.fixture
    def sign(self, app):
        keys = app.extensions[EXTENSION].keys
        return lambda claims, typ=ACCESS_TOKEN_TYP: keys.sign(claims, typ=typ)

    def test_an_issued_token_works_on_the_api(self, client, creds):
        token = assert_ok(request_token(client, *creds))["access_token"]
        assert_ok(vocabulary(client, token))

    def test_a_token_we_sign_ourselves_works(self, client, creds, settings, sign):
        """The control case for the forgeries below: only the one changed claim makes them fail."""
        assert_ok(vocabulary(client, sign(claims_for(creds[0], settings))))

    @pytest.mark.parametrize(
        "header", [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer not.a.jwt", "Bearer abc"]
    )
    def test_a_missing_or_malformed_token_is_401(self, client, header):
        headers = {} if header is None else {"Authorization": header}
        assert_error(client.get("/v1/vocabulary", headers=headers), 401, "unauthorized")

    def test_an_expired_token_is_401(self, client, creds, settings, sign):
        past = int(time.time()) - 60
        token = sign(claims_for(creds[0], settings, iat=past - 900, exp=past))
        assert_error(vocabulary(client, token), 401, "unauthorized")

    def test_a_token_that_worked_is_refused_once_it_expires(self, client, creds, settings, sign, monkeypatch):
        """A worker remembers that a token's signature is good (keys.VERIFIED_CACHE_SIZE), never
        that the token is: its expiry is judged again on every call."""
        token = sign(claims_for(creds[0], settings, iat=int(time.time()), exp=int(time.time()) + 60))
        assert_ok(vocabulary(client, token))
        assert_ok(vocabulary(client, token))  # now answered from the remembered signature check
        later = time.time() + 61
        monkeypatch.setattr("joserfc._rfc7519.claims.time.time", lambda: later)
        assert_error(vocabulary(client, token), 401, "unauthorized")

    def test_a_bad_signature_is_refused_every_time(self, client, creds, settings, sign):
        header, payload, signature = sign(claims_for(creds[0], settings)).split(".")
        forged = f"{header}.{payload}.{signature[:-4]}AAAA"
        for _ in range(2):
            assert_error(vocabulary(client, forged), 401, "unauthorized")

    @pytest.mark.parametrize("claim", ["exp", "iss", "aud", "client_id", "org"])
    def test_a_token_without_an_essential_claim_is_401(self, client, creds, settings, sign, claim):
        claims = claims_for(creds[0], settings)
        del claims[claim]
        assert_error(vocabulary(client, sign(claims)), 401, "unauthorized")

    @pytest.mark.parametrize("claim, value", [("aud", "urn:someone-else"), ("iss", "urn:evil-issuer")])
    def test_a_token_for_another_audience_or_from_another_issuer_is_401(
        self, client, creds, settings, sign, claim, value
    ):
        token = sign(claims_for(creds[0], settings, **{claim: value}))
        assert_error(vocabulary(client, token), 401, "unauthorized")

    def test_a_token_signed_by_another_key_is_401(self, client, creds, settings):
        other = SigningKeys(KeySet([new_signing_key()]))
        token = other.sign(claims_for(creds[0], settings), typ=ACCESS_TOKEN_TYP)
        assert_error(vocabulary(client, token), 401, "unauthorized")

    def test_an_unsigned_alg_none_token_is_401(self, client, creds, settings):
        header = b64url({"alg": "none", "typ": ACCESS_TOKEN_TYP})
        token = f"{header}.{b64url(claims_for(creds[0], settings))}."
        assert_error(vocabulary(client, token), 401, "unauthorized")

    def test_a_token_with_a_tampered_payload_is_401(self, client, creds, settings, sign):
        header, _, signature = sign(claims_for(creds[0], settings)).split(".")
        forged = b64url(claims_for(creds[0], settings, scope="admin", org="admin"))
        assert_error(vocabulary(client, f"{header}.{forged}.{signature}"), 401, "unauthorized")

    def test_a_consent_receipt_is_not_an_access_token(self, client, world, creds, settings, sign):
        rough_sleeper_orgs(world)
        receipt = record_consent(client, world.headers("outreach-org", "consents:write"))["receipt"]
        assert_error(vocabulary(client, receipt), 401, "unauthorized")
        # Even with every access-token claim, the typ alone keeps a receipt out.
        assert_error(
            vocabulary(client, sign(claims_for(creds[0], settings), typ=RECEIPT_TYP)), 401, "unauthorized"
        )

    @pytest.mark.parametrize("org", ["admin", "univ"])
    def test_a_signed_token_naming_another_organization_than_its_clients_is_401(
        self, client, world, creds, settings, sign, org
    ):
        """Issue 12: the org claim must be the client's own organization, on every path (the
        API's common authentication and authorize's own client check)."""
        world.org("univ", "research")
        assert_ok(vocabulary(client, sign(claims_for(creds[0], settings))))  # the control
        token = sign(claims_for(creds[0], settings, org=org, scope="authorize admin"))
        assert_error(vocabulary(client, token), 401, "unauthorized")
        assert_error(
            client.post(
                "/v1/organizations", headers=bearer(token), json={"id": "x", "name": "X", "type": "other"}
            ),
            401,
            "unauthorized",
        )
        body = {
            "subject": {"system": "urn:outreach-org:client", "value": "C-1"},
            "purpose": "research",
            "data_categories": ["health"],
        }
        assert_error(client.post("/v1/authorize", headers=bearer(token), json=body), 401, "unauthorized")

    def test_a_token_of_an_unknown_client_is_401(self, client, settings, sign):
        assert_error(vocabulary(client, sign(claims_for("cl_nobody", settings))), 401, "unauthorized")

    def test_a_disabled_clients_token_fails_on_the_next_call(self, client, world, creds):
        token = assert_ok(request_token(client, *creds))["access_token"]
        assert_ok(vocabulary(client, token))
        assert_ok(client.post(f"/v1/clients/{creds[0]}/disable", headers=world.admin()))
        assert_error(vocabulary(client, token), 401, "unauthorized")


class TestScopes:
    @pytest.mark.parametrize(
        "path, body",
        [
            ("/v1/consents", CONSENT),
            ("/v1/organizations", {"id": "x", "name": "X", "type": "other"}),
            ("/v1/clients", {"organization": "outreach-org", "name": "x", "scopes": ["admin"]}),
            ("/v1/communities", {"id": "c", "name": "C", "stewards": ["outreach-org"]}),
            ("/v1/clients/cl_x/disable", None),
        ],
    )
    def test_a_token_without_the_scope_is_403(self, client, world, path, body):
        rough_sleeper_orgs(world)
        headers = world.headers("outreach-org", "consents:read")
        with unchanged_tables(client.application):
            response = client.post(path, headers=headers, json=body)
        assert_error(response, 403, "forbidden")

    @pytest.mark.parametrize("body", [CONSENT, {}, [], "x"])
    def test_without_a_token_it_is_401_whatever_the_body(self, client, world, body):
        rough_sleeper_orgs(world)
        assert_error(client.post("/v1/consents", json=body), 401, "unauthorized")

    def test_a_token_carries_only_the_scopes_asked_for(self, client, world, creds):
        rough_sleeper_orgs(world)
        consent = record_consent(client, world.headers("outreach-org", "consents:write"))
        narrow = assert_ok(request_token(client, *creds, scope="authorize"))["access_token"]
        full = assert_ok(request_token(client, *creds))["access_token"]
        assert_error(client.get(f"/v1/consents/{consent['id']}", headers=bearer(narrow)), 403, "forbidden")
        assert_ok(client.get(f"/v1/consents/{consent['id']}", headers=bearer(full)))

    def test_authorize_needs_the_authorize_scope(self, client, world):
        response = client.post(
            "/v1/authorize",
            headers=world.headers("gla", "consents:read"),
            json={
                "subject": {"system": "urn:s", "value": "v"},
                "purpose": "service-planning",
                "data_categories": ["housing"],
            },
        )
        assert_error(response, 403, "forbidden")

    def test_reading_a_consent_needs_a_consents_scope(self, client, world):
        rough_sleeper_orgs(world)
        consent = record_consent(client, world.headers("outreach-org", "consents:write"))
        headers = world.headers("outreach-org", "authorize")
        assert_error(client.get(f"/v1/consents/{consent['id']}", headers=headers), 403, "forbidden")


class TestJwks:
    def test_publishes_the_public_key_only(self, client):
        jwks = assert_ok(client.get("/.well-known/jwks.json"))
        assert jwks["keys"]
        for key in jwks["keys"]:
            assert "d" not in key
            assert key["kid"]

    def test_verifies_a_receipt(self, client, world):
        rough_sleeper_orgs(world)
        receipt = record_consent(client, world.headers("outreach-org", "consents:write"))["receipt"]
        keys = KeySet.import_key_set(assert_ok(client.get("/.well-known/jwks.json")))
        decoded = jwt.decode(receipt, keys, algorithms=["ES256"])
        assert decoded.header["typ"] == RECEIPT_TYP
        assert decoded.claims["controller"]["id"] == "outreach-org"


class TestNoExternalIssuer:
    """TRUSTED_ISSUER_JWKS was documented but never read; it is removed, and a deployment that
    still sets it is refused at start rather than believing it has an effect."""

    def test_a_deployment_setting_trusted_issuer_jwks_does_not_start(self, monkeypatch):
        from consent_service import config

        monkeypatch.setenv("CONSENT_TRUSTED_ISSUER_JWKS", '{"keys": []}')
        with pytest.raises(ValueError, match="CONSENT_TRUSTED_ISSUER_JWKS"):
            config.load()

    def test_a_token_from_another_issuer_with_its_own_keys_is_401(self, client, creds, settings):
        other = SigningKeys(KeySet([new_signing_key()]))
        token = other.sign(claims_for(creds[0], settings, iss="https://idp.example"), typ=ACCESS_TOKEN_TYP)
        assert_error(vocabulary(client, token), 401, "unauthorized")
