from __future__ import annotations

from marshmallow import fields

from consent_service.schemas.common import StrictSchema, SubjectSchema, code, code_list


class AuthorizeIn(StrictSchema):
    subject = fields.Nested(SubjectSchema, required=True)
    purpose = code(required=True)
    data_categories = code_list(required=True)


class ReasonOut(StrictSchema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    consent_id = fields.String()
    rule_id = fields.String()
    community = fields.String()


class DecisionOut(StrictSchema):
    decision = fields.String(required=True, metadata={"enum": ["permit", "deny"]})
    decision_id = fields.String(required=True)
    reasons = fields.List(fields.Nested(ReasonOut), required=True)
    obligations = fields.List(fields.Dict(), required=True)
    receipt = fields.String(metadata={
        "description": "decision receipt: compact JWS (typ decision-receipt+jwt); verify it with the JWKS"})
