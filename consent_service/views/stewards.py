"""A community's steward changes: its stewards propose adding or removing a steward
organization, and a different client or person of a steward organization confirms it.

The operator's ``admin`` scope is not a steward scope: every route here is 403 for it."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from consent_service.core.permissions import Scope
from consent_service.schemas.steward_changes import (
    StewardChangeIn,
    StewardChangeListOut,
    StewardChangeOut,
    StewardChangesQuery,
)
from consent_service.services import steward_changes as cases
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint(
    "stewards",
    __name__,
    url_prefix="/v1/communities",
    description="A community's stewards change its stewards themselves (two people decide)",
)


@blp.route("/<community_id>/steward-changes")
class StewardChanges(MethodView):
    @blp.arguments(StewardChangeIn)
    @blp.response(201, StewardChangeOut)
    def post(self, body: dict[str, Any], community_id: str) -> cases.StewardChangeRecord:
        """Propose adding or removing a steward organization (applied once another steward confirms)."""
        caller = caller_with(Scope.RULES_WRITE)
        return cases.propose_change(services(), caller=caller, community_id=community_id, now=now(), **body)

    @blp.arguments(StewardChangesQuery, location="query", unknown=RAISE)
    @blp.response(200, StewardChangeListOut)
    def get(self, query: dict[str, Any], community_id: str) -> cases.StewardChangeList:
        """The community's stewards and its steward changes (``?status=pending`` for those waiting)."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return cases.list_changes(services(), caller=caller, community_id=community_id, now=now(), **query)


@blp.route("/<community_id>/steward-changes/<change_id>/confirm")
class ConfirmStewardChange(MethodView):
    @blp.response(200, StewardChangeOut)
    def post(self, community_id: str, change_id: str) -> cases.StewardChangeRecord:
        """Confirm another steward's proposal: applied at once (audited)."""
        caller = caller_with(Scope.RULES_WRITE)
        return cases.confirm_change(
            services(), caller=caller, community_id=community_id, change_id=change_id, now=now()
        )
