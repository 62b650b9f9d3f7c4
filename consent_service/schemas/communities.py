"""Community governance: the community, its rules and approvals, and the decisions it may see.

Input schemas check shape only. Whether codes, obligations and Local Contexts labels exist is
the use cases' question (``unknown_code`` / ``validation_error`` with details by field).
The output schemas dump the frozen dataclasses of ``services.communities``, ``services.rules``
and ``services.approvals``, and the audit payloads of their events dump through the same
schemas (the ``*_PAYLOAD`` instances below: fewer fields, as older entries hold them).
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from consent_service.core import obligations as obligation_terms
from consent_service.core.wire import RuleEffect
from consent_service.schemas.common import MAX_LIST, StrictSchema, aware_datetime, code, code_list, text

MAX_DECISIONS = 1000


class CommunityIn(StrictSchema):
    id = code(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    stewards = fields.List(code(), required=True, validate=validate.Length(min=1, max=20))
    show_community_id = fields.Boolean(
        load_default=False,
        metadata={"description": "whether answers to requesters name the community (default: not shown)"},
    )


class CommunityOut(StrictSchema):
    id = fields.String()
    name = fields.String()
    stewards = fields.List(fields.String())
    policy_version = fields.Integer()
    show_community_id = fields.Boolean()
    review_days = fields.Integer(
        metadata={"description": "days the stewards give themselves to decide a data access request"}
    )
    created_at = fields.AwareDateTime()


class CommunitySettingsIn(StrictSchema):
    """At least one setting; those not given are kept."""

    show_community_id = fields.Boolean(
        metadata={
            "description": "whether answers to requesters a member's consent names carry the community's id"
        },
    )
    review_days = fields.Integer(
        validate=validate.Range(min=1, max=365),
        metadata={"description": "days to decide a data access request (its decide_by); default 30"},
    )

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("name a setting to change", field_name="show_community_id")


class RuleIn(StrictSchema):
    effect = fields.String(required=True, validate=validate.OneOf([str(e) for e in RuleEffect]))
    purposes = code_list(required=True)
    data_categories = code_list(allow_wildcard=True, required=True)
    requesters = code_list(
        allow_wildcard=True,
        required=True,
        metadata={"description": "organization ids, or ['*'] for every requester"},
    )
    obligations = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        load_default=dict,
        metadata={"description": obligation_terms.describe()},
    )
    labels = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        load_default=list,
        validate=validate.Length(max=MAX_LIST),
        metadata={"description": "Local Contexts TK/BC Label or Notice names"},
    )
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class RuleOut(StrictSchema):
    id = fields.String()
    community = fields.String()
    effect = fields.String()
    status = fields.String(metadata={"enum": ["active", "retired"]})
    purposes = fields.List(fields.String())
    data_categories = fields.List(fields.String())
    requesters = fields.List(fields.String())
    obligations = fields.Dict()
    labels = fields.List(fields.String())
    reason = fields.String()
    created_at = fields.AwareDateTime()
    created_by = fields.String()
    retired_at = fields.AwareDateTime(allow_none=True)
    retired_by = fields.String(allow_none=True)
    retired_reason = fields.String(allow_none=True)


class RetiredRulePayload(StrictSchema):
    """The audit payload of a rule's retirement: its community and why it was retired."""

    community = fields.String()
    reason = fields.String(attribute="retired_reason", allow_none=True)


class RuleListOut(StrictSchema):
    rules = fields.List(fields.Nested(RuleOut))


class RulesQuery(StrictSchema):
    include_retired = fields.Boolean(load_default=False)


class ChangeReasonIn(StrictSchema):
    """Why a rule is retired or an approval revoked (optional)."""

    reason = text(2000, load_default=None, allow_none=True)


class ApprovalIn(StrictSchema):
    requester = code(required=True)
    purposes = code_list(required=True)
    data_categories = code_list(required=True)
    expires_at = aware_datetime(allow_none=True, load_default=None)
    notes = text(2000, load_default=None, allow_none=True)
    agreement_id = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=36),
        metadata={"description": "the community's data sharing agreement it is granted under"},
    )


class ApprovalOut(StrictSchema):
    id = fields.String()
    community = fields.String()
    requester = fields.String()
    status = fields.String(metadata={"enum": ["active", "expired", "revoked"]})
    purposes = fields.List(fields.String())
    data_categories = fields.List(fields.String())
    expires_at = fields.AwareDateTime(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    created_by = fields.String()
    revoked_at = fields.AwareDateTime(allow_none=True)
    revoked_by = fields.String(allow_none=True)
    revoked_reason = fields.String(allow_none=True)
    agreement_id = fields.String(allow_none=True)
    access_request_id = fields.String(
        allow_none=True, metadata={"description": "the data access request it was granted on, if any"}
    )


class RevokedApprovalPayload(StrictSchema):
    """The audit payload of an approval's revocation: its community and why it was revoked."""

    community = fields.String()
    reason = fields.String(attribute="revoked_reason", allow_none=True)


class ApprovalListOut(StrictSchema):
    approvals = fields.List(fields.Nested(ApprovalOut))


class ApprovalsQuery(StrictSchema):
    include_revoked = fields.Boolean(load_default=False)


class DecisionsQuery(StrictSchema):
    since = aware_datetime(load_default=None, metadata={"description": "from this time (inclusive)"})
    until = aware_datetime(load_default=None, metadata={"description": "to this time (exclusive)"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_DECISIONS))

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError("must be after since", field_name="until")


class CommunityReasonOut(StrictSchema):
    """A reason as a community sees it: never a consent id, which would link one person's decisions."""

    code = fields.String(required=True)
    message = fields.String(required=True)
    rule_id = fields.String()
    community = fields.String()


class CommunityDecisionOut(StrictSchema):
    id = fields.String()
    at = fields.AwareDateTime()
    requester = fields.String()
    purpose = fields.String()
    data_categories = fields.List(fields.String())
    decision = fields.String(metadata={"enum": ["permit", "deny"]})
    reasons = fields.List(fields.Nested(CommunityReasonOut))
    obligations = fields.List(fields.Dict())


class DecisionCountsOut(StrictSchema):
    by_requester = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_purpose = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_outcome = fields.Dict(keys=fields.String(), values=fields.Integer())


class CommunityDecisionsOut(StrictSchema):
    community = fields.String()
    since = fields.AwareDateTime(allow_none=True)
    until = fields.AwareDateTime(allow_none=True)
    total = fields.Integer(metadata={"description": "decisions in [since, until), however many are listed"})
    counts = fields.Nested(DecisionCountsOut)
    decisions = fields.List(fields.Nested(CommunityDecisionOut))


class ProtectedGrantOut(StrictSchema):
    at = fields.AwareDateTime()
    purposes = fields.List(fields.String())
    recipients = fields.List(fields.String())
    recorded_by = fields.String()
    setting = fields.String()


class ProtectedGrantsOut(StrictSchema):
    community = fields.String()
    grants = fields.List(fields.Nested(ProtectedGrantOut))


# The audit payloads of the governance events (older entries hold exactly these fields).
COMMUNITY_CREATED_PAYLOAD = CommunityOut(only=("name", "stewards", "show_community_id"))
COMMUNITY_CHANGED_PAYLOAD = CommunityOut(only=("show_community_id",))  # and "was", the setting before
RULE_CREATED_PAYLOAD = RuleOut(
    only=(
        "community",
        "effect",
        "purposes",
        "data_categories",
        "requesters",
        "obligations",
        "labels",
        "reason",
    )
)
RULE_RETIRED_PAYLOAD = RetiredRulePayload()
APPROVAL_GRANTED_PAYLOAD = ApprovalOut(
    only=("community", "requester", "purposes", "data_categories", "expires_at")
)
APPROVAL_REVOKED_PAYLOAD = RevokedApprovalPayload()
