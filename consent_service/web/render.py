"""What every web page shares: its blueprint's checks, the page context, and HTML error pages.

Every web blueprint is made by :func:`blueprint`, which checks the CSRF token of every unsafe
request before the view runs, and answers errors as pages (the API answers them as JSON).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from consent_service.container import current as services
from consent_service.core.permissions import Scope
from consent_service.errors import ServiceError
from consent_service.services import stewardship
from consent_service.web import i18n
from consent_service.web.session import SignInNeeded, check_csrf, csrf_token, current_user
from consent_service.web.words import Words, time_zone

log = logging.getLogger(__name__)


def words() -> Words:
    if "web_words" not in g:
        names = stewardship.names(services())
        g.web_words = Words(
            language=i18n.language(),
            vocabulary=services().policy.vocabulary,
            organizations={o["id"]: o["name"] for o in names["organizations"]},
            communities={c["id"]: c["name"] for c in names["communities"]},
            zone=time_zone(services().settings["TIMEZONE"]),
        )
    return g.web_words


def _context() -> dict[str, Any]:
    user = current_user()
    return {
        "user": user,
        "lang": i18n.language(),
        "languages": i18n.LANGUAGES,
        "_": i18n.translate,
        "csrf_token": csrf_token,
        "w": words(),
        "can_steward": user is not None and user.has(Scope.RULES_WRITE),
        "can_record": user is not None and user.has(Scope.CONSENTS_WRITE),
        "can_find": user is not None and user.has(Scope.CONSENTS_READ),
    }


def page(template: str, *, status: int = 200, **context: Any) -> Response:
    html = render_template(f"web/{template}", **context)
    return Response(html, status=status, mimetype="text/html")


def error_page(status: int, message: str) -> Response:
    return page("error.html", status=status, status_code=status, message=message)


# The app-wide HTTP error handler (views/errors.py) hands an error on a /web/ address that no page
# matched (a mistyped URL, a method no page has) to this, so a person sees a page, not JSON.
UNROUTED_ERROR_PAGE = "consent_web_unrouted_error"


def unrouted_error_page(exc: HTTPException) -> Response:
    """The error page for a /web/ address no blueprint matched (its context added by hand: no
    blueprint's context processor runs for such a request)."""
    status = exc.code or 500
    message = {
        404: i18n.translate("There is no page at this address."),
        405: i18n.translate("This page cannot be used this way."),
    }.get(status, exc.description or exc.name)
    html = render_template("web/error.html", **_context(), status_code=status, message=message)
    response = Response(html, status=status, mimetype="text/html")
    allowed = getattr(exc, "valid_methods", None)
    if status == 405 and allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def blueprint(name: str, import_name: str, url_prefix: str) -> Blueprint:
    bp = Blueprint(name, import_name, url_prefix=url_prefix)
    bp.before_request(check_csrf)
    bp.context_processor(_context)

    @bp.errorhandler(SignInNeeded)
    def _sign_in(_: SignInNeeded) -> Response:
        flash(i18n.translate("Please sign in to continue."), "info")
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("web.sign_in", next=target))  # type: ignore[return-value]

    @bp.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        return error_page(exc.status, exc.message)

    @bp.errorhandler(RateLimitExceeded)
    def _rate_limited(_: RateLimitExceeded) -> Response:
        return error_page(429, i18n.translate("Too many attempts from here. Wait a minute and try again."))

    @bp.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return error_page(exc.code or 500, exc.description or exc.name)

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("web page failed")
        return error_page(503 if isinstance(exc, DBAPIError) else 500, i18n.translate("Something went wrong"))

    return bp
