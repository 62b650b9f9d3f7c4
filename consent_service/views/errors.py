"""Route every error, whoever raised it, through ``errors.error_body``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from consent_service.errors import ErrorCode, ServiceError, error_body
from consent_service.views.limits import retry_after_seconds

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ErrorCode.VALIDATION_ERROR,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}
_MESSAGES = {
    ErrorCode.VALIDATION_ERROR: "The request is not valid.",
    ErrorCode.NOT_FOUND: "No such resource.",
    ErrorCode.METHOD_NOT_ALLOWED: "This method is not allowed here.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The request body is too large.",
    ErrorCode.RATE_LIMITED: "Too many requests; slow down and retry later.",
    ErrorCode.UNAVAILABLE: "The service cannot reach its store; treat this as deny and retry later.",
    ErrorCode.INTERNAL: "Something went wrong; nothing was decided.",
}
_OAUTH_CODES = {"invalid_client": ErrorCode.UNAUTHORIZED, "unauthorized_client": ErrorCode.UNAUTHORIZED}


def render(
    status: int,
    code: ErrorCode | str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for name, value in headers or []:
        if name.lower() not in {"content-type", "content-length"}:
            response.headers[name] = value
    return response


def _flatten_validation(messages: Any) -> dict[str, list[str]]:
    """The contract's ``details``: top-level field -> list of messages (strings).

    webargs nests messages by location (``{"json": {...}}``) and marshmallow by field
    (``{"subject": {"value": [...]}}``, ``{"data_categories": {"0": [...]}}``); a nested
    message keeps its path inside the field: ``{"subject": ["value: Missing data ..."]}``.
    """
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "form", "headers", "view_args"}:
        merged: dict[str, Any] = {}
        for value in messages.values():
            merged.update(value if isinstance(value, dict) else {"_body": value})
        messages = merged
    if not isinstance(messages, dict):
        messages = {"_body": messages}
    flat: dict[str, list[str]] = {}

    def walk(field: str, path: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(field, f"{path}.{key}" if path else str(key), inner)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(field, path, item)
        else:
            flat.setdefault(field, []).append(f"{path}: {value}" if path else str(value))

    for field, value in messages.items():
        walk(str(field), "", value)
    return flat


def render_oauth_error(status: int, payload: dict[str, Any], headers: list[tuple[str, str]]) -> Response:
    """Authlib's RFC 6749 error, in the contract's shape (the OAuth code kept in details)."""
    oauth_code = str(payload.get("error", "invalid_request"))
    code = _OAUTH_CODES.get(oauth_code, ErrorCode.VALIDATION_ERROR)
    message = str(payload.get("error_description") or oauth_code.replace("_", " "))
    return render(
        401 if code is ErrorCode.UNAUTHORIZED else status, code, message, {"oauth_error": oauth_code}, headers
    )


WEB_UNROUTED_ERROR_PAGE = "consent_web_unrouted_error"  # web/render.py sets it


def _is_web(path: str) -> bool:
    return path == "/web" or path.startswith("/web/")


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        return render(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Response:
        seconds = retry_after_seconds()
        return render(
            429,
            ErrorCode.RATE_LIMITED,
            _MESSAGES[ErrorCode.RATE_LIMITED],
            {"limit": str(exc.description), "retry_after": seconds},
            [("Retry-After", str(seconds))],
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        web_page = app.extensions.get(WEB_UNROUTED_ERROR_PAGE)
        if web_page is not None and request.blueprint is None and _is_web(request.path):
            return web_page(exc)  # an HTML page (web/render.py)
        status = exc.code or 500
        if status == 422:  # webargs' default, on a blueprint not built with views.common.ApiBlueprint
            status = 400
        code = _HTTP_CODES.get(status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.VALIDATION_ERROR)
        data = getattr(exc, "data", None) or {}
        details = _flatten_validation(data["messages"]) if "messages" in data else {}
        message = _MESSAGES.get(code, exc.description or "Error.")
        if status == 400 and not details:
            message = "The request body is not valid JSON." if "JSON" in (exc.description or "") else message
        response = render(status, code, message, details)
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        allowed = getattr(exc, "valid_methods", None)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeout)
    def _store_error(exc: Exception) -> Response:
        log.warning("store error answered with 503: %s", type(exc).__name__)
        return render(503, ErrorCode.UNAVAILABLE, _MESSAGES[ErrorCode.UNAVAILABLE])

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return render(500, ErrorCode.INTERNAL, _MESSAGES[ErrorCode.INTERNAL])
