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
    DECISION_BATCH = "decision:batch"  # one entry per batch authorize, binding all its decisions
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
    STEWARD_CHANGE_PROPOSED = "steward_change:proposed"
    STEWARD_CHANGE_CONFIRMED = "steward_change:confirmed"
    MEMBERSHIPS_CONFIRMED = "memberships:confirmed"  # by a steward, in bulk (pseudonymous ids)
    MEMBERSHIP_CONFIRMED = "membership:confirmed"  # by the person, through the recording organization
    MEMBERSHIP_ENDED = "membership:ended"
    # A community's data sharing agreements and the duties they carry (the document's SHA-256
    # is in the entry of its upload).
    AGREEMENT_CREATED = "agreement:created"
    AGREEMENT_RENEWED = "agreement:renewed"
    AGREEMENT_DOCUMENT_ATTACHED = "agreement:document_attached"
    DUTY_ADDED = "duty:added"
    DUTY_MET = "duty:met"
    # Data access requests (services/access_requests.py): filed by a requester, granted or
    # refused by a steward (a grant also writes approval:granted), withdrawn by the requester,
    # and refused for want of a decision by the deadline (recorded by the operator's command).
    ACCESS_REQUEST_FILED = "access_request:filed"
    ACCESS_REQUEST_GRANTED = "access_request:granted"
    ACCESS_REQUEST_REFUSED = "access_request:refused"
    ACCESS_REQUEST_WITHDRAWN = "access_request:withdrawn"
    ACCESS_REQUEST_EXPIRED = "access_request:expired"
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
    STEWARDS_LIST = "stewards:list"
    STEWARDS_CHANGE = "stewards:change"
    CLIENTS_CREATE = "clients:create"
    MEMBERSHIPS_LIST = "memberships:list"
    MEMBERSHIPS_CONFIRM = "memberships:confirm"
    AGREEMENTS_CREATE = "agreements:create"
    AGREEMENTS_LIST = "agreements:list"
    AGREEMENTS_CHANGE = "agreements:change"
    ACCESS_REQUESTS_LIST = "access_requests:list"
    ACCESS_REQUESTS_DECIDE = "access_requests:decide"


class DutyKind(StrEnum):
    """What an agreement's party owes the community (issue 14: the benefit-sharing loop)."""

    RETURN_RESULTS = "return_results"
    PROGRESS_REPORT = "progress_report"
    DESTROY_DATA = "destroy_data"
    ACKNOWLEDGE_LABELS = "acknowledge_labels"
    OTHER = "other"


class StewardChangeAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class MembershipStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    ENDED = "ended"


class AccessRequestStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    REFUSED = "refused"  # by a steward, or no decision by the deadline
    WITHDRAWN = "withdrawn"


# The refusal reason of a request nobody decided by its ``decide_by``.
NO_DECISION_BY_DEADLINE = "no decision by deadline"


WILDCARD = "*"

# The most subjects one ``POST /v1/authorize/batch`` may ask about (the contract's maxItems).
MAX_SUBJECTS = 10_000
