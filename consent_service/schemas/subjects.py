"""Schemas of the subjects resource: subject systems, the access report, re-keying.

The output schemas dump the dataclasses of ``services.subjects``; the registration's audit
payload dumps through ``SubjectSystemOut``.
"""

from __future__ import annotations

from marshmallow import fields, validate

from consent_service.schemas.authorize import ReasonOut
from consent_service.schemas.common import StrictSchema, SubjectSchema, code


class AccessReportIn(StrictSchema):
    subject = fields.Nested(SubjectSchema, required=True)


class FormatQuery(StrictSchema):
    format = fields.String(
        validate=validate.OneOf(["json", "html"]),
        metadata={
            "description": "html: a printable page in plain language (default: by "
            "the Accept header, else json)"
        },
    )


class ReportSubjectOut(StrictSchema):
    system = fields.String()
    value = fields.String()
    pseudonym = fields.String()


class ReportVersionOut(StrictSchema):
    version = fields.Integer()
    recorded_at = fields.AwareDateTime()
    purposes = fields.List(fields.String())
    data_categories = fields.List(fields.String())
    recipients = fields.List(fields.String())
    communities = fields.List(fields.String())
    expires_at = fields.AwareDateTime(allow_none=True)
    method = fields.String(allow_none=True)
    receipt_id = fields.String()


class ReportEventOut(StrictSchema):
    kind = fields.String(metadata={"enum": ["recorded", "amended", "revoked"]})
    version = fields.Integer()
    at = fields.AwareDateTime()
    reason = fields.String(allow_none=True)


class ReportConsentOut(StrictSchema):
    id = fields.String()
    status = fields.String()
    current_version = fields.Integer()
    created_at = fields.AwareDateTime()
    revoked_at = fields.AwareDateTime(allow_none=True)
    revoked_reason = fields.String(allow_none=True)
    versions = fields.List(fields.Nested(ReportVersionOut))
    events = fields.List(fields.Nested(ReportEventOut))


class ReportDecisionOut(StrictSchema):
    decision_id = fields.String()
    at = fields.AwareDateTime()
    requester = fields.String()
    purpose = fields.String()
    data_categories = fields.List(fields.String())
    decision = fields.String(metadata={"enum": ["permit", "deny"]})
    reasons = fields.List(fields.Nested(ReasonOut))
    consent_id = fields.String(allow_none=True, metadata={"description": "only for your own consents"})
    consent_version = fields.Integer(allow_none=True)


class ReportRequestOut(StrictSchema):
    at = fields.AwareDateTime()
    organization = fields.String()


class AccessReportOut(StrictSchema):
    subject = fields.Nested(ReportSubjectOut)
    organization = fields.String()
    generated_at = fields.AwareDateTime()
    consents = fields.List(fields.Nested(ReportConsentOut))
    decisions = fields.List(fields.Nested(ReportDecisionOut))
    reports = fields.List(
        fields.Nested(ReportRequestOut),
        metadata={"description": "every access report asked for about the person (this one included)"},
    )
    labels = fields.Dict(
        metadata={
            "description": "plain-language names of the codes used above: purposes, "
            "data_categories, organizations, communities"
        }
    )


class RekeyOut(StrictSchema):
    pseudonym = fields.String(metadata={"description": "the key of the normalized spelling"})
    previous_pseudonym = fields.String()
    consents = fields.List(fields.String(), metadata={"description": "consents moved"})
    communities = fields.List(fields.String(), metadata={"description": "memberships moved"})


class SubjectSystemIn(StrictSchema):
    system = fields.String(
        required=True,
        validate=validate.Length(min=1, max=256),
        metadata={"description": "an absolute URI (urn:... or https:...), stored in its normalized spelling"},
    )
    organization = code(load_default=None, metadata={"description": "the organization it is registered to"})
    shared = fields.Boolean(load_default=False, metadata={"description": "true: any organization may use it"})
    case_insensitive = fields.Boolean(
        load_default=False,
        metadata={"description": "true: values compare case-folded (e.g. a health card number)"},
    )


class SubjectSystemOut(StrictSchema):
    system = fields.String()
    organization = fields.String(allow_none=True)
    shared = fields.Boolean()
    case_insensitive = fields.Boolean()
    created_at = fields.AwareDateTime()


class SubjectSystemsOut(StrictSchema):
    subject_systems = fields.List(fields.Nested(SubjectSystemOut))
