"""The change-event tables (SQL): webhooks, the outbox, delivery attempts, expiry notices, and
the decision-log questions that find an event's receivers (each bounded: an index seek per
registered receiver, never a scan of a subject's decisions)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, select, update
from sqlalchemy.orm import Session

from consent_service.storage.models import (
    Agreement,
    AgreementLapseNotice,
    Approval,
    Consent,
    ConsentExpiryNotice,
    ConsentVersion,
    Decision,
    DecisionCommunity,
    DeliveryAttempt,
    Duty,
    OutboxEvent,
    Webhook,
)

PERMIT = "permit"


def add(session: Session, *rows: Any) -> None:
    session.add_all(rows)
    session.flush()


def webhooks_of(session: Session, organization: str) -> list[Webhook]:
    return list(
        session.scalars(
            select(Webhook)
            .where(Webhook.organization_id == organization, Webhook.deleted_at.is_(None))
            .order_by(Webhook.created_at, Webhook.id)
        )
    )


def webhook(session: Session, webhook_id: str) -> Webhook | None:
    return session.get(Webhook, webhook_id)


def subscribed(session: Session, kind: str, organizations: Iterable[str] | None = None) -> list[Webhook]:
    """Live webhooks wanting ``kind`` (of ``organizations`` only, if given). Few rows: the
    organizations that registered one; the kind is filtered here (a JSON list)."""
    query = select(Webhook).where(Webhook.deleted_at.is_(None))
    if organizations is not None:
        query = query.where(Webhook.organization_id.in_(list(organizations)))
    return [w for w in session.scalars(query.order_by(Webhook.id)) if kind in w.kinds]


def permits_on_consent_query(consent_id: str, requester: str, limit: int) -> Select[tuple[str]]:
    """The ids of permits ``requester`` got on the consent: a seek on ix_decision_consent_requester."""
    return (
        select(Decision.id)
        .where(Decision.consent_id == consent_id, Decision.requester == requester, Decision.outcome == PERMIT)
        .limit(limit)
    )


def permits_on_consent(session: Session, consent_id: str, requester: str, limit: int) -> list[str]:
    """Up to ``limit`` of them."""
    return list(session.scalars(permits_on_consent_query(consent_id, requester, limit)))


def received_permit_touching(session: Session, community_id: str, requester: str, since: datetime) -> bool:
    """Whether ``requester`` received a permit since ``since`` for a member of the community
    (ix_decision_requester_at over the window, then the primary key of decision_community)."""
    touching = exists().where(
        DecisionCommunity.decision_id == Decision.id, DecisionCommunity.community_id == community_id
    )
    query = select(Decision.id).where(
        Decision.requester == requester, Decision.at >= since, Decision.outcome == PERMIT, touching
    )
    return session.execute(query.limit(1)).first() is not None


def expired_unnoticed(
    session: Session, *, now: datetime, since: datetime, limit: int
) -> list[tuple[str, int]]:
    """(consent id, version) of unrevoked consents whose current version expired in [since, now]
    and whose expiry has not been turned into events yet (ix_consent_version_expires_at)."""
    noticed = exists().where(
        ConsentExpiryNotice.consent_id == ConsentVersion.consent_id,
        ConsentExpiryNotice.version == ConsentVersion.version,
    )
    query = (
        select(ConsentVersion.consent_id, ConsentVersion.version)
        .join(
            Consent,
            and_(Consent.id == ConsentVersion.consent_id, Consent.current_version == ConsentVersion.version),
        )
        .where(
            ConsentVersion.expires_at.is_not(None),
            ConsentVersion.expires_at <= now,  # type: ignore[operator]
            ConsentVersion.expires_at >= since,  # type: ignore[operator]
            Consent.status == "active",
            ~noticed,
        )
        .order_by(ConsentVersion.expires_at)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def reviews_lapsed_unnoticed(
    session: Session, *, now: datetime, since: datetime, limit: int
) -> list[tuple[str, str, datetime]]:
    """(agreement id, community id, review date) of agreements whose review date passed in
    [since, now] unrenewed and whose lapse has not been turned into events yet."""
    noticed = exists().where(
        AgreementLapseNotice.agreement_id == Agreement.id,
        AgreementLapseNotice.due_at == Agreement.review_at,
        AgreementLapseNotice.duty_id == "",
    )
    query = (
        select(Agreement.id, Agreement.community_id, Agreement.review_at)
        .where(Agreement.review_at <= now, Agreement.review_at >= since, ~noticed)
        .order_by(Agreement.review_at, Agreement.id)
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in session.execute(query)]


def duties_overdue_unnoticed(
    session: Session, *, now: datetime, since: datetime, limit: int
) -> list[tuple[str, str, datetime, str, str]]:
    """(agreement id, community id, due date, duty id, owed by) of unmet duties that fell due in
    [since, now] and have not been turned into events yet."""
    noticed = exists().where(AgreementLapseNotice.duty_id == Duty.id)
    query = (
        select(Duty.agreement_id, Duty.community_id, Duty.due_at, Duty.id, Duty.owed_by)
        .where(
            Duty.met_at.is_(None),
            Duty.due_at <= now,
            Duty.due_at >= since,
            ~noticed,
        )
        .order_by(Duty.due_at, Duty.id)
        .limit(limit)
    )
    return [(row[0], row[1], row[2], row[3], row[4]) for row in session.execute(query)]


def approvals_held(
    session: Session, community_id: str, *, agreement_id: str | None = None, requester: str | None = None
) -> list[tuple[str, str]]:
    """(approval id, requester) of the community's unrevoked approvals under ``agreement_id``,
    or given to ``requester`` (the approvals a lapse holds)."""
    query = select(Approval.id, Approval.requester).where(
        Approval.community_id == community_id,
        Approval.revoked_at.is_(None),
    )
    if agreement_id is not None:
        query = query.where(Approval.agreement_id == agreement_id)
    if requester is not None:
        query = query.where(Approval.requester == requester)
    return [(row[0], row[1]) for row in session.execute(query.order_by(Approval.id))]


def claim_due(session: Session, *, now: datetime, lease_until: datetime, limit: int) -> list[OutboxEvent]:
    """Take up to ``limit`` due events for this deliverer: their ``next_attempt_at`` moves to
    ``lease_until`` and ``attempts`` counts the try, in the caller's write transaction.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent deliverers take different rows;
    SQLite: the write transaction is the database's only writer. Either way a claimed row is
    not due again until its lease ends, and a deliverer killed mid-send leaves it to be sent
    again then (at least once; ``delivered_at`` rows are never claimed).
    """
    query = (
        select(OutboxEvent)
        .join(Webhook, Webhook.id == OutboxEvent.webhook_id)
        .where(
            OutboxEvent.delivered_at.is_(None),
            OutboxEvent.next_attempt_at <= now,
            Webhook.deleted_at.is_(None),
        )
        .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=OutboxEvent)
    rows = list(session.scalars(query))
    for row in rows:
        row.next_attempt_at = lease_until
        row.attempts += 1
    session.flush()
    return rows


def acknowledged(session: Session, event_id: str, *, at: datetime, status: int) -> bool:
    """Mark delivered (once; an event already delivered stays as it was)."""
    result = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == event_id, OutboxEvent.delivered_at.is_(None))
        .values(delivered_at=at, last_status=status, last_error=None)
    )
    return bool(result.rowcount)


def failed(session: Session, event_id: str, *, retry_at: datetime, status: int | None, error: str) -> None:
    session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == event_id, OutboxEvent.delivered_at.is_(None))
        .values(next_attempt_at=retry_at, last_status=status, last_error=error[:300])
    )


def record_attempt(session: Session, attempt: DeliveryAttempt) -> None:
    session.add(attempt)
    session.flush()


def backlog(
    session: Session, *, organization: str | None = None, community: str | None = None, limit: int
) -> list[OutboxEvent]:
    """Unacknowledged events of a receiver or of a community's changes, oldest first."""
    query = select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
    if organization is not None:
        query = query.where(OutboxEvent.organization_id == organization)
    if community is not None:
        query = query.where(OutboxEvent.community_id == community)
    return list(session.scalars(query.order_by(OutboxEvent.occurred_at, OutboxEvent.id).limit(limit)))


def backlog_count(session: Session, *, organization: str | None = None, community: str | None = None) -> int:
    query = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
    if organization is not None:
        query = query.where(OutboxEvent.organization_id == organization)
    if community is not None:
        query = query.where(OutboxEvent.community_id == community)
    return int(session.scalar(query) or 0)
