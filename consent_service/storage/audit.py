"""The audit chain's SQL (no rules here): appending at the head under a row lock, and reading
entries (in full for verification, by page for export, by object). Repositories never commit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from consent_service.storage import bulk, bulk_insert
from consent_service.storage.models import AuditEntry, AuditHead

HEAD_ID = 1
Hasher = Callable[..., str]


def append(
    session: Session,
    *,
    hasher: Hasher,
    at: datetime,
    tag: str,
    actor_org: str | None,
    actor_client: str | None,
    object_id: str | None,
    payload: dict[str, Any],
) -> int:
    """Add one entry at the head, under a row lock on the head, so writers never fork the chain.

    Called last in a unit of work, so the lock is held only until the commit that follows.
    """
    row = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID).with_for_update()
    ).one()
    seq = row.seq + 1
    digest = hasher(
        prev_hash=row.hash,
        seq=seq,
        at=at,
        tag=tag,
        actor_org=actor_org,
        actor_client=actor_client,
        object_id=object_id,
        payload=payload,
    )
    session.execute(
        insert(AuditEntry).values(
            seq=seq,
            at=at,
            tag=tag,
            actor_org=actor_org,
            actor_client=actor_client,
            object_id=object_id,
            payload=payload,
            prev_hash=row.hash,
            hash=digest,
        )
    )
    session.execute(update(AuditHead).where(AuditHead.id == HEAD_ID).values(seq=seq, hash=digest))
    return seq


_HEAD_FOR_UPDATE = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID).with_for_update()
_MOVE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def append_many(session: Session, *, hasher: Hasher, entries: list[dict[str, Any]]) -> int:
    """Add several entries at the head in one statement, linked in the order given.

    Each entry is a dict of ``at, tag, actor_org, actor_client, object_id, payload``. Same lock,
    same links as calling :func:`append` once per entry; returns the last sequence number.
    Statements are built once and run on the session's connection (Core): the authorize path
    calls this on every decision.
    """
    return _append_linked(session, hasher, entries, bulk.insert_rows)


def append_serialized(session: Session, *, hasher: Hasher, entries: list[dict[str, Any]]) -> int:
    """:func:`append_many` for entries whose ``payload`` is its canonical JSON text already
    (``audit_chain.canonical_text``; ``hasher`` takes it as such): that text is hashed into the
    link and stored as it is, and the rows go in with ``COPY`` on PostgreSQL (a bulk import's
    thousands of entries). Same lock, same links; returns the last sequence number."""
    return _append_linked(
        session,
        hasher,
        entries,
        lambda s, table, rows: bulk_insert.insert(s, table, rows, serialized=("payload",)),
    )


def _append_linked(
    session: Session,
    hasher: Hasher,
    entries: list[dict[str, Any]],
    write: Callable[[Session, Any, list[dict[str, Any]]], None],
) -> int:
    """Lock the head, link ``entries`` after it in order, ``write`` their rows, move the head."""
    conn = session.connection()
    row = conn.execute(_HEAD_FOR_UPDATE).one()
    seq, prev = row.seq, row.hash
    if not entries:
        return int(seq)
    rows = []
    for entry in entries:
        seq += 1
        digest = hasher(prev_hash=prev, seq=seq, **entry)
        rows.append({**entry, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    write(session, AuditEntry.__table__, rows)
    conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
    return int(seq)


def head(session: Session) -> tuple[int, str]:
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID)).one()
    return int(row.seq), str(row.hash)


def entries(session: Session, *, batch: int = 100) -> Iterator[AuditEntry]:
    """Every entry in sequence order, read in pages so a long chain does not fill memory (100
    entries a page: one entry of a 10,000-subject batch authorize holds ~1.2 MB of namings)."""
    after = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def entries_for(session: Session, *, object_id: str) -> list[AuditEntry]:
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.object_id == object_id).order_by(AuditEntry.seq))
    )


def entries_about(session: Session, *, tag: str, object_ids: list[str]) -> list[AuditEntry]:
    """Entries of ``tag`` about any of ``object_ids``, in chain order (object_id is indexed)."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_id.in_(object_ids), AuditEntry.tag == tag)
            .order_by(AuditEntry.seq)
        )
    )


def page(session: Session, *, after: int, limit: int) -> list[AuditEntry]:
    """Up to ``limit`` entries with ``seq > after``, in sequence order (a keyset page, for export)."""
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit)
        )
    )


def at(session: Session, seq: int) -> AuditEntry | None:
    return session.get(AuditEntry, seq)


def has_tag(session: Session, tag: str) -> bool:
    return session.execute(select(AuditEntry.seq).where(AuditEntry.tag == tag).limit(1)).first() is not None
