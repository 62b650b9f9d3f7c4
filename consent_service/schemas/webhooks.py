"""Change-event webhooks: registration in, webhooks and the backlog of unacknowledged events out."""

from __future__ import annotations

from marshmallow import fields, validate

from consent_service.core.events import MAX_URL_LENGTH, EventKind
from consent_service.schemas.common import StrictSchema

KINDS = [str(k) for k in EventKind]
MAX_BACKLOG = 1000


class WebhookIn(StrictSchema):
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={"description": "https (http only to a loopback host where the deployment allows it)"},
    )
    kinds = fields.List(
        fields.String(validate=validate.OneOf(KINDS)),
        required=True,
        validate=validate.Length(min=1, max=len(KINDS)),
        metadata={"description": f"event kinds: {', '.join(KINDS)}"},
    )


class WebhookOut(StrictSchema):
    id = fields.String()
    url = fields.String()
    kinds = fields.List(fields.String())
    created_at = fields.AwareDateTime()


class WebhookListOut(StrictSchema):
    webhooks = fields.List(fields.Nested(WebhookOut))


class BacklogQuery(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_BACKLOG))


class PendingEventOut(StrictSchema):
    id = fields.String()
    kind = fields.String()
    organization = fields.String()
    webhook_id = fields.String()
    occurred_at = fields.AwareDateTime()
    attempts = fields.Integer()
    next_attempt_at = fields.AwareDateTime()
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)


class BacklogOut(StrictSchema):
    total = fields.Integer(metadata={"description": "unacknowledged events in all"})
    events = fields.List(fields.Nested(PendingEventOut), metadata={"description": "the oldest first"})


# What the audit entry of a registration or deletion records: the URL without its query (a
# receiver may put a shared secret there), and the kinds.
class WebhookAudit(StrictSchema):
    id = fields.String()
    url = fields.Method("_bare_url")
    kinds = fields.List(fields.String())

    def _bare_url(self, obj: object) -> str:
        url = str(getattr(obj, "url", ""))
        return url.split("?", 1)[0].split("#", 1)[0]


webhook_audit = WebhookAudit()
