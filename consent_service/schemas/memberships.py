"""Schemas of memberships: what a community's stewards see and send (pseudonymous ids only),
and what the organization that recorded a person's consent sees (never those ids).

The output schemas dump the frozen dataclasses of ``services.memberships``.
"""

from __future__ import annotations

from marshmallow import fields, validate

from consent_service.schemas.common import StrictSchema

MAX_CONFIRM = 1000
_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class MembershipsConfirmIn(StrictSchema):
    memberships = fields.List(
        fields.String(
            validate=[
                validate.Length(max=36),
                validate.Regexp(_ID, error="must be a membership id (a UUID)"),
            ]
        ),
        required=True,
        validate=validate.Length(min=1, max=MAX_CONFIRM),
        metadata={"description": "pseudonymous ids of pending memberships, as the community lists them"},
    )


class PendingMembershipOut(StrictSchema):
    id = fields.String()
    named_on = fields.Date()


class MembershipCountsOut(StrictSchema):
    pending = fields.Integer()
    confirmed = fields.Integer()
    ended = fields.Integer()


class CommunityMembershipsOut(StrictSchema):
    community = fields.String()
    counts = fields.Nested(MembershipCountsOut)
    ended_last_days = fields.Integer(
        metadata={"description": "memberships ended in the last notice_days days"}
    )
    notice_days = fields.Integer()
    last_ended_on = fields.Date(allow_none=True)
    pending = fields.List(fields.Nested(PendingMembershipOut))


class MembershipsConfirmedOut(StrictSchema):
    community = fields.String()
    confirmed = fields.List(fields.String())
    already_confirmed = fields.List(fields.String())


class MembershipOut(StrictSchema):
    community = fields.String()
    status = fields.String(metadata={"description": "pending, confirmed or ended"})
    since = fields.AwareDateTime()
    confirmed_at = fields.AwareDateTime(allow_none=True)
    confirmed_via = fields.String(allow_none=True, metadata={"description": "community or person"})
    ended_at = fields.AwareDateTime(allow_none=True)


class ConsentMembershipsOut(StrictSchema):
    consent_id = fields.String()
    memberships = fields.List(fields.Nested(MembershipOut))
