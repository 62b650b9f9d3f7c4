"""Names that cross the wire or land in the audit log. Changing one is an API change."""

from __future__ import annotations

from enum import StrEnum


class OrgType(StrEnum):
    SERVICE_PROVIDER = "service-provider"
    GOVERNMENT = "government"
    RESEARCH = "research"
    COMMUNITY_GOVERNANCE = "community-governance"
    OTHER = "other"
    OVERSIGHT = "oversight"


class Outcome(StrEnum):
    PERMIT = "permit"
    DENY = "deny"


class ReasonCode(StrEnum):
    COMMUNITY_RULE = "community_rule"
    NO_CONSENT = "no_consent"
    APPROVAL_REQUIRED = "approval_required"
    AGREEMENT_REVIEW_OVERDUE = "agreement_review_overdue"
    DUTY_OVERDUE = "duty_overdue"
    CONSENT = "consent"
    BELOW_MIN_CELL_SIZE = "below_min_cell_size"


class RuleEffect(StrEnum):
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"


class ConsentStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"  # shown on read when expires_at has passed; never stored


class EvidenceMethod(StrEnum):
    VERBAL = "verbal"
    WRITTEN = "written"
    ELECTRONIC = "electronic"


class AuditTag(StrEnum):
    """``subject:action`` tags of audit entries."""

    DECISION_PERMIT = "decision:permit"
    DECISION_DENY = "decision:deny"
    CONSENT_RECORDED = "consent:recorded"
    CONSENT_AMENDED = "consent:amended"
    CONSENT_REVOKED = "consent:revoked"
    CONSENTS_LISTED_FOR_REVIEW = "consents:listed_for_review"
    ORGANIZATION_CREATED = "organization:created"
    CLIENT_CREATED = "client:created"
    CLIENT_DISABLED = "client:disabled"
    COMMUNITY_CREATED = "community:created"
    COMMUNITY_CHANGED = "community:changed"
    RULE_CREATED = "rule:created"
    RULE_RETIRED = "rule:retired"
    APPROVAL_GRANTED = "approval:granted"
    APPROVAL_REVOKED = "approval:revoked"
    USER_CREATED = "user:created"
    USER_CHANGED = "user:changed"
    USER_LOCKED = "user:locked"
    SUBJECT_SYSTEM_REGISTERED = "subject_system:registered"
    SUBJECT_REKEYED = "subject:rekeyed"
    SUBJECT_REPORTED = "subject:access-reported"
    USER_SIGNED_IN = "user:signed-in"
    USER_SIGN_IN_FAILED = "user:sign-in-failed"
    USER_SIGNED_OUT = "user:signed-out"
    KEY_ROTATED = "key:rotated"
    # The person's own view (/me): a sign-in with an access code, a worker's new code (the old
    # ones stop working), and wrong codes counted per hour (an entry at the 1st, 10th, 100th...).
    ACCESS_CODE_USED = "access_code:used"
    ACCESS_CODE_ROTATED = "access_code:rotated"
    ACCESS_CODES_REFUSED = "access_code:refused"
    # Change events (core/events.py): an organization's webhook registered or deleted.
    WEBHOOK_REGISTERED = "webhook:registered"
    WEBHOOK_DELETED = "webhook:deleted"


class ManagementAction(StrEnum):
    """Actions on a community checked against policies/management.csv."""

    RULES_CREATE = "rules:create"
    RULES_LIST = "rules:list"
    RULES_RETIRE = "rules:retire"
    APPROVALS_CREATE = "approvals:create"
    APPROVALS_LIST = "approvals:list"
    APPROVALS_REVOKE = "approvals:revoke"
    DECISIONS_LIST = "decisions:list"


WILDCARD = "*"

# The most subjects one ``POST /v1/authorize/batch`` may ask about (the contract's maxItems).
MAX_SUBJECTS = 10_000
