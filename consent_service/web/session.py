"""Who is signed in, what they may do, and the checks every web request passes first.

The signed-in person acts as a ``Caller`` of their organization with the scopes of their
roles (``services.users``); pages hand that caller to the same use cases the API calls, which
check the per-organization and per-community permissions. Here only the scope is checked, as
``views.common.caller_with`` does for a token.

The session is Flask's signed cookie: HttpOnly, SameSite=Lax, Secure over TLS (see
``TLSAwareSessions``), expiring after ``WEB_SESSION_MINUTES`` without use (the signature
carries the time, so an old cookie is refused by the server, not just forgotten by the
browser). It holds only the person's id and a stamp that changes with their password and
when they sign out, so signing out ends every session of theirs, not only this browser's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf, validate_csrf
from wtforms.validators import ValidationError

from consent_service.container import current as services
from consent_service.core.permissions import Scope
from consent_service.errors import Forbidden, ValidationFailed
from consent_service.services import users
from consent_service.services.users import SignedInUser

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
UNTIL = "until"  # the session's end whatever its use (OIDC_SESSION_MAX_MINUTES), if it has one


class SignInNeeded(Exception):
    """No one is signed in (or the session ended): the page answers with the sign-in form."""


class CsrfRefused(ValidationFailed):
    """A form came without this session's CSRF token (400): nothing is done."""


class TLSAwareSessions(SecureCookieSessionInterface):
    """The cookie is Secure when configured so, and whenever the request itself came over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = bool(app.config.get("SESSION_COOKIE_SECURE"))
        return configured or (has_request_context() and request.is_secure)


def begin(user: SignedInUser, *, until: float | None = None) -> None:
    """Start a fresh session for ``user`` (nothing of the signed-out session is kept); ``until``
    (a POSIX time) ends it then however much it is used (a sign-in through the provider)."""
    language = session.get("lang")
    session.clear()
    session.permanent = True
    session["uid"], session["stamp"] = user.id, user.stamp
    if until is not None:
        session[UNTIL] = until
    if language:
        session["lang"] = language
    g.web_user = user


def end() -> None:
    session.clear()
    g.web_user = None


def current_user() -> SignedInUser | None:
    if "web_user" not in g:
        user_id, stamp = session.get("uid"), session.get("stamp")
        user = None
        until = session.get(UNTIL)
        if until is not None and not (isinstance(until, int | float) and now().timestamp() < until):
            session.clear()  # a session begun through the provider has ended: it is asked again
        elif isinstance(user_id, str) and isinstance(stamp, str):
            user = users.current_user(services(), user_id=user_id, stamp=stamp)
            if user is None:
                session.clear()
        g.web_user = user
    return g.web_user


def signed_in() -> SignedInUser:
    user = current_user()
    if user is None:
        raise SignInNeeded
    return user


def caller_with(*scopes: Scope) -> Any:
    """The signed-in person as a caller, if one of their roles gives one of ``scopes``."""
    user = signed_in()
    if scopes and not any(user.has(scope) for scope in scopes):
        raise Forbidden("Your roles do not include this work. Ask your organization's administrator.")
    return user.caller


def check_csrf() -> None:
    """Every unsafe request of the web pages carries the session's CSRF token in its form."""
    if request.method in SAFE_METHODS:
        return
    try:
        validate_csrf(request.form.get(CSRF_FIELD), token_key=CSRF_FIELD)
    except ValidationError as exc:
        raise CsrfRefused(
            f"The form could not be accepted ({exc.args[0] if exc.args else 'no token'}). "
            "Go back, reload the page and try again."
        ) from exc


def csrf_token() -> str:
    return generate_csrf(token_key=CSRF_FIELD)


def now() -> datetime:
    return datetime.now(UTC)
