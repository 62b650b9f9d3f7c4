"""Web pages for people: community stewards and intake workers (server-rendered, no build step).

``register(app)`` is the only thing the app factory calls. It sets the session signing key
(derived from the service secret, so every instance of a deployment shares it), the session
cookie's attributes, CSRF settings, the blueprints, and the per-address limit on sign-ins.
Static files (CSS, one small script) are served from ``consent_service/static``; the pages'
Content-Security-Policy (``views.security``) allows no inline script or style.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, redirect, url_for
from werkzeug.local import LocalProxy
from werkzeug.wrappers import Response

from consent_service.container import EXTENSION
from consent_service.core import pseudonyms
from consent_service.web import (
    account,
    governance,
    i18n,
    intake,
    oidc,
    person,
    steward,
    steward_agreements,
    steward_requests,
)
from consent_service.web.render import UNROUTED_ERROR_PAGE, unrouted_error_page, words
from consent_service.web.session import TLSAwareSessions
from consent_service.web.words import time_zone


def register(app: Flask) -> None:
    services = app.extensions[EXTENSION]
    settings = services.settings
    minutes = int(settings["WEB_SESSION_MINUTES"])
    time_zone(settings["TIMEZONE"])  # an unknown zone stops the service here, naming the setting
    app.secret_key = pseudonyms.derive_key(services.secret, "web-session-cookie")
    app.session_interface = TLSAwareSessions()
    app.config.update(
        SESSION_COOKIE_NAME="consent_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings["WEB_SECURE_COOKIES"]),
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=minutes),
        WTF_CSRF_TIME_LIMIT=minutes * 60,
    )
    i18n.register(app)
    for module in (account, steward, governance, steward_requests, steward_agreements, intake, person):
        app.register_blueprint(module.bp)
    oidc.register(app)
    app.context_processor(_wording)
    app.extensions[UNROUTED_ERROR_PAGE] = unrouted_error_page

    def to_pages() -> Response:
        return redirect(url_for("web.home"))

    if not any(rule.rule == "/" for rule in app.url_map.iter_rules()):
        app.add_url_rule("/", "web_root", to_pages)

    limiter = app.extensions.get("consent_limiter")
    if limiter is not None:
        app.view_functions["web.sign_in"] = limiter.limit(settings["RATELIMIT_SIGN_IN"], methods=["POST"])(
            app.view_functions["web.sign_in"]
        )
        # The person's code: every attempt per address; wrong ones (401) for everyone together.
        view: Any = app.view_functions["person.start"]
        view = limiter.limit(settings["RATELIMIT_PERSON_CODE"], methods=["POST"], scope="person-code")(view)
        view = limiter.limit(
            settings["RATELIMIT_PERSON_CODE_FAILURES"],
            key_func=lambda: "person-code-failures",
            methods=["POST"],
            deduct_when=lambda response: response.status_code == 401,
            scope="person-code-failures",
        )(view)
        app.view_functions["person.start"] = view


def _wording() -> dict[str, Any]:
    """Every template, the API's printable pages (receipt, access report) too, words things as the
    web pages do: in the reader's language, with names, in the deployment's time zone. Looked up
    only when a template uses them."""
    return {"_": i18n.translate, "w": LocalProxy(words), "lang": LocalProxy(i18n.language)}
