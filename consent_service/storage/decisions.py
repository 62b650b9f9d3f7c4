"""Recorded decisions and what a community may see of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Decision, DecisionCommunity


def add(session: Session, decision: Decision, communities: list[str]) -> None:
    session.add(decision)
    session.flush()
    if communities:
        session.add_all(DecisionCommunity(decision_id=decision.id, community_id=cid, at=decision.at)
                        for cid in communities)
        session.flush()


def get(session: Session, decision_id: str) -> Decision | None:
    return session.get(Decision, decision_id)


def for_subject(session: Session, subject_key: str) -> list[Decision]:
    return list(session.scalars(select(Decision).where(Decision.subject_key == subject_key)
                                .order_by(Decision.at, Decision.id)))


def for_community(session: Session, community_id: str, *, since: datetime | None, until: datetime | None,
                  limit: int) -> list[Decision]:
    query = (select(Decision).join(DecisionCommunity, DecisionCommunity.decision_id == Decision.id)
             .where(DecisionCommunity.community_id == community_id))
    if since is not None:
        query = query.where(DecisionCommunity.at >= since)
    if until is not None:
        query = query.where(DecisionCommunity.at < until)
    return list(session.scalars(query.order_by(DecisionCommunity.at.desc(), Decision.id).limit(limit)))
