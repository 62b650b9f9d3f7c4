"""Memberships: a community's stewards confirm pending memberships (pseudonymous ids only); the
organization that recorded a person's consent confirms or ends a membership for the person."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.memberships import (
    CommunityMembershipsOut,
    ConsentMembershipsOut,
    MembershipOut,
    MembershipsConfirmedOut,
    MembershipsConfirmIn,
)
from consent_service.services import memberships as cases
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint(
    "memberships",
    __name__,
    url_prefix="/v1",
    description="Memberships: pending until confirmed by the community or the person; the person can end one",
)


@blp.route("/communities/<community_id>/memberships")
class CommunityMemberships(MethodView):
    @blp.response(200, CommunityMembershipsOut)
    def get(self, community_id: str) -> cases.CommunityMemberships:
        """Counts by status, the pending memberships (pseudonymous ids), endings as numbers only."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return cases.community_memberships(services(), caller=caller, community_id=community_id, now=now())


@blp.route("/communities/<community_id>/memberships/confirm")
class ConfirmMemberships(MethodView):
    @blp.arguments(MembershipsConfirmIn)
    @blp.response(200, MembershipsConfirmedOut)
    def post(self, body: dict[str, Any], community_id: str) -> cases.ConfirmedMemberships:
        """Confirm pending memberships in bulk, all or none (audited)."""
        caller = caller_with(Scope.RULES_WRITE)
        return cases.confirm_memberships(
            services(), caller=caller, community_id=community_id, now=now(), **body
        )


@blp.route("/consents/<consent_id>/memberships")
class ConsentMemberships(MethodView):
    @blp.response(200, ConsentMembershipsOut)
    def get(self, consent_id: str) -> cases.ConsentMemberships:
        """The person's memberships of the communities this consent named, with their status."""
        caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE)
        return cases.consent_memberships(services(), caller=caller, consent_id=consent_id)


@blp.route("/consents/<consent_id>/memberships/<community_id>/confirm")
class ConfirmMembership(MethodView):
    @blp.response(200, MembershipOut)
    def post(self, consent_id: str, community_id: str) -> cases.MembershipRecord:
        """The person confirms their membership (or rejoins after ending it), audited."""
        caller = caller_with(Scope.CONSENTS_WRITE)
        return cases.confirm_by_person(
            services(), caller=caller, consent_id=consent_id, community_id=community_id, now=now()
        )


@blp.route("/consents/<consent_id>/memberships/<community_id>/end")
class EndMembership(MethodView):
    @blp.response(200, MembershipOut)
    def post(self, consent_id: str, community_id: str) -> cases.MembershipRecord:
        """The person ends their membership: the community's rules stop applying from now on (audited)."""
        caller = caller_with(Scope.CONSENTS_WRITE)
        return cases.end_by_person(
            services(), caller=caller, consent_id=consent_id, community_id=community_id, now=now()
        )
