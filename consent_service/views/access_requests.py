"""Data access requests: a requester (``authorize``) files, reads and withdraws its own; a
community's steward (``rules:write``) decides. The community's queue is in views/communities.py.

Another organization's request answers 404 exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from consent_service.core.permissions import Scope
from consent_service.schemas.access_requests import (
    AccessRequestDecidedOut,
    AccessRequestDecisionIn,
    AccessRequestIn,
    AccessRequestListOut,
    AccessRequestOut,
    AccessRequestsQuery,
)
from consent_service.services import access_requests as cases
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint(
    "access_requests",
    __name__,
    url_prefix="/v1/access-requests",
    description="Data access requests: a requester asks a community; its stewards decide by a deadline",
)


@blp.route("")
class AccessRequests(MethodView):
    @blp.arguments(AccessRequestIn)
    @blp.response(201, AccessRequestOut)
    def post(self, body: dict[str, Any]) -> cases.AccessRequestRecord:
        """File a request with a community, naming the rule a denial told the requester (audited)."""
        caller = caller_with(Scope.AUTHORIZE)
        return cases.file_request(services(), caller=caller, now=now(), **body)

    @blp.arguments(AccessRequestsQuery, location="query", unknown=RAISE)
    @blp.response(200, AccessRequestListOut)
    def get(self, query: dict[str, Any]) -> cases.AccessRequestList:
        """The caller's organization's requests, oldest first (``status`` as of now filters)."""
        caller = caller_with(Scope.AUTHORIZE)
        return cases.list_own(services(), caller=caller, now=now(), **query)


@blp.route("/<request_id>")
class AccessRequestById(MethodView):
    @blp.response(200, AccessRequestOut)
    def get(self, request_id: str) -> cases.AccessRequestRecord:
        """One request with its status as of now: to its requester, or to its community's stewards."""
        caller = caller_with(Scope.AUTHORIZE, Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return cases.get_own(services(), caller=caller, request_id=request_id, now=now())


@blp.route("/<request_id>/withdraw")
class WithdrawAccessRequest(MethodView):
    @blp.response(200, AccessRequestOut)
    def post(self, request_id: str) -> cases.AccessRequestRecord:
        """The requester withdraws its pending request (audited); a closed one is a 409."""
        caller = caller_with(Scope.AUTHORIZE)
        return cases.withdraw(services(), caller=caller, request_id=request_id, now=now())


@blp.route("/<request_id>/decision")
class DecideAccessRequest(MethodView):
    @blp.arguments(AccessRequestDecisionIn)
    @blp.response(200, AccessRequestDecidedOut)
    def post(self, body: dict[str, Any], request_id: str) -> cases.Decided:
        """A steward of the request's community grants it (creating the approval) or refuses it."""
        caller = caller_with(Scope.RULES_WRITE)
        return cases.decide(services(), caller=caller, request_id=request_id, now=now(), **body)
