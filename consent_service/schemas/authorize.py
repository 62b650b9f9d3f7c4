"""Access decisions: ``POST /v1/authorize`` (one subject) and ``POST /v1/authorize/batch`` (a cohort).

The output schemas dump the use case's dataclasses (``services.authorize``): a decision's
``decision``, ``reasons`` and ``obligations`` are what its requester is told (``told``).

A batch's ``subjects`` holds up to 10,000 items, so it is checked by one plain loop with the
same rules as :class:`SubjectSchema` (both fields required, strings of 1-256 characters, no
control characters, nothing else) rather than by a nested schema per item (measured: ~230 ms
for 10,000 items, about half the whole batch budget). Errors keep marshmallow's shape:
``{"subjects": {"3": {"value": ["..."]}}}``.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields

from consent_service.core.wire import MAX_SUBJECTS
from consent_service.schemas.common import StrictSchema, SubjectSchema, code, code_list, subject_problem


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
    """Dumps ``services.authorize.DecisionResult``."""

    decision = fields.String(required=True, attribute="told.outcome", metadata={"enum": ["permit", "deny"]})
    decision_id = fields.String(required=True, attribute="id")
    reasons = fields.List(fields.Nested(ReasonOut), required=True, attribute="told.reasons")
    obligations = fields.List(fields.Dict(), required=True, attribute="told.obligations")
    receipt = fields.String(
        metadata={
            "description": "decision receipt: compact JWS (typ decision-receipt+jwt); verify it with the JWKS"
        }
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELDS = ("system", "value")
_MAX_LENGTH = 256
_MAX_REPORTED = 20  # per-item problems listed in details; more are summarised


def _problems(item: Any) -> dict[str, list[str]]:
    if not isinstance(item, dict):
        return {"_schema": ["Invalid input type."]}
    found: dict[str, list[str]] = {}
    for name in item:
        if name not in _FIELDS:
            found[str(name)] = ["Unknown field."]
    for name in _FIELDS:
        value = item.get(name)
        if name not in item:
            found[name] = ["Missing data for required field."]
        elif not isinstance(value, str):
            found[name] = ["Not a valid string."]
        elif not 1 <= len(value) <= _MAX_LENGTH:
            found[name] = [f"Length must be between 1 and {_MAX_LENGTH}."]
        elif _CONTROL.search(value):
            found[name] = ["must not contain control characters"]
        elif problem := subject_problem(name, value):
            found[name] = [problem]
    return found


class SubjectList(fields.Field):
    """A list of 1..MAX_SUBJECTS ``{"system", "value"}`` objects, validated in one loop."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, str]]:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        if not 1 <= len(value) <= MAX_SUBJECTS:
            raise ValidationError(f"Length must be between 1 and {MAX_SUBJECTS}.")
        errors: dict[Any, Any] = {}
        for index, item in enumerate(value):
            problems = _problems(item)
            if problems:
                if len(errors) >= _MAX_REPORTED:
                    errors["_more"] = ["further subjects are invalid too"]
                    break
                errors[index] = problems
        if errors:
            raise ValidationError(errors)
        return [{"system": item["system"], "value": item["value"]} for item in value]


class BatchAuthorizeIn(StrictSchema):
    subjects = SubjectList(
        required=True,
        metadata={
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_SUBJECTS,
            "items": {
                "type": "object",
                "required": ["system", "value"],
                "additionalProperties": False,
                "properties": {
                    "system": {"type": "string", "minLength": 1, "maxLength": _MAX_LENGTH},
                    "value": {"type": "string", "minLength": 1, "maxLength": _MAX_LENGTH},
                },
            },
        },
    )
    purpose = code(required=True)
    data_categories = code_list(required=True)


class SubjectDecisionOut(StrictSchema):
    """Dumps ``services.authorize.SubjectDecision``."""

    subject_index = fields.Integer(required=True, attribute="index")
    decision = fields.String(required=True, attribute="told.outcome", metadata={"enum": ["permit", "deny"]})
    decision_id = fields.String(required=True, attribute="id")
    reasons = fields.List(fields.Nested(ReasonOut), required=True, attribute="told.reasons")
    obligations = fields.List(fields.Dict(), required=True, attribute="told.obligations")


class SummaryOut(StrictSchema):
    permit = fields.Integer(required=True)
    deny = fields.Integer(required=True)


class BatchDecisionsOut(StrictSchema):
    """Dumps ``services.authorize.BatchResult``."""

    decisions = fields.List(fields.Nested(SubjectDecisionOut), required=True)
    summary = fields.Nested(SummaryOut, required=True)


_REASONS = ReasonOut(many=True)


def batch_answer(result: Any) -> dict[str, Any]:
    """What ``BatchDecisionsOut`` dumps from a ``services.authorize.BatchResult``, built directly.

    A batch's decisions share their reasons lists (``decision_record.SharedValues``), so each
    distinct list is dumped once by ``ReasonOut``; obligations are plain dicts dumped as they are
    (``fields.Dict``). Dumping 10,000 decisions through the nested schemas took about a tenth of
    the whole request (docs/performance.md); ``tests/test_batch_authorize.py`` holds the two equal.
    """
    reasons: dict[int, list[dict[str, Any]]] = {}
    decisions = []
    for decision in result.decisions:
        told = decision.told
        found = reasons.get(id(told["reasons"]))
        if found is None:
            found = reasons[id(told["reasons"])] = _REASONS.dump(told["reasons"])
        decisions.append(
            {
                "subject_index": decision.index,
                "decision": told["outcome"],
                "decision_id": decision.id,
                "reasons": found,
                "obligations": told["obligations"],  # dicts, written as fields.Dict would copy them
            }
        )
    summary = result.summary
    return {"decisions": decisions, "summary": {"permit": summary.permit, "deny": summary.deny}}
