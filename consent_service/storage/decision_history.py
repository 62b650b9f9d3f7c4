"""Recorded decisions about a community's members, read in bulk for replay and charts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, select
from sqlalchemy.orm import Session

from consent_service.storage.models import Decision, DecisionCommunity


def since(
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
