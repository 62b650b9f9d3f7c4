"""The service's few error types and the one function that renders them.

Every 4xx/5xx answer of the API, whatever raised it (our code, webargs, flask-smorest,
Authlib, werkzeug), leaves through :func:`error_body` so clients see one shape:
``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    UNKNOWN_CODE = "unknown_code"
    PROTECTED_PURPOSE = "protected_purpose"
    CRISIS_SETTING = "crisis_setting"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    DUPLICATE_RULE = "duplicate_rule"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal_error"


STATUS = {
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.UNKNOWN_CODE: 400,
    ErrorCode.PROTECTED_PURPOSE: 400,
    ErrorCode.CRISIS_SETTING: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.DUPLICATE_RULE: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class ServiceError(Exception):
    """An error a client can act on; ``code`` decides the HTTP status."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> int:
        return STATUS[self.code]


class ValidationFailed(ServiceError):
    code = ErrorCode.VALIDATION_ERROR


class UnknownCode(ServiceError):
    code = ErrorCode.UNKNOWN_CODE


class ProtectedPurposeRefused(ServiceError):
    """A consent would grant a purpose the deployment policy protects (policies/deployment.toml)."""

    code = ErrorCode.PROTECTED_PURPOSE


class CrisisSettingRefused(ServiceError):
    """A consent given in a crisis setting would grant a purpose that setting may not grant."""

    code = ErrorCode.CRISIS_SETTING


class Unauthorized(ServiceError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(ServiceError):
    code = ErrorCode.FORBIDDEN


class NotFound(ServiceError):
    """Also what "exists but is not yours" answers, so a 403 never reveals a record."""

    code = ErrorCode.NOT_FOUND


class Conflict(ServiceError):
    code = ErrorCode.CONFLICT


class DuplicateRule(Conflict):
    """The community already has an active rule with the same effect, requesters, purposes and
    categories; ``details.rule_id`` names it (only its stewards get this far)."""

    code = ErrorCode.DUPLICATE_RULE


class TooLarge(ServiceError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class UnsupportedMediaType(ServiceError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class Unavailable(ServiceError):
    """The store cannot be reached or timed out; an authorize caller must treat it as deny."""

    code = ErrorCode.UNAVAILABLE


def error_body(code: ErrorCode | str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": str(code), "message": message, "details": details or {}}}
