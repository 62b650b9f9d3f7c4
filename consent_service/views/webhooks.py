"""Change-event webhooks of the caller's organization (webhooks:write), and the events it has
not acknowledged yet."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from consent_service.core.permissions import Scope
from consent_service.schemas.webhooks import BacklogOut, BacklogQuery, WebhookIn, WebhookListOut, WebhookOut
from consent_service.services import webhooks
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/webhooks",
    description="Change events: where they are POSTed, and those not yet acknowledged",
)


@blp.route("")
class Webhooks(MethodView):
    @blp.arguments(WebhookIn)
    @blp.response(201, WebhookOut)
    def post(self, body: dict[str, Any]) -> webhooks.WebhookRecord:
        """Register a webhook: the URL change events are POSTed to (as signed JWS), and their kinds."""
        caller = caller_with(Scope.WEBHOOKS_WRITE)
        return webhooks.register(services(), caller=caller, url=body["url"], kinds=body["kinds"], now=now())

    @blp.response(200, WebhookListOut)
    def get(self) -> webhooks.WebhookList:
        """The organization's webhooks."""
        caller = caller_with(Scope.WEBHOOKS_WRITE)
        return webhooks.list_webhooks(services(), caller=caller)


@blp.route("/backlog")
class Backlog(MethodView):
    @blp.arguments(BacklogQuery, location="query", unknown=RAISE)
    @blp.response(200, BacklogOut)
    def get(self, query: dict[str, Any]) -> webhooks.Backlog:
        """Events for the organization not yet acknowledged (2xx) by its webhooks, oldest first."""
        caller = caller_with(Scope.WEBHOOKS_WRITE)
        return webhooks.backlog(services(), caller=caller, limit=query["limit"])


@blp.route("/<webhook_id>")
class WebhookById(MethodView):
    @blp.response(204)
    def delete(self, webhook_id: str) -> None:
        """Delete a webhook: nothing more is sent to it, pending events included."""
        caller = caller_with(Scope.WEBHOOKS_WRITE)
        webhooks.delete(services(), caller=caller, webhook_id=webhook_id, now=now())
