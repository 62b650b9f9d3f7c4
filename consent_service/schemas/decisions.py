from __future__ import annotations

from marshmallow import fields

from consent_service.schemas.authorize import ReasonOut
from consent_service.schemas.common import StrictSchema


class AuditLinkOut(StrictSchema):
    seq = fields.Integer()
    hash = fields.String()


class DecisionRecordOut(StrictSchema):
    """Dumps ``services.decisions.RecordedDecision``, ``OverseenDecision`` or ``StewardDecision``
    (a field the view has not is left out)."""

    decision_id = fields.String(required=True)
    at = fields.AwareDateTime(required=True)
    requester = fields.String(required=True)
    client_id = fields.String()
    subject_pseudonym = fields.String()
    purpose = fields.String(required=True)
    data_categories = fields.List(fields.String(), required=True)
    decision = fields.String(required=True, metadata={"enum": ["permit", "deny"]})
    reasons = fields.List(fields.Nested(ReasonOut), required=True)
    obligations = fields.List(fields.Dict())
    consent_id = fields.String(allow_none=True, metadata={"description": "the consent that permitted it"})
    consent_version = fields.Integer(
        allow_none=True, metadata={"description": "that consent's exact version"}
    )
    rule_ids = fields.List(
        fields.String(), metadata={"description": "community rules that denied or conditioned it"}
    )
    policy_versions = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "policy version of each of the subject's communities"},
    )
    community = fields.String(metadata={"description": "a steward's view: the community it is shown for"})
    told = fields.Dict(
        allow_none=True,
        metadata={
            "description": "oversight only: what the requester was told, where it differs (null: the same)"
        },
    )
    audit = fields.Nested(
        AuditLinkOut, allow_none=True, metadata={"description": "its entry in the audit chain"}
    )
