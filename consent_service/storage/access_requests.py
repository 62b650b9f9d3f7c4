"""SQL of data access requests (``access_request``). Repositories never commit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_service.core.wire import AccessRequestStatus
from consent_service.storage.models import AccessRequest, Decision

# The most recent denials of one requester read to find the rules it was told of.
MAX_DENIALS_READ = 5000


def get(session: Session, request_id: str, *, lock: bool = False) -> AccessRequest | None:
    if lock:
        return session.scalars(
            select(AccessRequest).where(AccessRequest.id == request_id).with_for_update()
        ).one_or_none()
    return session.get(AccessRequest, request_id)


def of_requester(session: Session, requester: str) -> list[AccessRequest]:
    query = select(AccessRequest).where(AccessRequest.requester == requester)
    return list(session.scalars(query.order_by(AccessRequest.filed_at, AccessRequest.id)))


def of_community(session: Session, community_id: str) -> list[AccessRequest]:
    query = select(AccessRequest).where(AccessRequest.community_id == community_id)
    return list(session.scalars(query.order_by(AccessRequest.decide_by, AccessRequest.id)))


def overdue(session: Session, now: datetime) -> list[AccessRequest]:
    """Pending requests whose deadline has passed, locked for the writer that records them."""
    query = (
        select(AccessRequest)
        .where(AccessRequest.status == str(AccessRequestStatus.PENDING), AccessRequest.decide_by <= now)
        .order_by(AccessRequest.decide_by, AccessRequest.id)
        .with_for_update()
    )
    return list(session.scalars(query))


def rule_ids_told(session: Session, requester: str) -> Iterator[str]:
    """The rule ids the requester's recent denials told it (what it was told, not the truth)."""
    query = (
        select(Decision.rule_ids, Decision.told)
        .where(Decision.requester == requester, Decision.outcome == "deny")
        .order_by(Decision.at.desc())
        .limit(MAX_DENIALS_READ)
    )
    for rule_ids, told in session.execute(query):
        yield from (told or {}).get("rule_ids", rule_ids) if told else rule_ids
