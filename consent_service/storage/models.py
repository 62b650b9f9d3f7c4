"""SQLModel tables: the only definition of the schema (Alembic migrations are generated from it).

Subjects are never stored raw: ``subject_key`` is an HMAC of system+value (see
``core.pseudonyms``). Consent terms, rules and approvals are append-only in effect:
a change adds a row or stamps a retirement, it never rewrites what was decided.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, MetaData, String, Text
from sqlalchemy import false as sa_false
from sqlmodel import Field, SQLModel

from consent_service.storage.types import UTCDateTime

# Constraint names must be deterministic for Alembic to alter them later (and SQLite batch
# mode needs names). Set before any table is declared.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def _ts(*, nullable: bool = False, index: bool = False, primary_key: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index, primary_key=primary_key))


def _json(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(JSON, nullable=nullable))


class Organization(SQLModel, table=True):
    __tablename__ = "organization"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    type: str = Field(max_length=32)
    created_at: datetime = _ts()


class OAuthClient(SQLModel, table=True):
    """A machine client of one organization. The secret is kept only as a hash."""

    __tablename__ = "oauth_client"

    client_id: str = Field(primary_key=True, max_length=64)
    secret_hash: str = Field(max_length=128)
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=64)
    name: str = Field(max_length=200)
    scopes: str = Field(max_length=200)  # space-separated, as in OAuth
    created_at: datetime = _ts()
    disabled_at: datetime | None = _ts(nullable=True)


class Consent(SQLModel, table=True):
    """The header of one person's consent: who recorded it and its current state.

    Terms live in :class:`ConsentVersion`; ``current_version`` points at the one in force.
    """

    __tablename__ = "consent"

    id: str = Field(primary_key=True, max_length=36)
    subject_key: str = Field(index=True, max_length=64)
    recorded_by: str = Field(foreign_key="organization.id", index=True, max_length=64)
    status: str = Field(max_length=16)  # active | revoked
    current_version: int
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)
    revoked_reason: str | None = Field(default=None, max_length=1000)


class ConsentVersion(SQLModel, table=True):
    """One immutable version of a consent's terms; an amendment adds the next one."""

    __tablename__ = "consent_version"

    consent_id: str = Field(foreign_key="consent.id", primary_key=True, max_length=36)
    version: int = Field(primary_key=True)
    purposes: list[str] = _json()
    data_categories: list[str] = _json()
    recipients: list[str] = _json()
    communities: list[str] = _json()
    expires_at: datetime | None = _ts(nullable=True, index=True)  # the expiry sweep (events)
    evidence: dict[str, Any] = _json()
    recorded_at: datetime = _ts()
    recorded_by_client: str = Field(max_length=64)
    receipt_id: str = Field(max_length=36)
    receipt: str = Field(sa_column=Column(Text, nullable=False))


class ConsentEvent(SQLModel, table=True):
    """What happened to a consent and when: recorded, amended, revoked."""

    __tablename__ = "consent_event"

    id: int | None = Field(default=None, primary_key=True)
    consent_id: str = Field(foreign_key="consent.id", index=True, max_length=36)
    kind: str = Field(max_length=16)
    version: int
    at: datetime = _ts()
    actor_org: str = Field(max_length=64)
    actor_client: str = Field(max_length=64)
    reason: str | None = Field(default=None, max_length=1000)


class Community(SQLModel, table=True):
    """A community whose governance body sets rules for its members' data.

    ``policy_version`` is bumped in the same transaction as every change to the community's
    rules, so each worker can tell at once that its compiled rules are out of date.
    """

    __tablename__ = "community"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    policy_version: int = Field(default=1)
    created_at: datetime = _ts()
    # Whether answers to requesters name this community (docs/security.md, "membership
    # disclosure"); a change bumps policy_version, as a rule change does.
    show_community_id: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # How many days its stewards give themselves to decide a data access request (``decide_by``).
    review_days: int = Field(default=30, sa_column_kwargs={"server_default": "30"})


class CommunitySteward(SQLModel, table=True):
    __tablename__ = "community_steward"

    community_id: str = Field(foreign_key="community.id", primary_key=True, max_length=64)
    organization_id: str = Field(foreign_key="organization.id", primary_key=True, max_length=64)


class Membership(SQLModel, table=True):
    """A subject's membership of a community. It belongs to the person, not to a consent:
    revoking the consent that recorded it does not end it.

    ``status``: ``pending`` (named at intake, not yet confirmed), ``confirmed`` (by a steward
    or by the person through the recording organization) or ``ended`` (the person left;
    ``ended_at`` set, and from then on no decision reads the row). NULL is a row recorded
    before memberships were confirmed (migration 0008): it reads as confirmed, and keeps
    the values the audit chain bound it with. ``id`` is the membership's own pseudonym, the
    only handle a community's stewards see (NULL for those older rows, which never need one:
    they are not waiting for anyone). Pending and confirmed rows apply the community's rules
    alike (the safe side); an ended one applies nothing.
    """

    __tablename__ = "membership"
    __table_args__ = (Index("ix_membership_id", "id", unique=True),)

    subject_key: str = Field(primary_key=True, max_length=64)
    community_id: str = Field(foreign_key="community.id", primary_key=True, max_length=64)
    consent_id: str = Field(max_length=36)
    created_at: datetime = _ts()
    id: str | None = Field(default=None, max_length=36)
    status: str | None = Field(default=None, max_length=16)  # pending | confirmed | ended
    confirmed_at: datetime | None = _ts(nullable=True)
    confirmed_by: str | None = Field(default=None, max_length=64)  # the organization
    confirmed_via: str | None = Field(default=None, max_length=16)  # community | person
    ended_at: datetime | None = _ts(nullable=True)


class StewardChange(SQLModel, table=True):
    """A proposal to add or remove one of a community's steward organizations.

    Two people decide it: a steward proposes, a different client or person of a steward
    organization confirms it before ``expires_at`` (``services.steward_changes``). Applied
    only on confirmation; a proposal nobody confirmed in time stays as it was, shown expired.
    """

    __tablename__ = "steward_change"
    __table_args__ = (Index("ix_steward_change_community", "community_id", "proposed_at"),)

    id: str = Field(primary_key=True, max_length=36)
    community_id: str = Field(foreign_key="community.id", max_length=64)
    action: str = Field(max_length=16)  # add | remove
    organization_id: str = Field(max_length=64)
    reason: str | None = Field(default=None, max_length=1000)
    proposed_at: datetime = _ts()
    proposed_by: str = Field(max_length=64)
    proposed_by_client: str = Field(max_length=64)
    expires_at: datetime = _ts()
    confirmed_at: datetime | None = _ts(nullable=True)
    confirmed_by: str | None = Field(default=None, max_length=64)
    confirmed_by_client: str | None = Field(default=None, max_length=64)


class CommunityRule(SQLModel, table=True):
    """A community's collective rule. Rules are never edited: a change adds one or retires one.

    ``created_version`` and ``retired_version`` are the community's ``policy_version`` that the
    change bumped to, so a worker holding the rules compiled at version v reads only the rules
    changed since v (``ix_community_rule_changes`` covers that question). A row without them
    (NULL: written by something that did not stamp it) counts as changed at every version and
    makes the cache compile the community in full. Editing a rule's terms in place is not a
    change the service makes or can see: retire the rule and add a new one.
    """

    __tablename__ = "community_rule"
    __table_args__ = (
        Index("ix_community_rule_community_active", "community_id", "retired_at"),
        Index(
            "ix_community_rule_changes", "community_id", "created_version", "retired_version", "retired_at"
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    community_id: str = Field(foreign_key="community.id", max_length=64)
    effect: str = Field(max_length=32)  # deny | require_approval
    purposes: list[str] = _json()
    data_categories: list[str] = _json()
    requesters: list[str] = _json()
    obligations: dict[str, Any] = _json()
    labels: list[str] = _json()
    reason: str = Field(max_length=2000)
    created_at: datetime = _ts()
    created_by: str = Field(max_length=64)
    created_by_client: str = Field(max_length=64)
    retired_at: datetime | None = _ts(nullable=True)
    retired_by: str | None = Field(default=None, max_length=64)
    retired_reason: str | None = Field(default=None, max_length=2000)
    created_version: int | None = Field(default=None)
    retired_version: int | None = Field(default=None)


class Approval(SQLModel, table=True):
    """A community's approval (data sharing agreement) that a require_approval rule asks for."""

    __tablename__ = "approval"
    __table_args__ = (Index("ix_approval_community_requester", "community_id", "requester"),)

    id: str = Field(primary_key=True, max_length=36)
    community_id: str = Field(foreign_key="community.id", max_length=64)
    requester: str = Field(max_length=64)
    purposes: list[str] = _json()
    data_categories: list[str] = _json()
    expires_at: datetime | None = _ts(nullable=True)
    notes: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _ts()
    created_by: str = Field(max_length=64)
    created_by_client: str = Field(max_length=64)
    revoked_at: datetime | None = _ts(nullable=True)
    revoked_by: str | None = Field(default=None, max_length=64)
    revoked_reason: str | None = Field(default=None, max_length=2000)
    # The data sharing agreement it is granted under (NULL: none; then no review date holds it).
    agreement_id: str | None = Field(default=None, foreign_key="agreement.id", max_length=36)
    # The data access request whose grant created it (services/access_requests.py), if any.
    access_request_id: str | None = Field(default=None, max_length=36)


class Agreement(SQLModel, table=True):
    """A community's data sharing agreement: its parties, the legal authority it rests on, its
    document, and the date by which the community must review it. The approvals granted under it
    stop permitting once that date passes without a renewal (``agreement_review_overdue``)."""

    __tablename__ = "agreement"

    id: str = Field(primary_key=True, max_length=36)
    community_id: str = Field(foreign_key="community.id", index=True, max_length=64)
    title: str = Field(max_length=200)
    parties: list[str] = _json()
    legal_authority: str = Field(max_length=2000)
    review_at: datetime = _ts()
    # The document's fingerprint and description; its bytes are in agreement_document.
    document_sha256: str | None = Field(default=None, max_length=64)
    document_name: str | None = Field(default=None, max_length=200)
    document_media_type: str | None = Field(default=None, max_length=100)
    document_size: int | None = Field(default=None)
    created_at: datetime = _ts()
    created_by: str = Field(max_length=64)
    created_by_client: str = Field(max_length=64)
    renewed_at: datetime | None = _ts(nullable=True)
    renewed_by: str | None = Field(default=None, max_length=64)


class AgreementDocument(SQLModel, table=True):
    """An agreement's uploaded document, in the database so that every instance serves the same
    bytes; its SHA-256 is on the agreement row and in the audit entry of the upload."""

    __tablename__ = "agreement_document"

    agreement_id: str = Field(foreign_key="agreement.id", primary_key=True, max_length=36)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Duty(SQLModel, table=True):
    """What a party owes the community under an agreement, by a date (return results, report
    progress, destroy data, acknowledge labels). Unmet past its date, it holds every approval
    the community gave the party (``duty_overdue``) until a steward marks it met."""

    __tablename__ = "duty"
    __table_args__ = (Index("ix_duty_community_owed_by", "community_id", "owed_by"),)

    id: str = Field(primary_key=True, max_length=36)
    agreement_id: str = Field(foreign_key="agreement.id", index=True, max_length=36)
    community_id: str = Field(foreign_key="community.id", max_length=64)
    owed_by: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    description: str = Field(max_length=2000)
    due_at: datetime = _ts()
    created_at: datetime = _ts()
    created_by: str = Field(max_length=64)
    met_at: datetime | None = _ts(nullable=True)
    met_by: str | None = Field(default=None, max_length=64)
    met_note: str | None = Field(default=None, max_length=2000)


class AccessRequest(SQLModel, table=True):
    """A requester's request to a community for access its rules refused (services/access_requests.py).

    ``status`` is what was recorded: pending, granted, refused or withdrawn. A pending request
    past ``decide_by`` is refused ("no decision by deadline") when read, and recorded so by
    ``consent-service access-requests expire``.
    """

    __tablename__ = "access_request"
    __table_args__ = (
        Index("ix_access_request_community_status", "community_id", "status"),
        Index("ix_access_request_requester", "requester"),
    )

    id: str = Field(primary_key=True, max_length=36)
    community_id: str = Field(foreign_key="community.id", max_length=64)
    requester: str = Field(max_length=64)
    filed_by_client: str = Field(max_length=64)
    rule_id: str = Field(max_length=36)
    purposes: list[str] = _json()
    data_categories: list[str] = _json()
    protocol: str = Field(max_length=10000)
    ethics_reference: str = Field(max_length=500)
    benefit_plan: str = Field(max_length=10000)
    requested_until: datetime = _ts()
    status: str = Field(max_length=16)  # pending | granted | refused | withdrawn
    filed_at: datetime = _ts()
    decide_by: datetime = _ts()
    closed_at: datetime | None = _ts(nullable=True)
    closed_by: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=2000)
    refusal_reason: str | None = Field(default=None, max_length=200)
    approval_id: str | None = Field(default=None, max_length=36)


class Decision(SQLModel, table=True):
    """Every authorize answer, permit or deny, with what produced it."""

    __tablename__ = "decision"
    __table_args__ = (
        Index("ix_decision_requester_at", "requester", "at"),
        # Change events: which organizations received a permit on a consent (services/events.py),
        # a seek per registered receiver however many decisions the subject has.
        Index("ix_decision_consent_requester", "consent_id", "requester", "outcome"),
    )

    id: str = Field(primary_key=True, max_length=36)
    at: datetime = _ts()
    requester: str = Field(max_length=64)
    client_id: str = Field(max_length=64)
    subject_key: str = Field(index=True, max_length=64)
    purpose: str = Field(max_length=64)
    data_categories: list[str] = _json()
    outcome: str = Field(max_length=8)  # permit | deny
    reasons: list[dict[str, Any]] = _json()
    obligations: list[dict[str, Any]] = _json()
    consent_id: str | None = Field(default=None, max_length=36)
    consent_version: int | None = None
    rule_ids: list[str] = _json()
    policy_versions: dict[str, int] = _json()
    # What the requester was told, where it differs from the recorded reasons above
    # (core/disclosure.py): reasons, obligations, rule_ids, policy_versions. NULL: the same.
    told: dict[str, Any] | None = _json(nullable=True)
    # The batch authorize call that made it (its ``decision:batch`` audit entry's object id);
    # NULL for a single authorize. Added by migration 0015: a digest reads it only when set.
    batch_id: str | None = Field(default=None, max_length=36)


class ConsentReview(SQLModel, table=True):
    """A consent whose meaning a release changed, listed for the organization that recorded it
    so the person can be asked again (migration 0005: sensitive categories stand alone).

    ``codes`` are what the consent no longer covers; ``audit_seq`` is the audit entry that
    recorded the listing (NULL until ``consent-service db upgrade`` has written it).
    """

    __tablename__ = "consent_review"

    consent_id: str = Field(foreign_key="consent.id", primary_key=True, max_length=36)
    reason: str = Field(primary_key=True, max_length=32)  # sensitive_categories | protected_purpose
    consent_version: int
    recorded_by: str = Field(index=True, max_length=64)
    codes: list[str] = _json()
    flagged_at: datetime = _ts()
    audit_seq: int | None = Field(default=None)


class ProtectedGrant(SQLModel, table=True):
    """A consent version granting a protected purpose the deployment allows, one row per community
    the person belonged to when it was recorded, so each community sees such grants (without any
    identity: no consent id or pseudonym is shown to the community)."""

    __tablename__ = "protected_grant"
    __table_args__ = (Index("ix_protected_grant_community_at", "community_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    community_id: str = Field(max_length=64)
    consent_id: str = Field(foreign_key="consent.id", max_length=36)
    consent_version: int
    purposes: list[str] = _json()
    recipients: list[str] = _json()
    recorded_by: str = Field(max_length=64)
    setting: str = Field(max_length=64)
    at: datetime = _ts()


class DecisionCommunity(SQLModel, table=True):
    """Which communities' members a decision touched, so a community can see them."""

    __tablename__ = "decision_community"
    __table_args__ = (Index("ix_decision_community_at", "community_id", "at"),)

    decision_id: str = Field(foreign_key="decision.id", primary_key=True, max_length=36)
    community_id: str = Field(primary_key=True, max_length=64)
    at: datetime = _ts()


class AuditEntry(SQLModel, table=True):
    """One link of the tamper-evident audit chain.

    ``hash`` = HMAC(service key, prev_hash + canonical JSON of the entry), so someone who can
    write to the database but lacks the key cannot rewrite and rehash the chain.
    """

    __tablename__ = "audit_entry"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = _ts()
    tag: str = Field(max_length=64)
    actor_org: str | None = Field(default=None, max_length=64)
    actor_client: str | None = Field(default=None, max_length=64)
    object_id: str | None = Field(default=None, index=True, max_length=64)
    payload: dict[str, Any] = _json()
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


class AuditHead(SQLModel, table=True):
    """The chain's head (one row). Appending locks it, so two writers never fork the chain."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int
    hash: str = Field(max_length=64)


class UserAccount(SQLModel, table=True):
    """A person who signs in to the web pages; belongs to one organization, like a client."""

    __tablename__ = "user_account"
    __table_args__ = (Index("ix_user_account_idp", "idp_issuer", "idp_subject", unique=True),)

    id: str = Field(primary_key=True, max_length=36)
    email: str = Field(max_length=254, sa_column_kwargs={"unique": True})
    name: str = Field(max_length=200)
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=64)
    # Empty for a person who signs in only through the identity provider: no password matches it.
    password_hash: str = Field(max_length=255)
    roles: str = Field(default="", max_length=200)  # space-separated scopes the person may use
    language: str = Field(default="en", max_length=8)
    created_at: datetime = _ts()
    disabled_at: datetime | None = _ts(nullable=True)
    failed_sign_ins: int = Field(default=0)
    locked_until: datetime | None = _ts(nullable=True)
    # Part of every session's stamp: signing out adds one, ending all of the person's sessions
    # (a signed session cookie cannot otherwise be withdrawn before it expires).
    session_epoch: int = Field(default=0)
    # The OpenID provider's account this person signs in with (issuer and ``sub``), or NULL for
    # a password account. Set when the account is made at the first sign-in, or by the
    # operator's ``users link-provider``; never found through the email (docs/security.md).
    idp_issuer: str | None = Field(default=None, max_length=255)
    idp_subject: str | None = Field(default=None, max_length=255)


class IdempotencyRecord(SQLModel, table=True):
    """The answer to a write sent with an ``Idempotency-Key``, so a retried intake is not doubled.

    Stored in the same transaction as the write it answers: either both exist or neither.
    """

    __tablename__ = "idempotency_record"

    client_id: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    status: int
    body: dict[str, Any] = _json()
    created_at: datetime = _ts()


class SubjectSystem(SQLModel, table=True):
    """An identifier system consents may be recorded under (contract v1.1 section 4): registered
    to one organization, or shared by all. ``system`` is in its normalized spelling."""

    __tablename__ = "subject_system"

    system: str = Field(primary_key=True, max_length=256)
    organization_id: str | None = Field(
        default=None, foreign_key="organization.id", index=True, max_length=64
    )
    shared: bool = Field(default=False)
    case_insensitive: bool = Field(default=False)
    created_at: datetime = _ts()
    created_by: str = Field(max_length=64)


class SubjectKeyAlias(SQLModel, table=True):
    """A subject recorded before normalization, re-keyed: ``old_key`` (of the spelling it was
    recorded under) now answers as ``new_key``. Consents and memberships were moved to the new
    key; decisions stay under the key they were made for and are found through this row."""

    __tablename__ = "subject_key_alias"

    old_key: str = Field(primary_key=True, max_length=64)
    new_key: str = Field(index=True, max_length=64)
    at: datetime = _ts()
    by_organization: str = Field(max_length=64)


class PersonAccessCode(SQLModel, table=True):
    """An access code to the person's own view (``/me``), kept only as a keyed hash.

    Issued with each consent an organization records (shown once, on its receipt) and replaced,
    for all the person's codes at that organization, when a worker makes a new one. A code
    opens what its organization may show the person (services/person.py); ``retired_at`` set:
    it opens nothing any more, and the sessions it opened end.
    """

    __tablename__ = "person_access_code"

    id: str = Field(primary_key=True, max_length=36)
    code_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    subject_key: str = Field(index=True, max_length=64)
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=64)
    consent_id: str = Field(foreign_key="consent.id", index=True, max_length=36)
    # The person was recorded under a system registered to the organization: the view shows every
    # decision about them (else only from the organization's first consent of them on, as the
    # access report does).
    whole_history: bool = Field(default=False)
    created_at: datetime = _ts()
    created_by: str = Field(max_length=64)  # the client or ``user:<id>`` that issued it
    retired_at: datetime | None = _ts(nullable=True)


class PersonAccessFailures(SQLModel, table=True):
    """Wrong access codes typed in one hour, all addresses together (no code, no address kept).

    Not bound by the audit chain: the chain gets an entry at the 1st, 10th, 100th ... failure of
    each hour (services/person.py), so a flood of guesses cannot flood the log.
    """

    __tablename__ = "person_access_failures"

    hour: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    failures: int = Field(default=0)


class Webhook(SQLModel, table=True):
    """Where an organization wants change events POSTed, and which kinds (core/events.py).
    Deleted by a stamp; its undelivered events stop being sent."""

    __tablename__ = "webhook"

    id: str = Field(primary_key=True, max_length=36)
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=64)
    url: str = Field(max_length=2000)
    kinds: list[str] = _json()
    created_at: datetime = _ts()
    created_by_client: str = Field(max_length=64)
    deleted_at: datetime | None = _ts(nullable=True)


class OutboxEvent(SQLModel, table=True):
    """One change event for one webhook, written in the transaction of the change.

    Due when ``delivered_at`` is NULL and ``next_attempt_at`` has passed; a deliverer claims it
    by moving ``next_attempt_at`` past its own timeout (a lease) in a short transaction, POSTs,
    then records the answer. ``delivered_at`` is set only on a 2xx (the receiver's
    acknowledgement) and is never cleared, so an acknowledged event is never sent again.
    """

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_due", "delivered_at", "next_attempt_at"),
        Index("ix_outbox_event_organization", "organization_id", "delivered_at"),
        Index("ix_outbox_event_community", "community_id", "delivered_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    webhook_id: str = Field(foreign_key="webhook.id", max_length=36)
    organization_id: str = Field(max_length=64)  # the receiver
    community_id: str | None = Field(default=None, max_length=64)  # a community change's community
    kind: str = Field(max_length=32)
    event: dict[str, Any] = _json()
    occurred_at: datetime = _ts()
    next_attempt_at: datetime = _ts()
    attempts: int = 0
    delivered_at: datetime | None = _ts(nullable=True)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=300)


class DeliveryAttempt(SQLModel, table=True):
    """Each POST of an event and what came back (status, or the error)."""

    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(foreign_key="outbox_event.id", index=True, max_length=36)
    at: datetime = _ts()
    status: int | None = None
    error: str | None = Field(default=None, max_length=300)
    duration_ms: int = 0


class ConsentExpiryNotice(SQLModel, table=True):
    """A consent version whose expiry the deliverer's sweep has turned into events (once)."""

    __tablename__ = "consent_expiry_notice"

    consent_id: str = Field(foreign_key="consent.id", primary_key=True, max_length=36)
    version: int = Field(primary_key=True)
    noticed_at: datetime = _ts()


class AgreementLapseNotice(SQLModel, table=True):
    """An agreement's lapse that the deliverer's sweep has turned into events (once each): its
    review date passed unrenewed (``duty_id`` empty, ``due_at`` the review date: a renewal sets a
    new date, so a later lapse is noticed again), or one of its duties went overdue unmet."""

    __tablename__ = "agreement_lapse_notice"

    agreement_id: str = Field(foreign_key="agreement.id", primary_key=True, max_length=36)
    due_at: datetime = _ts(primary_key=True)
    duty_id: str = Field(default="", primary_key=True, max_length=36)
    noticed_at: datetime = _ts()


class ConsentImportRow(SQLModel, table=True):
    """A row of an imported file that recorded a consent (services/consent_import.py).

    ``row_key`` is a keyed hash of the organization, the person's key and the row's terms: the
    same file imported again finds its rows here and records nothing twice.
    """

    __tablename__ = "consent_import_row"

    organization_id: str = Field(foreign_key="organization.id", primary_key=True, max_length=64)
    row_key: str = Field(primary_key=True, max_length=64)
    consent_id: str = Field(foreign_key="consent.id", index=True, max_length=36)
    import_id: str = Field(max_length=36)
    imported_at: datetime = _ts()
