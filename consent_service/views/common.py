"""What every view needs: the services, the authenticated caller, and the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from flask import g, request
from flask_smorest import Blueprint

from consent_service.auth.bearer import verified_caller
from consent_service.container import EXTENSION, Services, current
from consent_service.core.caller import Caller
from consent_service.core.permissions import Scope
from consent_service.errors import Forbidden, Unauthorized, ValidationFailed
from consent_service.extensions import ContractParser
from consent_service.services.idempotency import IdempotencyKey

services: Callable[[], Services] = current  # the container of the app serving this request


__all__ = ["EXTENSION", "ApiBlueprint", "caller_with", "idempotency_key", "now", "services", "token_caller"]


def now() -> datetime:
    return datetime.now(UTC)


def token_caller() -> Caller:
    """The caller the bearer token names, signature and claims checked, no database read.

    Cached on ``g``, failure included: the rate limiter asks first (to count the request per
    client), the blueprint's authentication asks again and raises the same ``Unauthorized``.
    """
    cached = g.get("_token_caller")
    if cached is None:
        try:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("A bearer access token is required.")
            settings = services().settings
            cached = verified_caller(
                token.strip(),
                keys=services().keys,
                issuer=settings["TOKEN_ISSUER"],
                audience=settings["TOKEN_AUDIENCE"],
            )
        except Unauthorized as exc:
            cached = exc
        g._token_caller = cached
    if isinstance(cached, Unauthorized):
        raise cached
    return cached


def caller_with(*scopes: Scope) -> Caller:
    """The caller, if its token carries at least one of ``scopes`` (none given: any valid token).

    Only the token is judged here (signature, claims, scopes; no database read): whether its
    client is still active is checked by the use case, inside the very snapshot or unit of work
    that serves the call (``Services.reading`` / ``writing``), so a client disabled a moment ago
    is refused by the transaction that would have served it, and no call pays a second one.
    """
    return _with_scopes(token_caller(), scopes)


def _with_scopes(caller: Caller, scopes: tuple[Scope, ...]) -> Caller:
    if scopes and not any(caller.has(scope) for scope in scopes):
        raise Forbidden(f"This needs the scope {' or '.join(str(s) for s in scopes)}.")
    return caller


IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200


def idempotency_key(operation: str, body: object) -> IdempotencyKey | None:
    """The request's ``Idempotency-Key``, bound to this operation and body, if it sent one."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ValidationFailed(
            "The Idempotency-Key header is not usable.",
            details={IDEMPOTENCY_HEADER: [f"1 to {MAX_IDEMPOTENCY_KEY} printable characters"]},
        )
    return IdempotencyKey.for_request(key, operation=operation, body=body, secret=services().idempotency_key)


class ApiBlueprint(Blueprint):
    """A ``/v1`` blueprint: bodies parsed by the contract's parser, the token checked first.

    flask-smorest binds the parser when ``@blp.arguments`` decorates a view, at import time, so
    it must be a class attribute here (setting it on the blueprint in the app factory is too
    late, and webargs would answer 422). Authenticating before the body is read makes a call
    without a valid token a 401 whatever its body, as the contract says of every ``/v1`` call.
    Only the token is checked first; the use case checks that its client is still active (so a
    disabled client's call with a bad body is a 400, and its well-formed call a 401).
    """

    ARGUMENTS_PARSER = ContractParser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_request(_token_first)

    @staticmethod
    def _prepare_response_doc(doc: Any, doc_info: Any, *, api: Any, spec: Any, **kwargs: Any) -> Any:
        """Document the errors every /v1 operation may answer, each with the contract's body."""
        responses = doc_info.setdefault("response", {}).setdefault("responses", {})
        with_body = kwargs.get("method") in {"post", "put", "patch"}
        statuses = [*COMMON_ERRORS, *(BODY_ERRORS if with_body else ())]
        for status in statuses:
            if status not in responses and str(status) not in responses:
                responses[status] = [HTTPStatus(status).name]  # flask-smorest's component, in ERROR_SCHEMA
        return Blueprint._prepare_response_doc(doc, doc_info, api=api, spec=spec, **kwargs)


# What any /v1 operation may answer besides its own outcomes (contract, "Errors"): no or a bad
# token, a missing scope or organization, no such object, too many requests, the store away.
COMMON_ERRORS = (401, 403, 404, 429, 503)
BODY_ERRORS = (413,)


def _token_first() -> None:
    """Before the body is read (a ``before_request`` hook must return None to let the call go on)."""
    token_caller()
