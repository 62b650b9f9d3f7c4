"""Schemas of a community's steward changes and of the clients its stewards create.

The output schemas dump the frozen dataclasses of ``services.steward_changes``; the audit
payloads of proposals and confirmations dump through :data:`STEWARD_CHANGE_PAYLOAD`.
"""

from __future__ import annotations

from marshmallow import fields, validate

from consent_service.core.permissions import Scope
from consent_service.core.wire import StewardChangeAction
from consent_service.schemas.common import StrictSchema, code, text

# The scopes that act for a community: a community's stewards create its clients with these.
COMMUNITY_SCOPES = (str(Scope.RULES_WRITE), str(Scope.COMMUNITY_READ))
STATUSES = ("pending", "confirmed", "expired")


class StewardChangeIn(StrictSchema):
    action = fields.String(required=True, validate=validate.OneOf([str(a) for a in StewardChangeAction]))
    organization = code(required=True, metadata={"description": "the organization to add or remove"})
    reason = text(1000, load_default=None, allow_none=True)


class StewardChangesQuery(StrictSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))


class StewardChangeOut(StrictSchema):
    id = fields.String()
    community = fields.String()
    action = fields.String()
    organization = fields.String()
    reason = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "pending, confirmed or expired"})
    proposed_at = fields.AwareDateTime()
    proposed_by = fields.String()
    proposed_by_client = fields.String()
    expires_at = fields.AwareDateTime()
    confirmed_at = fields.AwareDateTime(allow_none=True)
    confirmed_by = fields.String(allow_none=True)
    confirmed_by_client = fields.String(allow_none=True)
    stewards = fields.List(fields.String(), metadata={"description": "the community's stewards now"})


class StewardChangeListOut(StrictSchema):
    community = fields.String()
    stewards = fields.List(fields.String())
    changes = fields.List(fields.Nested(StewardChangeOut))


class CommunityClientIn(StrictSchema):
    """A client of the caller's own organization that acts for the community."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(COMMUNITY_SCOPES)),
        required=True,
        validate=validate.Length(min=1, max=len(COMMUNITY_SCOPES)),
    )


STEWARD_CHANGE_PAYLOAD = StewardChangeOut(
    only=("community", "action", "organization", "reason", "status", "expires_at", "stewards")
)
