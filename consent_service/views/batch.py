"""Cohort decisions: many subjects, one purpose, one set of categories (scope authorize)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.batch import BatchAuthorizeIn, BatchDecisionsOut
from consent_service.services import batch_authorize as cases
from consent_service.services import codes
from consent_service.services.authorize import Subject
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint("batch", __name__, url_prefix="/v1",
                   description="Cohort access decisions (scope authorize)")


@blp.before_request
def _allow_a_cohort_sized_body() -> None:
    """10,000 subjects do not fit the service-wide body limit; this route alone gets a larger one."""
    request.max_content_length = services().settings["BATCH_MAX_CONTENT_LENGTH"]


@blp.route("/authorize/batch")
class BatchAuthorize(MethodView):
    @blp.arguments(BatchAuthorizeIn)
    @blp.response(200, BatchDecisionsOut)
    def post(self, body: dict[str, Any]) -> Response:
        """Permit or deny one use for each subject of a cohort; every answer is recorded first.

        Each subject is decided exactly as ``POST /v1/authorize`` would decide it, except that
        when a matching rule asks for ``aggregate_only`` with ``min_cell_size`` and fewer
        distinct subjects would be permitted, every subject is denied (``below_min_cell_size``).
        A 503 answer must be treated as deny for every subject.
        """
        caller = caller_with(Scope.AUTHORIZE)
        codes.check(None, services().policy, purposes=[body["purpose"]],
                    data_categories=body["data_categories"])
        subjects = [Subject(system=s["system"], value=s["value"]) for s in body["subjects"]]
        result = cases.authorize_batch(services(), caller=caller, subjects=subjects, purpose=body["purpose"],
                                       data_categories=body["data_categories"], now=now())
        # Already in BatchDecisionsOut's shape; dumping 10,000 nested items through marshmallow
        # would cost more than deciding them, so the schema documents the answer only.
        return jsonify(result.as_dict())
