from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from consent_service.core import access_codes
from consent_service.core.deployment import DEFAULT_SETTING
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
    setting = code(
        allow_none=True,
        metadata={
            "description": "where consent was given (policies/deployment.toml settings); left out: other"
        },
    )
    witness = fields.String(
        validate=validate.Length(min=1, max=200),
        allow_none=True,
        metadata={"description": "a second worker who was present, where the deployment asks for one"},
    )
    confirmed_protected_purposes = fields.List(
        code(),
        validate=validate.Length(max=MAX_LIST),
        metadata={"description": "protected purposes the person explicitly confirmed (where allowed)"},
    )


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
    version = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "the version being amended; 409 if it is no longer current"},
    )


class RevokeIn(StrictSchema):
    reason = text(1000, load_default=None, allow_none=True)


class ConsentOut(StrictSchema):
    """A consent with its current version's terms (``services.consents.ConsentState``)."""

    id = fields.String()
    version = fields.Integer()
    status = fields.String()
    recorded_by = fields.String()
    subject_pseudonym = fields.String(attribute="subject_key")
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


class ConsentCreatedOut(ConsentOut):
    """The answer that records a consent: the consent and, this once, the person's access code."""

    access_code = fields.Method(
        "_access_code",
        allow_none=True,
        metadata={
            "description": "the person's code to their own view (/me), in groups of four: give it "
            "to them with the receipt. Shown only in this answer (null when a retry with the same "
            "Idempotency-Key replays it); a lost code is replaced with POST /v1/consents/{id}/access-code"
        },
    )

    def _access_code(self, state: Any) -> str | None:
        code = getattr(state, "access_code", None)
        return access_codes.display(code) if code else None


class AccessCodeOut(StrictSchema):
    """A new access code for the person (the old ones no longer work)."""

    consent_id = fields.String()
    access_code = fields.Method("_access_code")
    created_at = fields.AwareDateTime()
    codes_replaced = fields.Integer(metadata={"description": "how many earlier codes stopped working"})

    def _access_code(self, new: Any) -> str:
        return access_codes.display(new.access_code)


class ConsentAuditOut(ConsentOut):
    """What the audit entry of a recorded, amended or revoked consent holds: the pseudonymous
    subject and the terms, never the evidence's notes or names. The field sets are fixed
    (``RECORDED_FIELDS``, ``REVOKED_FIELDS``): entries already in the chain have them."""

    subject = fields.String(attribute="subject_key")
    method = fields.Function(lambda state: state.evidence.get("method"))
    setting = fields.Function(lambda state: state.evidence.get("setting") or DEFAULT_SETTING)


RECORDED_FIELDS = (
    "subject",
    "version",
    "purposes",
    "data_categories",
    "recipients",
    "communities",
    "expires_at",
    "method",
    "setting",
    "receipt_id",
)
REVOKED_FIELDS = ("subject", "version")
consent_recorded_audit = ConsentAuditOut(only=RECORDED_FIELDS)
consent_revoked_audit = ConsentAuditOut(only=REVOKED_FIELDS)


class ConsentVersionOut(StrictSchema):
    """One version in a consent's history (a ``ConsentVersion`` row)."""

    version = fields.Integer()
    purposes = fields.List(fields.String())
    data_categories = fields.List(fields.String())
    recipients = fields.List(fields.String())
    communities = fields.List(fields.String())
    expires_at = fields.AwareDateTime(allow_none=True)
    evidence = fields.Dict()
    recorded_at = fields.AwareDateTime()
    receipt_id = fields.String()


class ConsentEventOut(StrictSchema):
    """One event in a consent's history (a ``ConsentEvent`` row)."""

    kind = fields.String(metadata={"description": "recorded | amended | revoked"})
    version = fields.Integer()
    at = fields.AwareDateTime()
    by = fields.String(attribute="actor_org")
    reason = fields.String(allow_none=True)


class ConsentHistoryOut(StrictSchema):
    id = fields.String()
    versions = fields.List(fields.Nested(ConsentVersionOut))
    events = fields.List(fields.Nested(ConsentEventOut))


class ConsentReviewOut(StrictSchema):
    """A consent listed for review (``services.consent_reviews.ReviewItem``)."""

    consent_id = fields.String()
    version = fields.Integer(attribute="consent_version")
    reason = fields.String(metadata={"description": "sensitive_categories | protected_purpose"})
    codes = fields.List(fields.String(), metadata={"description": "what the consent no longer covers"})
    why = fields.String()
    recorded_by = fields.String()
    flagged_at = fields.AwareDateTime()


# The audit entry listing an organization's consents for review (consents_listed_for_review).
review_listed_audit = ConsentReviewOut(only=("consent_id", "version", "reason", "codes"), many=True)


class ConsentReviewsOut(StrictSchema):
    consents = fields.List(fields.Nested(ConsentReviewOut))
