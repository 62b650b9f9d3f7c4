"""The decision endpoints other systems call before they touch a person's data (scope authorize).

``POST /v1/authorize`` for one subject, ``POST /v1/authorize/batch`` for a cohort: one use case
(``services.authorize``). The blueprint checks the bearer token only; the use case checks that
its client is still active inside the decision's own read snapshot, which saves a transaction
on the hot path and is exactly as fresh (so a disabled client's call with a bad body is a 400,
and its well-formed call a 401).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from flask import current_app, g, request
from flask.views import MethodView
from werkzeug.sansio.response import Response as BaseResponse

from consent_service.core.permissions import Scope
from consent_service.schemas.authorize import (
    AuthorizeIn,
    BatchAuthorizeIn,
    BatchDecisionsOut,
    DecisionOut,
    batch_answer,
)
from consent_service.services import authorize as cases
from consent_service.services import codes
from consent_service.services.authorize import DecisionResult
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint("authorize", __name__, url_prefix="/v1", description="Access decisions (scope authorize)")


@blp.route("/authorize")
class Authorize(MethodView):
    @blp.arguments(AuthorizeIn)
    @blp.response(200, DecisionOut)
    def post(self, body: dict[str, Any]) -> DecisionResult:
        """Permit or deny one use of one person's data; every answer is recorded first.

        A 503 answer must be treated as deny.
        """
        caller = caller_with(Scope.AUTHORIZE)
        codes.check(
            None,
            services().policy,
            purposes=[body["purpose"]],
            purposes_field="purpose",
            data_categories=body["data_categories"],
        )
        result = cases.authorize(
            services(),
            caller=caller,
            subject=cases.Subject(**body["subject"]),
            purpose=body["purpose"],
            data_categories=body["data_categories"],
            now=now(),
        )
        g.decision_id = result.id  # on the answer's log line (views/observability.py)
        return result


def _cohort_sized_body(view: Callable[..., Any]) -> Callable[..., Any]:
    """10,000 subjects do not fit the service-wide body limit; the batch route alone gets a larger one
    (set before its body is read, which its ``@blp.arguments`` does inside this wrapper)."""

    def with_larger_limit(*args: Any, **kwargs: Any) -> Any:
        request.max_content_length = services().settings["BATCH_MAX_CONTENT_LENGTH"]
        return view(*args, **kwargs)

    return with_larger_limit


def _cyclic_gc_paused(view: Callable[..., Any]) -> Callable[..., Any]:
    """Python's cyclic garbage collector paused for one batch request, then resumed.

    A 10,000-subject batch builds some hundreds of thousands of lists, dicts and tuples that all
    live until the answer is sent; allocating them set off full collections that walked the
    worker's whole heap (the compiled rules of every community included) several times per
    request: about a third of the request's CPU (docs/performance.md). Those objects hold no
    reference cycles and are freed by reference counting as usual; anything cyclic made
    meanwhile is collected once the collector runs again. Nothing else changes.
    """

    def paused(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():  # paused already (a nested call, or the operator's choice)
            return view(*args, **kwargs)
        gc.disable()
        try:
            return view(*args, **kwargs)
        finally:
            gc.enable()

    return paused


@blp.route("/authorize/batch")
class BatchAuthorize(MethodView):
    decorators = [_cohort_sized_body, _cyclic_gc_paused]

    @blp.arguments(BatchAuthorizeIn)
    @blp.response(200, BatchDecisionsOut)
    def post(self, body: dict[str, Any]) -> BaseResponse:
        """Permit or deny one use for each subject of a cohort; every answer is recorded first.

        Each subject is decided exactly as ``POST /v1/authorize`` would decide it, except that
        when a matching rule asks for ``aggregate_only`` with ``min_cell_size`` and fewer
        distinct subjects would be permitted, every subject is denied (``below_min_cell_size``).
        A 503 answer must be treated as deny for every subject.
        """
        caller = caller_with(Scope.AUTHORIZE)
        codes.check(
            None, services().policy, purposes=[body["purpose"]], data_categories=body["data_categories"]
        )
        subjects = [cases.Subject(system=s["system"], value=s["value"]) for s in body["subjects"]]
        result = cases.authorize_batch(
            services(),
            caller=caller,
            subjects=subjects,
            purpose=body["purpose"],
            data_categories=body["data_categories"],
            now=now(),
        )
        g.batch_id = result.id
        # What BatchDecisionsOut dumps, built without its nested schemas: dumping 10,000 decisions
        # through them took ~10% of the request once the rest was made fast (docs/performance.md).
        return current_app.json.response(batch_answer(result))
