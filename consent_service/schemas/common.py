"""Field types shared by the request schemas.

Shape only (types, lengths, patterns, list sizes): whether a code exists is the domain's
question, answered with ``unknown_code`` rather than ``validation_error``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from consent_service.core import pseudonyms

MAX_LIST = 100
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StrictSchema(Schema):
    """Unknown fields are an error (marshmallow's default RAISE), stated here on purpose."""

    class Meta:
        unknown = "raise"


def code(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(
            CODE_PATTERN, error="must be a code: letters, digits, '.', '_', ':' or '-', at most 64 characters"
        ),
        **kwargs,
    )


def code_list(*, allow_wildcard: bool = False, **kwargs: Any) -> fields.List:
    item = fields.String(
        validate=validate.Regexp(
            r"^\*$|" + CODE_PATTERN if allow_wildcard else CODE_PATTERN,
            error="must be a code" + (" or '*'" if allow_wildcard else ""),
        )
    )
    return fields.List(item, validate=validate.Length(min=1, max=MAX_LIST), **kwargs)


def text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=max_length), **kwargs)


def _no_control_characters(value: str) -> None:
    if _CONTROL.search(value):
        raise ValidationError("must not contain control characters")


def subject_problem(name: str, value: str) -> str | None:
    """What is wrong with a subject's ``system`` or ``value`` beyond its length and control
    characters (the same rules for one subject and for a batch's 10,000): a value that is only
    white space (nothing is left once normalized), a system that is not ``urn:``/``https:``."""
    if not value.strip():
        return "must not be blank"
    return pseudonyms.system_problem(value) if name == "system" else None


def _subject_part(name: str) -> Any:
    def check(value: str) -> None:
        problem = subject_problem(name, value)
        if problem:
            raise ValidationError(problem)

    return check


class SubjectSchema(StrictSchema):
    system = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=256), _no_control_characters, _subject_part("system")],
        metadata={"description": "an absolute URI: urn:... or https:..."},
    )
    value = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=256), _no_control_characters, _subject_part("value")],
    )


class _UTCDateTime(fields.AwareDateTime):
    """An aware time, converted to UTC when read: a time whose UTC form falls outside the
    years 1..9999 (``9999-12-31T23:00:00-01:00``) cannot be represented, stored or compared,
    so it is refused here, for every field of every endpoint, as out of range (it was a 500)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise ValidationError("out of range: the time in UTC must fall in the years 1 to 9999") from exc


def aware_datetime(**kwargs: Any) -> fields.AwareDateTime:
    """ISO 8601 with a zone; a time without one is refused rather than guessed."""
    return _UTCDateTime(format="iso", **kwargs)


class ErrorDetailSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)
