"""Consents, their versions and events. Lookups by subject go through the subject_key index."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from consent_service.storage import audit_rows
from consent_service.storage.models import Consent, ConsentEvent, ConsentVersion, ProtectedGrant


def get(session: Session, consent_id: str) -> Consent | None:
    return session.get(Consent, consent_id)


def version(session: Session, consent_id: str, number: int) -> ConsentVersion | None:
    return session.get(ConsentVersion, (consent_id, number))


def versions(session: Session, consent_id: str) -> list[ConsentVersion]:
    return list(
        session.scalars(
            select(ConsentVersion)
            .where(ConsentVersion.consent_id == consent_id)
            .order_by(ConsentVersion.version)
        )
    )


def events(session: Session, consent_id: str) -> list[ConsentEvent]:
    return list(
        session.scalars(
            select(ConsentEvent).where(ConsentEvent.consent_id == consent_id).order_by(ConsentEvent.id)
        )
    )


def add(session: Session, *rows: Consent | ConsentVersion | ConsentEvent | ProtectedGrant) -> None:
    session.add_all(rows)
    session.flush()
    audit_rows.added_rows(session, *rows)


def advance_version(session: Session, *, consent_id: str, expected: int, at: datetime) -> bool:
    """Point the consent at version ``expected + 1`` if nobody else moved it first.

    The compare-and-set is what makes two simultaneous amendments end with one winner.
    """
    audit_rows.changing(session, Consent, consent_id)
    result = session.execute(
        update(Consent)
        .where(Consent.id == consent_id, Consent.current_version == expected, Consent.status == "active")
        .values(current_version=expected + 1, updated_at=at)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def mark_revoked(session: Session, *, consent_id: str, at: datetime, reason: str | None) -> bool:
    audit_rows.changing(session, Consent, consent_id)
    result = session.execute(
        update(Consent)
        .where(Consent.id == consent_id, Consent.status == "active")
        .values(status="revoked", revoked_at=at, revoked_reason=reason, updated_at=at)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def for_subject(session: Session, subject_key: str, *, recorded_by: str | None = None) -> list[Consent]:
    query = select(Consent).where(Consent.subject_key == subject_key).order_by(Consent.created_at)
    if recorded_by is not None:
        query = query.where(Consent.recorded_by == recorded_by)
    return list(session.scalars(query))
