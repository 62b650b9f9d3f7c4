"""The token endpoint (Authlib) and the public keys that verify tokens and receipts."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

blp = Blueprint("oauth", __name__)


@blp.post("/oauth/token")
def issue_token():  # type: ignore[no-untyped-def]
    """OAuth 2.0 client credentials (RFC 6749 §4.4); the answer is an RFC 9068 JWT."""
    return current_app.extensions["consent_token_server"].create_token_response()


@blp.get("/.well-known/jwks.json")
def jwks():  # type: ignore[no-untyped-def]
    response = jsonify(current_app.extensions["consent_service"].keys.public_jwks())
    response.cache_control.max_age = 300
    response.cache_control.public = True
    return response
