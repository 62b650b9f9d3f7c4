"""A community's data sharing agreements and their duties (``/v1/communities/{id}/agreements``).

Input schemas check shape; whether parties, approvals and dates make sense is the use case's
question (``services.agreements``). The output schemas dump its frozen dataclasses, and the
audit payloads of its events dump through the same schemas (fewer fields).
"""

from __future__ import annotations

from marshmallow import fields, validate

from consent_service.core.wire import DutyKind
from consent_service.schemas.common import MAX_LIST, StrictSchema, aware_datetime, code, text

MAX_DUTIES = 50


class DutyIn(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf([str(kind) for kind in DutyKind]))
    description = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    due_at = aware_datetime(required=True)
    owed_by = code(
        required=True, metadata={"description": "the party that owes it (one of the agreement's parties)"}
    )


class AgreementIn(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    parties = fields.List(code(), required=True, validate=validate.Length(min=1, max=20))
    legal_authority = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    review_at = aware_datetime(
        required=True, metadata={"description": "the date by which the community reviews it"}
    )
    approvals = fields.List(
        fields.String(validate=validate.Length(max=36)),
        load_default=list,
        validate=validate.Length(max=MAX_LIST),
        metadata={"description": "ids of the community's approvals granted under this agreement"},
    )
    duties = fields.List(fields.Nested(DutyIn), load_default=list, validate=validate.Length(max=MAX_DUTIES))


class RenewIn(StrictSchema):
    review_at = aware_datetime(required=True)


class DutyMetIn(StrictSchema):
    note = text(2000, load_default=None, allow_none=True)


class AgreementsQuery(StrictSchema):
    review_due_within = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0, max=3650),
        metadata={
            "description": "only agreements whose review date falls within this many days (or is past)"
        },
    )


class DocumentQuery(StrictSchema):
    name = fields.String(load_default=None, validate=validate.Length(min=1, max=200))


class DocumentOut(StrictSchema):
    sha256 = fields.String()
    name = fields.String(allow_none=True)
    media_type = fields.String()
    size = fields.Integer()


class DutyOut(StrictSchema):
    id = fields.String()
    agreement_id = fields.String()
    kind = fields.String(metadata={"enum": [str(kind) for kind in DutyKind]})
    description = fields.String()
    owed_by = fields.String()
    due_at = fields.AwareDateTime()
    status = fields.String(metadata={"enum": ["pending", "overdue", "met"]})
    met_at = fields.AwareDateTime(allow_none=True)
    met_by = fields.String(allow_none=True)
    met_note = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    created_by = fields.String()


class AgreementOut(StrictSchema):
    id = fields.String()
    community = fields.String()
    title = fields.String()
    parties = fields.List(fields.String())
    legal_authority = fields.String()
    review_at = fields.AwareDateTime()
    status = fields.String(
        metadata={
            "enum": ["in_force", "review_overdue"],
            "description": "review_overdue: its approvals do not permit",
        }
    )
    review_due_soon = fields.Boolean(
        metadata={"description": "the review date is within the reminder period"}
    )
    document = fields.Nested(DocumentOut, allow_none=True)
    approvals = fields.List(fields.String())
    duties = fields.List(fields.Nested(DutyOut))
    created_at = fields.AwareDateTime()
    created_by = fields.String()
    renewed_at = fields.AwareDateTime(allow_none=True)
    renewed_by = fields.String(allow_none=True)


class AgreementListOut(StrictSchema):
    agreements = fields.List(fields.Nested(AgreementOut))


AGREEMENT_CREATED_PAYLOAD = AgreementOut(
    only=("community", "title", "parties", "legal_authority", "review_at", "approvals", "duties")
)
AGREEMENT_RENEWED_PAYLOAD = AgreementOut(only=("community", "review_at"))
DUTY_PAYLOAD = DutyOut(
    only=("agreement_id", "kind", "description", "owed_by", "due_at", "status", "met_note")
)
DOCUMENT_PAYLOAD = DocumentOut()
