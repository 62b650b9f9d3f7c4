"""Web pages for people: community stewards and intake workers (server-rendered, no build step).

``register(app)`` is the only thing the app factory calls. It sets the session signing key
(derived from the service secret, so every instance of a deployment shares it), the session
cookie's attributes, CSRF settings, the blueprints, and the per-address limit on sign-ins.
Static files (CSS, one small script) are served from ``consent_service/static``; the pages'
Content-Security-Policy (``views.security``) allows no inline script or style.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, redirect, url_for
from werkzeug.wrappers import Response

from ..domain import pseudonyms
from ..views.common import EXTENSION
from . import account, intake, steward
from .session import TLSAwareSessions


def register(app: Flask) -> None:
    services = app.extensions[EXTENSION]
    settings = services.settings
    minutes = int(settings["WEB_SESSION_MINUTES"])
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
    for module in (account, steward, intake):
        app.register_blueprint(module.bp)

    def to_pages() -> Response:
        return redirect(url_for("web.home"))

    if not any(rule.rule == "/" for rule in app.url_map.iter_rules()):
        app.add_url_rule("/", "web_root", to_pages)

    limiter = app.extensions.get("consent_limiter")
    if limiter is not None:
        app.view_functions["web.sign_in"] = limiter.limit(settings["RATELIMIT_SIGN_IN"], methods=["POST"])(
            app.view_functions["web.sign_in"]
        )
