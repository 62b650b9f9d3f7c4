"""Reading the audit chain page by page for export. Repositories never commit."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_service.storage.models import AuditEntry


def page(session: Session, *, after: int, limit: int) -> list[AuditEntry]:
    """Up to ``limit`` entries with ``seq > after``, in sequence order (a keyset page)."""
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit)
        )
    )


def at(session: Session, seq: int) -> AuditEntry | None:
    return session.get(AuditEntry, seq)
