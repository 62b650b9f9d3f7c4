"""Extension objects, made fresh for each app (tests build many apps in one process)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Request
from flask_limiter import Limiter
from flask_smorest import Api
from marshmallow import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ValidationFailed


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _holds_nul(value: Any) -> bool:
    """Whether any key or string anywhere in a parsed body contains NUL (PostgreSQL refuses it)."""
    pending = [value]
    while pending:  # no recursion: the body may be nested as deep as the parser allows
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class ContractParser(FlaskParser):
    """webargs answers 422 by default; the contract says 400.

    Bodies are parsed strictly: ``NaN`` and ``Infinity`` (which Python's json accepts) are
    refused, and a body nested too deep for the parser (``RecursionError``) or holding an
    integer too long to convert (``ValueError``) is invalid JSON, a 400, rather than a 500.
    A streamed body that reaches the size limit is a 413, as one with a Content-Length is.
    A string holding NUL (``\\u0000``) is a 400: PostgreSQL cannot store it (the driver's
    refusal would be a 503).
    """

    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return missing
        raw = req.get_data(cache=True)
        limit = req.max_content_length
        if req.content_length is None and limit is not None and len(raw) >= limit:
            # A streamed (chunked) body is cut at the limit by werkzeug, silently: refuse it
            # as too large rather than parse what is left of it.
            raise RequestEntityTooLarge()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", "(body)", 0) from exc
        try:
            parsed = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError:
            raise
        except (RecursionError, ValueError) as exc:
            # A non-empty ``doc``: webargs takes an empty one to mean "no body".
            raise json.JSONDecodeError(f"not usable JSON: {type(exc).__name__}", "(body)", 0) from exc
        if "\\u0000" in text and _holds_nul(parsed):
            raise ValidationFailed("The body contains a NUL character.",
                                   details={"_body": ["text must not contain NUL (\\u0000) characters"]})
        return parsed


def make_api() -> Api:
    from .schemas.common import ErrorSchema

    api = Api()
    api.ARGUMENTS_PARSER = ContractParser()  # type: ignore[attr-defined]
    # The error responses flask-smorest documents (400, default, and one per status) have the
    # contract's body, {"error": {"code", "message", "details"}}, not flask-smorest's own.
    api.ERROR_SCHEMA = ErrorSchema  # type: ignore[assignment]
    return api


def make_limiter(key_func: Callable[[], str]) -> Limiter:
    """The limiter, counting by ``key_func`` (views.limits.client_or_address)."""
    return Limiter(key_func=key_func, headers_enabled=True)
