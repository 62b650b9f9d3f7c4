"""What every view needs: the services, the authenticated caller, and the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from flask import current_app, g, request
from flask_smorest import Blueprint

from consent_service.auth.bearer import verified_caller
from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.permissions import Scope
from consent_service.errors import Forbidden, Unauthorized, ValidationFailed
from consent_service.extensions import ContractParser
from consent_service.services.idempotency import IdempotencyKey
from consent_service.storage import organizations as organization_store
from consent_service.storage.db import read_snapshot

EXTENSION = "consent_service"


def services() -> Services:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def now() -> datetime:
    return datetime.now(UTC)


def _client_is_active(client_id: str, organization: str) -> bool:
    with read_snapshot(services().sessions) as session:
        return organization_store.client_is_active(session, client_id, organization)


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
            cached = verified_caller(token.strip(), keys=services().keys, issuer=settings["TOKEN_ISSUER"],
                                     audience=settings["TOKEN_AUDIENCE"])
        except Unauthorized as exc:
            cached = exc
        g._token_caller = cached
    if isinstance(cached, Unauthorized):
        raise cached
    return cached  # type: ignore[no-any-return]


def authenticated() -> Caller:
    """The caller of this request, from its bearer token, its client still active (cached on ``g``)."""
    cached = g.get("_authenticated")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    caller = token_caller()
    if not _client_is_active(caller.client_id, caller.organization):
        raise Unauthorized("The access token's client is disabled, unknown or of another organization.")
    g._authenticated = caller
    return caller


def caller_with(*scopes: Scope) -> Caller:
    """The caller, if its token carries at least one of ``scopes`` (none given: any valid token).

    The caller is the one its ``ApiBlueprint`` authenticated before the body was read: the token
    and the client (``authenticated``), or, on a blueprint whose use cases re-check the client
    in their own snapshot (``services.reading``), the token only (``token_caller``).
    """
    caller = g.get("caller")
    return _with_scopes(caller if caller is not None else authenticated(), scopes)


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
        raise ValidationFailed("The Idempotency-Key header is not usable.", details={
            IDEMPOTENCY_HEADER: [f"1 to {MAX_IDEMPOTENCY_KEY} printable characters"]})
    return IdempotencyKey.for_request(key, operation=operation, body=body, secret=services().idempotency_key)


class ApiBlueprint(Blueprint):
    """A ``/v1`` blueprint: bodies parsed by the contract's parser, the caller authenticated first.

    flask-smorest binds the parser when ``@blp.arguments`` decorates a view, at import time, so
    it must be a class attribute here (setting it on the blueprint in the app factory is too
    late, and webargs would answer 422). Authenticating before the body is read makes a call
    without a valid token a 401 whatever its body, as the contract says of every ``/v1`` call.
    ``authenticate`` says what is checked first: the token and that its client is still active
    (``authenticated``, the default), or the token only (``token_caller``) for a blueprint whose
    use cases re-check the client inside their own snapshot (``services.reading``), so a
    disabled client's call with a bad body is a 400, and its well-formed call a 401.
    """

    ARGUMENTS_PARSER = ContractParser()

    def __init__(self, *args: Any, authenticate: Callable[[], Caller] = authenticated, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.authenticate = authenticate
        self.before_request(self._authenticate_first)

    def _authenticate_first(self) -> None:
        g.caller = self.authenticate()

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

