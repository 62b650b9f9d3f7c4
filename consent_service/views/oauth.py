"""The token endpoint (Authlib) and the public keys that verify tokens and receipts."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from consent_service.views.errors import render_oauth_error

blp = Blueprint("oauth", __name__)


@blp.post("/oauth/token")
def issue_token():
    """OAuth 2.0 client credentials (RFC 6749 §4.4); the answer is an RFC 9068 JWT.

    Parameters belong in the body (RFC 6749 §2.3.1 forbids client credentials in the URL):
    a request with any query string is refused before Authlib reads it, so a secret put in
    a URL is never used, and never logged by the service (the access log has no query
    strings either). The client must treat that secret as exposed.
    """
    if request.query_string:
        return render_oauth_error(
            400,
            {
                "error": "invalid_request",
                "error_description": "parameters and credentials go in the request body, never the URL",
            },
            [],
        )
    return current_app.extensions["consent_token_server"].create_token_response()


@blp.get("/.well-known/jwks.json")
def jwks():
    response = jsonify(current_app.extensions["consent_service"].keys.public_jwks())
    response.cache_control.max_age = 300
    response.cache_control.public = True
    return response
