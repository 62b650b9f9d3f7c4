"""Idempotency records: which resource a keyed write produced."""

from __future__ import annotations

from sqlalchemy.orm import Session

from consent_service.storage.models import IdempotencyRecord


def get(session: Session, *, client_id: str, key: str) -> IdempotencyRecord | None:
    return session.get(IdempotencyRecord, (client_id, key))


def add(session: Session, record: IdempotencyRecord) -> None:
    session.add(record)
    session.flush()
