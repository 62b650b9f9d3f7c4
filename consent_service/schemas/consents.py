from __future__ import annotations

from marshmallow import fields, validate

from consent_service.core.wire import EvidenceMethod
from consent_service.schemas.common import (
    MAX_LIST,
    StrictSchema,
    SubjectSchema,
    aware_datetime,
    code,
    code_list,
    text,
)


class EvidenceSchema(StrictSchema):
    method = fields.String(required=True, validate=validate.OneOf([str(m) for m in EvidenceMethod]))
    obtained_by = fields.String(required=True, validate=validate.Length(min=1, max=200))
    notes = text(2000)
    setting = code(allow_none=True, metadata={
        "description": "where consent was given (policies/deployment.toml settings); left out: other"})
    witness = fields.String(validate=validate.Length(min=1, max=200), allow_none=True, metadata={
        "description": "a second worker who was present, where the deployment asks for one"})
    confirmed_protected_purposes = fields.List(code(), validate=validate.Length(max=MAX_LIST), metadata={
        "description": "protected purposes the person explicitly confirmed (where allowed)"})


class ConsentTermsIn(StrictSchema):
    communities = fields.List(code(), validate=validate.Length(max=MAX_LIST), load_default=list)
    purposes = code_list(required=True)
    data_categories = code_list(required=True)
    recipients = code_list(required=True)
    expires_at = aware_datetime(allow_none=True, load_default=None)
    evidence = fields.Nested(EvidenceSchema, required=True)


class ConsentIn(ConsentTermsIn):
    subject = fields.Nested(SubjectSchema, required=True)


class AmendIn(ConsentTermsIn):
    version = fields.Integer(strict=True, validate=validate.Range(min=1, max=2**31 - 1), metadata={
        "description": "the version being amended; 409 if it is no longer current"})


class RevokeIn(StrictSchema):
    reason = text(1000, load_default=None, allow_none=True)


class ConsentOut(StrictSchema):
    id = fields.String()
    version = fields.Integer()
    status = fields.String()
    recorded_by = fields.String()
    subject_pseudonym = fields.String()
    communities = fields.List(fields.String())
    purposes = fields.List(fields.String())
    data_categories = fields.List(fields.String())
    recipients = fields.List(fields.String())
    expires_at = fields.AwareDateTime(allow_none=True)
    evidence = fields.Dict()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    revoked_at = fields.AwareDateTime(allow_none=True)
    revoked_reason = fields.String(allow_none=True)
    receipt = fields.String()
    receipt_id = fields.String()


class ConsentVersionOut(StrictSchema):
    version = fields.Integer()
    purposes = fields.List(fields.String())
    data_categories = fields.List(fields.String())
    recipients = fields.List(fields.String())
    communities = fields.List(fields.String())
    expires_at = fields.AwareDateTime(allow_none=True)
    evidence = fields.Dict()
    recorded_at = fields.AwareDateTime()
    receipt_id = fields.String()


class ConsentHistoryOut(StrictSchema):
    id = fields.String()
    versions = fields.List(fields.Nested(ConsentVersionOut))
    events = fields.List(fields.Dict())


class ConsentReviewOut(StrictSchema):
    consent_id = fields.String()
    version = fields.Integer()
    reason = fields.String(metadata={"description": "sensitive_categories | protected_purpose"})
    codes = fields.List(fields.String(), metadata={"description": "what the consent no longer covers"})
    why = fields.String()
    recorded_by = fields.String()
    flagged_at = fields.AwareDateTime()


class ConsentReviewsOut(StrictSchema):
    consents = fields.List(fields.Nested(ConsentReviewOut))
