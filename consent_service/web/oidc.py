"""Signing in to the web pages through the deployment's OpenID provider (``CONSENT_OIDC_*``).

Authlib's Flask client runs the authorization code flow: ``GET /web/sign-in/oidc`` sends the
browser to the provider with a fresh state, nonce and PKCE (S256) verifier kept in the session;
``GET /web/oidc/callback`` checks the state, exchanges the code (with the verifier), verifies the
ID token (signature from the provider's JWKS, issuer, audience, expiry, nonce), and hands the
claims to ``services.users.sign_in_federated``, which decides who the person is here. The
provider's metadata comes from ``{OIDC_ISSUER}/.well-known/openid-configuration``; its ``issuer``
must be exactly the configured one, and the ``iss`` parameter of the answer (RFC 9207, against
mix-up attacks between providers) must be too when the provider sends it or says it will.

Nothing is written when the flow itself fails (a wrong or replayed state, no code, a refused
code, an ID token that does not verify): no one was identified. A person the provider vouched
for but who cannot sign in here is recorded by the use case, and told why on the sign-in page.

A session begun here ends after ``OIDC_SESSION_MAX_MINUTES`` however much it is used
(``web.session``), so a person switched off at the provider is asked again within that time.
With the routes always registered, a deployment without an issuer answers them 404.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, abort, current_app, redirect, request, session, url_for
from joserfc.errors import JoseError
from werkzeug.wrappers import Response

from consent_service.container import EXTENSION
from consent_service.container import current as services
from consent_service.core import idp
from consent_service.services import users
from consent_service.web import i18n
from consent_service.web.render import blueprint
from consent_service.web.session import begin, now
from consent_service.web.words import N_

bp = blueprint("oidc", __name__, "/web")
log = logging.getLogger(__name__)

CLIENT = "idp"
TIMEOUT = 10  # seconds for each request to the provider (metadata, keys, token, userinfo)
ID_TOKEN = "oidc_id_token"  # the session's ID token, for the provider's sign-out (id_token_hint)
NEXT = "oidc_next"
FLOW_FAILURES = (OAuthError, JoseError, requests.RequestException, ValueError, KeyError)

# What the sign-in page says for each refusal of sign_in_federated (its audit entry's reason).
REFUSALS = {
    "disabled": N_("Your account here is switched off. Ask your organization's administrator."),
    "no-organization": N_(
        "Your account at {provider} does not say which organization you work for "
        "here. Ask your organization's administrator."
    ),
    "unknown-organization": N_(
        "Your account at {provider} names an organization this service does "
        "not know. Ask your organization's administrator."
    ),
    "no-known-role": N_(
        "Your account at {provider} gives you no role on these pages. Ask your organization's administrator."
    ),
    "role-not-for-organization": N_(
        "Your account at {provider} gives you a role your organization "
        "may not hold here. Ask your organization's administrator."
    ),
    "no-email": N_("Your account at {provider} has no email address. Ask your organization's administrator."),
    "email-in-use": N_(
        "An account here already has your email address, and is not linked to your "
        "account at {provider}. Ask the operator of this service to link them."
    ),
}
FLOW_FAILED = N_("The sign-in with {provider} could not be completed. Please try again.")


def enabled() -> bool:
    return bool(services().settings["OIDC_ISSUER"])


def discovery_url(issuer: str) -> str:
    return f"{issuer.rstrip('/')}/.well-known/openid-configuration"


def register(app: Flask) -> None:
    """Check the settings (the service does not start on unusable ones) and register the client."""
    settings = app.extensions[EXTENSION].settings
    idp.check_settings(settings)
    app.register_blueprint(bp)
    if not settings["OIDC_ISSUER"]:
        return
    secret = str(settings["OIDC_CLIENT_SECRET"])
    oauth = OAuth(app)
    oauth.register(
        CLIENT,
        client_id=str(settings["OIDC_CLIENT_ID"]),
        client_secret=secret or None,
        server_metadata_url=discovery_url(str(settings["OIDC_ISSUER"])),
        client_kwargs={
            "scope": str(settings["OIDC_SCOPES"]),
            "code_challenge_method": "S256",
            # No secret: a public client, its code protected by PKCE alone.
            "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
            "default_timeout": TIMEOUT,
        },
    )


def _client() -> Any:
    return current_app.extensions["authlib.integrations.flask_client"].create_client(CLIENT)


def _metadata() -> dict[str, Any]:
    """The provider's metadata; ``ValueError`` if it names another issuer than the configured."""
    metadata: dict[str, Any] = _client().load_server_metadata()
    if metadata.get("issuer") != services().settings["OIDC_ISSUER"]:
        metadata.clear()  # read again next time: the provider may be being set up
        raise ValueError("the provider's metadata names another issuer")
    return metadata


def _here(endpoint: str) -> str:
    """The absolute URL of one of these pages, as registered at the provider: https behind a
    TLS-terminating proxy (``WEB_SECURE_COOKIES``, where the app sees plain HTTP), with the host
    the browser asked for (the proxy must pass ``Host`` on)."""
    secure = bool(services().settings["WEB_SECURE_COOKIES"]) or request.is_secure
    return url_for(endpoint, _external=True, _scheme="https" if secure else "http")


def _provider() -> str:
    return str(services().settings["OIDC_DISPLAY_NAME"])


def _flow_failed(exc: Exception, status: int) -> Response:
    """The flow broke: logged for the operator (the kind of failure and the provider's error
    code, never a token, code or claim), and the person asked to try again."""
    log.warning(
        "oidc sign-in failed", extra={"failure": type(exc).__name__, "error": getattr(exc, "error", None)}
    )
    return _refused(FLOW_FAILED, status)


def _refused(message: str, status: int) -> Response:
    """The sign-in page, saying why (the words in the page's language)."""
    from consent_service.web.account import sign_in_page

    return sign_in_page(refused=i18n.translate(message, provider=_provider()), status=status)


@bp.get("/sign-in/oidc")
def start() -> Response:
    if not enabled():
        abort(404)
    from consent_service.web.account import safe_next

    try:
        _metadata()
        answer: Response = _client().authorize_redirect(_here("oidc.callback"))
    except FLOW_FAILURES as exc:
        return _flow_failed(exc, 502)
    session[NEXT] = safe_next(request.args.get("next"))
    return answer


@bp.get("/oidc/callback")
def callback() -> Response:
    if not enabled():
        abort(404)
    settings = services().settings
    issuer = str(settings["OIDC_ISSUER"])
    try:
        metadata = _metadata()
        sent_iss = request.args.get("iss")
        promised = bool(metadata.get("authorization_response_iss_parameter_supported"))
        if sent_iss != issuer and (sent_iss is not None or promised):
            raise ValueError("the answer's iss is not the configured issuer (RFC 9207)")
        if not request.args.get("code") and not request.args.get("error"):
            raise ValueError("no code")
        token = _client().authorize_access_token()
        claims = dict(token["userinfo"])  # the verified ID token's claims
        claims = _with_userinfo(token, claims, settings)
    except FLOW_FAILURES as exc:
        return _flow_failed(exc, 400)
    target = session.pop(NEXT, None)
    try:
        user = users.sign_in_federated(
            services(), issuer=issuer, subject=str(claims["sub"]), claims=claims, now=now()
        )
    except users.FederatedSignInRefused as refusal:
        return _refused(REFUSALS.get(refusal.reason, FLOW_FAILED), 403)
    minutes = int(settings["OIDC_SESSION_MAX_MINUTES"])
    begin(user, until=now().timestamp() + minutes * 60)
    session[ID_TOKEN] = token.get("id_token")
    from consent_service.web.account import safe_next

    return redirect(safe_next(target))


def _with_userinfo(token: dict[str, Any], claims: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The ID token's claims, completed from the userinfo endpoint when the organization, roles
    or email claim is not in the ID token (providers differ in which claims they put where; the
    specification's default for the code flow is userinfo). The ID token's own claims win;
    userinfo about another subject is refused."""
    wanted = (str(settings["OIDC_ORGANIZATION_CLAIM"]), str(settings["OIDC_ROLES_CLAIM"]), "email")
    if all(idp.claim(claims, name) is not None for name in wanted):
        return claims
    if not _metadata().get("userinfo_endpoint"):
        return claims
    try:
        extra = dict(_client().userinfo(token=token))
    except (OAuthError, requests.RequestException, ValueError) as exc:
        # The ID token alone is then judged (a refusal names what is missing).
        log.warning("oidc userinfo failed", extra={"failure": type(exc).__name__})
        return claims
    if extra.get("sub") != claims.get("sub"):
        raise ValueError("userinfo about another subject")
    return {**extra, **claims}


def end_session_url(id_token: str | None) -> str | None:
    """Where to send the browser after the local sign-out so the provider's session ends too
    (OpenID Connect RP-Initiated Logout), or None when the provider has no such endpoint."""
    if not enabled():
        return None
    try:
        endpoint = _metadata().get("end_session_endpoint")
    except FLOW_FAILURES:
        return None
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return None
    query: dict[str, str] = {
        "client_id": str(services().settings["OIDC_CLIENT_ID"]),
        "post_logout_redirect_uri": _here("web.sign_in"),
    }
    if id_token:
        query["id_token_hint"] = id_token
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"
