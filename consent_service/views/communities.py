"""Community governance (the caller's organization must be a steward): rules:write changes,
community:read (or rules:write) reads.

The scope is checked here; whether the caller's organization may manage this community is
the domain's question (Casbin, policies/management.conf), answered 403 for a non-steward and
404 for a community that does not exist. Unknown query parameters are refused rather than
ignored, so a misspelt ``since`` cannot quietly widen what a community is shown.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from consent_service.core.permissions import Scope
from consent_service.schemas.access_requests import AccessRequestListOut, AccessRequestsQuery
from consent_service.schemas.communities import (
    ApprovalIn,
    ApprovalListOut,
    ApprovalOut,
    ApprovalsQuery,
    ChangeReasonIn,
    CommunityDecisionsOut,
    CommunityOut,
    CommunitySettingsIn,
    DecisionsQuery,
    ProtectedGrantsOut,
    RuleIn,
    RuleListOut,
    RuleOut,
    RulesQuery,
)
from consent_service.schemas.organizations import ClientListOut, ClientOut
from consent_service.schemas.steward_changes import CommunityClientIn
from consent_service.schemas.webhooks import BacklogOut, BacklogQuery
from consent_service.services import access_requests, approvals, communities, rules, webhooks
from consent_service.services import organizations as organization_cases
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint(
    "communities",
    __name__,
    url_prefix="/v1/communities",
    description="Community governance: collective rules, approvals, decisions (OCAP)",
)


@blp.route("/<community_id>")
class CommunityById(MethodView):
    @blp.response(200, CommunityOut)
    def get(self, community_id: str) -> communities.CommunityRecord:
        """The community and its settings (its stewards only)."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return communities.get_community(services(), caller=caller, community_id=community_id)

    @blp.arguments(CommunitySettingsIn)
    @blp.response(200, CommunityOut)
    def patch(self, body: dict[str, Any], community_id: str) -> communities.CommunityRecord:
        """Change the community's settings: whether answers name it (audited)."""
        caller = caller_with(Scope.RULES_WRITE)
        return communities.change_settings(
            services(), caller=caller, community_id=community_id, now=now(), **body
        )


@blp.route("/<community_id>/clients")
class CommunityClients(MethodView):
    @blp.response(200, ClientListOut)
    def get(self, community_id: str) -> organization_cases.CommunityClients:
        """Every client of the community's steward organizations: each can act for it."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return organization_cases.community_clients(services(), caller=caller, community_id=community_id)

    @blp.arguments(CommunityClientIn)
    @blp.response(201, ClientOut)
    def post(self, body: dict[str, Any], community_id: str) -> organization_cases.NewClient:
        """A steward creates a client of its own organization that acts for the community
        (rules:write, community:read); the secret is in this answer only (audited)."""
        caller = caller_with(Scope.RULES_WRITE)
        return organization_cases.create_community_client(
            services(), caller=caller, community_id=community_id, now=now(), **body
        )


@blp.route("/<community_id>/clients/<client_id>/disable")
class DisableCommunityClient(MethodView):
    @blp.response(200, ClientOut)
    def post(self, community_id: str, client_id: str) -> organization_cases.ClientRecord:
        """Disable a client of one of the community's steward organizations (audited)."""
        caller = caller_with(Scope.RULES_WRITE)
        return organization_cases.disable_client(
            services(), caller=caller, client_id=client_id, now=now(), community_id=community_id
        )


@blp.route("/<community_id>/rules")
class Rules(MethodView):
    @blp.arguments(RuleIn)
    @blp.response(201, RuleOut)
    def post(self, body: dict[str, Any], community_id: str) -> rules.RuleRecord:
        """Add a rule; it binds every member of the community from the next decision on.

        409 ``duplicate_rule`` (``details.rule_id``) when an active rule of the community has the
        same effect, requesters, purposes and categories; 400 ``validation_error`` for
        obligations on a deny rule.
        """
        caller = caller_with(Scope.RULES_WRITE)
        return rules.create_rule(services(), caller=caller, community_id=community_id, now=now(), **body)

    @blp.arguments(RulesQuery, location="query", unknown=RAISE)
    @blp.response(200, RuleListOut)
    def get(self, query: dict[str, Any], community_id: str) -> rules.RuleList:
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return rules.list_rules(services(), caller=caller, community_id=community_id, **query)


@blp.route("/<community_id>/rules/<rule_id>")
class RuleById(MethodView):
    @blp.arguments(ChangeReasonIn, location="query", unknown=RAISE, as_kwargs=False)
    @blp.arguments(ChangeReasonIn, location="json", as_kwargs=False)
    @blp.response(200, RuleOut)
    def delete(
        self, query: dict[str, Any], body: dict[str, Any], community_id: str, rule_id: str
    ) -> rules.RuleRecord:
        """Retire the rule: it stops applying at once and stays in the history (who, when, why).

        The reason may come as a JSON body ``{"reason": ...}`` or as ``?reason=``.
        """
        caller = caller_with(Scope.RULES_WRITE)
        return rules.retire_rule(
            services(),
            caller=caller,
            community_id=community_id,
            rule_id=rule_id,
            reason=body.get("reason") or query.get("reason"),
            now=now(),
        )


@blp.route("/<community_id>/approvals")
class Approvals(MethodView):
    @blp.arguments(ApprovalIn)
    @blp.response(201, ApprovalOut)
    def post(self, body: dict[str, Any], community_id: str) -> approvals.ApprovalRecord:
        """Grant the community's approval that its require_approval rules ask for."""
        caller = caller_with(Scope.RULES_WRITE)
        return approvals.create_approval(
            services(), caller=caller, community_id=community_id, now=now(), **body
        )

    @blp.arguments(ApprovalsQuery, location="query", unknown=RAISE)
    @blp.response(200, ApprovalListOut)
    def get(self, query: dict[str, Any], community_id: str) -> approvals.ApprovalList:
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return approvals.list_approvals(
            services(), caller=caller, community_id=community_id, now=now(), **query
        )


@blp.route("/<community_id>/approvals/<approval_id>/revoke")
class RevokeApproval(MethodView):
    @blp.arguments(ChangeReasonIn)
    @blp.response(200, ApprovalOut)
    def post(self, body: dict[str, Any], community_id: str, approval_id: str) -> approvals.ApprovalRecord:
        caller = caller_with(Scope.RULES_WRITE)
        return approvals.revoke_approval(
            services(),
            caller=caller,
            community_id=community_id,
            approval_id=approval_id,
            reason=body.get("reason"),
            now=now(),
        )


@blp.route("/<community_id>/decisions")
class Decisions(MethodView):
    @blp.arguments(DecisionsQuery, location="query", unknown=RAISE)
    @blp.response(200, CommunityDecisionsOut)
    def get(self, query: dict[str, Any], community_id: str) -> communities.CommunityDecisions:
        """Every decision that touched a member: what was asked, by whom, and the answer; no identities."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return communities.community_decisions(services(), caller=caller, community_id=community_id, **query)


@blp.route("/<community_id>/events/backlog")
class EventBacklog(MethodView):
    @blp.arguments(BacklogQuery, location="query", unknown=RAISE)
    @blp.response(200, BacklogOut)
    def get(self, query: dict[str, Any], community_id: str) -> webhooks.Backlog:
        """Change events of the community's rules and approvals not yet acknowledged by their receivers."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return webhooks.community_backlog(
            services(), caller=caller, community_id=community_id, limit=query["limit"]
        )


@blp.route("/<community_id>/protected-grants")
class ProtectedGrants(MethodView):
    @blp.response(200, ProtectedGrantsOut)
    def get(self, community_id: str) -> communities.ProtectedGrants:
        """Consents granting a protected purpose the deployment allows, to members; no identities."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return communities.protected_grants(services(), caller=caller, community_id=community_id)


@blp.route("/<community_id>/access-requests")
class AccessRequestQueue(MethodView):
    @blp.arguments(AccessRequestsQuery, location="query", unknown=RAISE)
    @blp.response(200, AccessRequestListOut)
    def get(self, query: dict[str, Any], community_id: str) -> access_requests.AccessRequestList:
        """The community's data access requests, nearest deadline first (``status`` filters)."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return access_requests.community_queue(
            services(), caller=caller, community_id=community_id, now=now(), **query
        )
