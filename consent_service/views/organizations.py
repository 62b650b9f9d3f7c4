"""Administration (scope ``admin``): organizations, clients, communities."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.organizations import (
    ClientIn,
    ClientOut,
    CommunityIn,
    CommunityOut,
    OrganizationIn,
    OrganizationOut,
    SubjectSystemIn,
    SubjectSystemOut,
    SubjectSystemsOut,
)
from consent_service.services import communities as community_cases
from consent_service.services import organizations as cases
from consent_service.services import subjects as subject_cases
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
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        caller = caller_with(Scope.ADMIN)
        return community_cases.create_community(services(), caller=caller, now=now(), **body)


@blp.route("/subject-systems")
class SubjectSystems(MethodView):
    @blp.arguments(SubjectSystemIn)
    @blp.response(201, SubjectSystemOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register an identifier system to one organization, or as shared (admin); 409 if it exists.

        An organization records consents only under the systems registered to it or shared.
        """
        caller = caller_with(Scope.ADMIN)
        return subject_cases.register(services(), caller=caller, now=now(), **body)

    @blp.response(200, SubjectSystemsOut)
    def get(self) -> dict[str, Any]:
        """Every registered subject system (any client: each needs to know which it may use)."""
        caller_with()
        return {"subject_systems": subject_cases.list_systems(services())}
