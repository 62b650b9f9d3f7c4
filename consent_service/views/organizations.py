"""The organizations resource (scope ``admin``): organizations, clients, and creating communities."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.communities import CommunityIn, CommunityOut
from consent_service.schemas.organizations import ClientIn, ClientOut, OrganizationIn, OrganizationOut
from consent_service.services import communities as community_cases
from consent_service.services import organizations as cases
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint("admin", __name__, url_prefix="/v1", description="Administration (scope admin)")


@blp.route("/organizations")
class Organizations(MethodView):
    @blp.arguments(OrganizationIn)
    @blp.response(201, OrganizationOut)
    def post(self, body: dict[str, Any]) -> cases.OrganizationRecord:
        caller = caller_with(Scope.ADMIN)
        return cases.create_organization(services(), caller=caller, now=now(), **body)


@blp.route("/clients")
class Clients(MethodView):
    @blp.arguments(ClientIn)
    @blp.response(201, ClientOut)
    def post(self, body: dict[str, Any]) -> cases.NewClient:
        """Admin; or a steward's rules:write client, for its own organization (see docs/api.md)."""
        caller = caller_with(Scope.ADMIN, Scope.RULES_WRITE)
        return cases.create_client(services(), caller=caller, now=now(), **body)


@blp.route("/clients/<client_id>/disable")
class DisableClient(MethodView):
    @blp.response(200, ClientOut)
    def post(self, client_id: str) -> cases.ClientRecord:
        caller = caller_with(Scope.ADMIN)
        return cases.disable_client(services(), caller=caller, client_id=client_id, now=now())


@blp.route("/communities")
class Communities(MethodView):
    @blp.arguments(CommunityIn)
    @blp.response(201, CommunityOut)
    def post(self, body: dict[str, Any]) -> community_cases.CommunityRecord:
        caller = caller_with(Scope.ADMIN)
        return community_cases.create_community(services(), caller=caller, now=now(), **body)
