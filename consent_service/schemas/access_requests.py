"""Data access requests: what a requester files, what a steward decides, what both read.

Shape only; whether the community, the rule and the codes exist is the use case's question
(services/access_requests.py). The output schemas dump its frozen dataclasses.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from consent_service.core.wire import AccessRequestStatus
from consent_service.schemas.common import StrictSchema, aware_datetime, code, code_list, text
from consent_service.schemas.communities import ApprovalOut

STATUSES = [str(s) for s in AccessRequestStatus]


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


def _required_text(max_length: int, description: str) -> fields.String:
    return fields.String(
        required=True,
        validate=[validate.Length(min=1, max=max_length), _not_blank],
        metadata={"description": description},
    )


class AccessRequestIn(StrictSchema):
    community = code(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "the community asked (optional: the rule names it; where the community hides "
            "its id, a different value is not checked and the answers withhold the id)"
        },
    )
    rule_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=36),
        metadata={"description": "the community's rule a denial told the requester it was refused under"},
    )
    purposes = code_list(required=True)
    data_categories = code_list(required=True)
    protocol = _required_text(10000, "the research or use protocol, in plain language")
    ethics_reference = _required_text(500, "the ethics approval's reference (board, number)")
    benefit_plan = _required_text(10000, "how the community benefits (results returned, capacity, ...)")
    requested_until = aware_datetime(required=True, metadata={"description": "end of the access asked for"})


class AccessRequestOut(StrictSchema):
    id = fields.String()
    community = fields.String(allow_none=True)
    requester = fields.String()
    rule_id = fields.String()
    purposes = fields.List(fields.String())
    data_categories = fields.List(fields.String())
    protocol = fields.String()
    ethics_reference = fields.String()
    benefit_plan = fields.String()
    requested_until = fields.AwareDateTime()
    status = fields.String(
        metadata={"enum": STATUSES, "description": "as of now: pending past decide_by reads refused"}
    )
    filed_at = fields.AwareDateTime()
    decide_by = fields.AwareDateTime()
    closed_at = fields.AwareDateTime(allow_none=True)
    closed_by = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    refusal_reason = fields.String(
        allow_none=True, metadata={"description": "'no decision by deadline' when nobody decided in time"}
    )
    approval_id = fields.String(allow_none=True)


class AccessRequestListOut(StrictSchema):
    access_requests = fields.List(fields.Nested(AccessRequestOut))


class AccessRequestsQuery(StrictSchema):
    status = fields.String(validate=validate.OneOf(STATUSES), load_default=None)


class AccessRequestDecisionIn(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(["grant", "refuse"]))
    note = text(2000, load_default=None, allow_none=True)
    purposes = code_list(load_default=None, metadata={"description": "a grant's narrower purposes"})
    data_categories = code_list(load_default=None, metadata={"description": "a grant's narrower categories"})
    expires_at = aware_datetime(
        load_default=None, metadata={"description": "a grant's earlier end (default: requested_until)"}
    )
    agreement_id = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=36),
        metadata={"description": "the community's data sharing agreement the grant is made under"},
    )


class AccessRequestDecidedOut(StrictSchema):
    access_request = fields.Nested(AccessRequestOut)
    approval = fields.Nested(ApprovalOut, allow_none=True)
