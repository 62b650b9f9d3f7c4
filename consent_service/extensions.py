"""Extension objects, made fresh for each app (tests build many apps in one process)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from flask import Request
from flask_limiter import Limiter
from flask_smorest import Api
from marshmallow import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

from consent_service.errors import ValidationFailed


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# What a JSON text must hold for a parsed string to contain NUL or a lone surrogate: the
# escapes \u0000 and \uD800-\uDFFF (a raw surrogate is not UTF-8, refused when decoding).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _unstorable(text: str) -> str | None:
    """Why a string cannot be stored or hashed as it is, or None.

    NUL: PostgreSQL refuses it. A lone surrogate (half of a UTF-16 pair, which JSON's \\u
    escapes can name alone) is not a character: it cannot be encoded as UTF-8, so neither
    stored nor turned into a subject key (it was a 500, issue 12).
    """
    if "\x00" in text:
        return "text must not contain NUL (\\u0000) characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text must not contain lone surrogates (\\uD800-\\uDFFF without their pair)"
    return None


def _printable(name: str) -> str:
    return name.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def first_unstorable(value: Any) -> tuple[str, str] | None:
    """``(field, message)`` for the first key or string of a parsed body that cannot be stored:
    the top-level field it is in (``_body`` for a bare string) and, as in every other
    validation message, its path inside that field (``{"subject": ["value: ..."]}``)."""
    pending: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while pending:  # no recursion: the body may be nested as deep as the parser allows
        parts, item = pending.pop()
        problem, where = None, parts
        if isinstance(item, str):
            problem = _unstorable(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                where = (*parts, _printable(key))
                problem = _unstorable(key)
                if problem:
                    problem += " (in a field name)"
                    break
                pending.append((where, inner))
        elif isinstance(item, list):
            pending.extend(((*parts, str(i)), inner) for i, inner in enumerate(item))
        if problem:
            inner_path = ".".join(where[1:])
            return (where[0] if where else "_body"), (f"{inner_path}: {problem}" if inner_path else problem)
    return None


class ContractParser(FlaskParser):
    """webargs answers 422 by default; the contract says 400.

    Bodies are parsed strictly: ``NaN`` and ``Infinity`` (which Python's json accepts) are
    refused, and a body nested too deep for the parser (``RecursionError``) or holding an
    integer too long to convert (``ValueError``) is invalid JSON, a 400, rather than a 500.
    A streamed body that reaches the size limit is a 413, as one with a Content-Length is.
    A string (or a name) holding NUL (``\\u0000``) or a lone surrogate (``\\uD800``) is a 400
    naming the field it is in: PostgreSQL cannot store NUL (the driver's refusal would be a
    503) and a lone surrogate cannot be encoded at all (a 500). Every JSON body of every
    endpoint is read here, so no endpoint needs its own check.
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
        found = first_unstorable(parsed) if _SUSPECT_ESCAPE.search(text) else None
        if found is not None:
            field, message = found
            raise ValidationFailed(
                "A text in the body holds a character that cannot be stored.", details={field: [message]}
            )
        return parsed


class LazilyDocumentedApi(Api):
    """flask-smorest's Api, documenting each blueprint when the OpenAPI document is first read
    rather than when the blueprint is registered.

    Writing a blueprint's operations into the document (apispec resolving every schema) was
    half the cost of building an app, paid by every app a test builds and by every worker at
    start, though most never serve ``/openapi.json``. The document is the same: the blueprints
    are documented in the order they were registered, by flask-smorest's own code, the first
    time anything reads ``api.spec``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._undocumented: list[tuple[Any, str, Any]] = []
        super().__init__(*args, **kwargs)

    @property
    def spec(self) -> Any:
        pending, self._undocumented = self._undocumented, []
        for blp, name, parameters in pending:
            blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
            self._spec.tag({"name": name, "description": blp.description})
        return self._spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self._spec = value

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))


def make_api() -> Api:
    from consent_service.schemas.common import ErrorSchema

    api = LazilyDocumentedApi()
    api.ARGUMENTS_PARSER = ContractParser()
    # The error responses flask-smorest documents (400, default, and one per status) have the
    # contract's body, {"error": {"code", "message", "details"}}, not flask-smorest's own.
    api.ERROR_SCHEMA = ErrorSchema
    return api


def make_limiter(key_func: Callable[[], str]) -> Limiter:
    """The limiter, counting by ``key_func`` (views.limits.client_or_address)."""
    return Limiter(key_func=key_func, headers_enabled=True)
