"""The decision endpoint other systems call before they touch a person's data."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.authorize import AuthorizeIn, DecisionOut
from consent_service.services import authorize as cases
from consent_service.services import codes
from consent_service.views.common import ApiBlueprint, now, services, token_caller_with

# The decision checks that the token's client is still active in its own read snapshot.
blp = ApiBlueprint("authorize", __name__, url_prefix="/v1", description="Access decisions (scope authorize)",
                   client_checked_by_use_case=True)


@blp.route("/authorize")
class Authorize(MethodView):
    @blp.arguments(AuthorizeIn)
    @blp.response(200, DecisionOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Permit or deny one use of one person's data; every answer is recorded first.

        A 503 answer must be treated as deny.
        """
        caller = token_caller_with(Scope.AUTHORIZE)
        codes.check(None, services().policy, purposes=[body["purpose"]], purposes_field="purpose",
                    data_categories=body["data_categories"])
        subject = cases.Subject(**body["subject"])
        decision = cases.authorize(services(), caller=caller, subject=subject, purpose=body["purpose"],
                                   data_categories=body["data_categories"], now=now(), check_client=True)
        return decision.as_dict()
