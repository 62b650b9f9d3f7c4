"""Issuing access tokens (client credentials, RFC 6749 §4.4) as RFC 9068 JWTs, with Authlib.

Two Authlib defaults are changed on purpose: tokens live 15 minutes (not 10 days), and a
request for a scope the client lacks is refused with ``invalid_scope`` instead of being
granted an empty scope.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator

from consent_service.auth.clients import ClientCredentials
from consent_service.core.keys import SigningKeys

ACCESS_TOKEN_TYP = "at+jwt"


class StrictClientCredentialsGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        requested = set(scope_to_list(self.request.payload.scope) or [])
        client: ClientCredentials = self.request.client
        if requested - client.scopes:
            raise InvalidScopeError(
                description=f"scope not granted to this client: {' '.join(sorted(requested - client.scopes))}"
            )


def jwt_token_generator(
    *, keys: SigningKeys, issuer: str, audience: str, expires_in: int
) -> BearerTokenGenerator:
    def access_token(client: ClientCredentials, grant_type: str, user: Any, scope: str) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": client.client_id,
            "client_id": client.client_id,
            "org": client.organization,
            "scope": scope,
            "iat": now,
            "exp": now + expires_in,
            "jti": generate_token(24),
        }
        return keys.sign(claims, typ=ACCESS_TOKEN_TYP)

    return BearerTokenGenerator(access_token, expires_generator=lambda client, grant_type: expires_in)


class ContractAuthorizationServer(AuthorizationServer):
    """Authlib's server with its error bodies rendered in the contract's shape."""

    def __init__(
        self, *, render_error: Callable[[int, dict[str, Any], list[tuple[str, str]]], Any], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._render_error = render_error

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Any:
        if status_code >= 400 and isinstance(payload, dict):
            return self._render_error(status_code, payload, list(headers))
        return super().handle_response(status_code, payload, headers)


def build_token_server(
    app: Any,
    *,
    keys: SigningKeys,
    issuer: str,
    audience: str,
    expires_in: int,
    query_client: Callable[[str], ClientCredentials | None],
    render_error: Callable[[int, dict[str, Any], list[tuple[str, str]]], Any],
) -> ContractAuthorizationServer:
    server = ContractAuthorizationServer(
        render_error=render_error, query_client=query_client, save_token=lambda token, request: None
    )
    server.init_app(app)  # before registering: init_app installs Authlib's default generator
    server.register_grant(StrictClientCredentialsGrant)
    server.register_token_generator(
        "default", jwt_token_generator(keys=keys, issuer=issuer, audience=audience, expires_in=expires_in)
    )
    return server
