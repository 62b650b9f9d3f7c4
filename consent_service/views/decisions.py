"""Decision lookup: why a past authorize answer was what it was."""

from __future__ import annotations

from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.decisions import DecisionRecordOut
from consent_service.services import decisions as cases
from consent_service.views.common import ApiBlueprint, caller_with, services

blp = ApiBlueprint(
    "decisions",
    __name__,
    url_prefix="/v1/decisions",
    description="Recorded decisions (the requester, as it was told; a steward, the community-safe "
    "view; audit:read, as recorded)",
)


@blp.route("/<decision_id>")
class DecisionById(MethodView):
    @blp.response(200, DecisionRecordOut)
    def get(self, decision_id: str) -> cases.RecordedDecision | cases.StewardDecision:
        """The decision as recorded, with the exact consent version, rule ids and policy versions.

        The organization that asked for it sees what it was told; a steward of a community whose
        member it was about sees the community-safe view (no pseudonym, no consent id, no other
        community's rule); a holder of audit:read sees it as recorded; 404 for everyone else.
        """
        caller = caller_with(Scope.AUTHORIZE, Scope.AUDIT_READ, Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return cases.get(services(), caller=caller, decision_id=decision_id)
