"""The decision tables (SQL): decision rows, the communities each one touched, and reads of them.

Not to be confused with ``core/decision_record.py`` (the pure values a decision row is built
from) or ``services/decisions.py`` (the ``GET /v1/decisions/{id}`` use case). The authorize
hot path inserts its rows in bulk through ``storage/bulk.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, select
from sqlalchemy.orm import Session

from consent_service.storage import bulk_insert
from consent_service.storage.models import Decision, DecisionCommunity


def add(session: Session, decision: Decision, communities: list[str]) -> None:
    session.add(decision)
    session.flush()
    if communities:
        session.add_all(
            DecisionCommunity(decision_id=decision.id, community_id=cid, at=decision.at)
            for cid in communities
        )
        session.flush()


def add_many(
    session: Session, decisions: Sequence[Mapping[str, Any]], links: Sequence[Mapping[str, Any]]
) -> None:
    """Insert a batch's decision rows and decision_community rows (dicts of every column's value)
    with one statement per table: ``COPY`` on PostgreSQL, one driver ``executemany`` on SQLite
    (``bulk_insert.insert``; each distinct JSON value serialized once). A single decision goes
    through ``bulk.add_decisions``."""
    bulk_insert.insert(session, Decision.__table__, decisions)
    bulk_insert.insert(session, DecisionCommunity.__table__, links)


def get(session: Session, decision_id: str) -> Decision | None:
    return session.get(Decision, decision_id)


def communities_of(session: Session, decision_id: str) -> list[str]:
    """The communities whose members a decision touched (the subject's, when it was made)."""
    return list(
        session.scalars(
            select(DecisionCommunity.community_id)
            .where(DecisionCommunity.decision_id == decision_id)
            .order_by(DecisionCommunity.community_id)
        )
    )


def for_subject(session: Session, subject_key: str) -> list[Decision]:
    return list(
        session.scalars(
            select(Decision).where(Decision.subject_key == subject_key).order_by(Decision.at, Decision.id)
        )
    )


def _touching(community_id: str, *, since: datetime | None, until: datetime | None) -> Any:
    """Join condition: decisions that touched the community's members in [since, until)."""
    where: list[Any] = [
        DecisionCommunity.decision_id == Decision.id,
        DecisionCommunity.community_id == community_id,
    ]
    if since is not None:
        where.append(DecisionCommunity.at >= since)
    if until is not None:
        where.append(DecisionCommunity.at < until)
    return and_(*where)


def for_community(
    session: Session, community_id: str, *, since: datetime | None, until: datetime | None, limit: int
) -> list[Decision]:
    """The newest ``limit`` decisions that touched the community's members."""
    query = select(Decision).join(DecisionCommunity, _touching(community_id, since=since, until=until))
    return list(session.scalars(query.order_by(DecisionCommunity.at.desc(), Decision.id).limit(limit)))


def community_counts(
    session: Session, community_id: str, *, since: datetime | None, until: datetime | None
) -> dict[str, dict[str, int]]:
    """How many of those decisions there were, by requester, by purpose and by outcome (no limit)."""
    touching = _touching(community_id, since=since, until=until)
    counts: dict[str, dict[str, int]] = {}
    for name, column in (
        ("requester", Decision.requester),
        ("purpose", Decision.purpose),
        ("outcome", Decision.outcome),
    ):
        rows = session.execute(
            select(column, func.count()).join(DecisionCommunity, touching).group_by(column).order_by(column)
        )
        counts[name] = {value: number for value, number in rows}
    return counts


def community_history(
    session: Session, community_id: str, *, start: datetime, outcome: str | None = None, batch: int = 1000
) -> Iterator[Row[Any]]:
    """(at, requester, purpose, data_categories, outcome, reasons) of each decision that touched
    the community's members from ``start`` on, oldest first, streamed in batches.

    Never the subject: what a community sees of its members' decisions has no identity in it.
    """
    where: list[Any] = [
        DecisionCommunity.decision_id == Decision.id,
        DecisionCommunity.community_id == community_id,
        DecisionCommunity.at >= start,
    ]
    query = (
        select(
            Decision.at,
            Decision.requester,
            Decision.purpose,
            Decision.data_categories,
            Decision.outcome,
            Decision.reasons,
        )
        .join(DecisionCommunity, and_(*where))
        .order_by(DecisionCommunity.at, Decision.id)
    )
    if outcome is not None:
        query = query.where(Decision.outcome == outcome)
    yield from session.execute(query.execution_options(yield_per=batch))
