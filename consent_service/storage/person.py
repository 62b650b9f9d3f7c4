"""The person's access codes (kept as keyed hashes) and the hourly count of wrong ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from consent_service.storage import audit_rows
from consent_service.storage.models import PersonAccessCode, PersonAccessFailures


def add(session: Session, row: PersonAccessCode) -> None:
    session.add(row)
    session.flush()
    audit_rows.added_rows(session, row)


def by_hash(session: Session, code_hash: str) -> PersonAccessCode | None:
    """The code whose keyed hash this is (retired or not): one look-up in a unique index."""
    return session.scalars(select(PersonAccessCode).where(PersonAccessCode.code_hash == code_hash)).first()


def get(session: Session, code_id: str) -> PersonAccessCode | None:
    return session.get(PersonAccessCode, code_id)


def is_current(session: Session, code_id: str) -> bool:
    row = session.get(PersonAccessCode, code_id)
    return row is not None and row.retired_at is None


def retire_all(session: Session, *, subject_key: str, organization: str, at: datetime) -> list[str]:
    """Retire every current code of the person at this organization; the ids retired."""
    ids = list(
        session.scalars(
            select(PersonAccessCode.id)
            .where(
                PersonAccessCode.subject_key == subject_key,
                PersonAccessCode.organization_id == organization,
                PersonAccessCode.retired_at.is_(None),
            )
            .order_by(PersonAccessCode.id)
        )
    )
    for code_id in ids:
        audit_rows.changing(session, PersonAccessCode, code_id)
    if ids:
        session.execute(update(PersonAccessCode).where(PersonAccessCode.id.in_(ids)).values(retired_at=at))
    return ids


def count_failure(session: Session, hour: datetime) -> int:
    """Add one to the hour's count of wrong codes (one statement, safe under concurrency); the new count."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = PersonAccessFailures.__table__
    statement = (
        insert(table)
        .values(hour=hour, failures=1)
        .on_conflict_do_update(index_elements=["hour"], set_={"failures": table.c.failures + 1})
        .returning(table.c.failures)
    )
    return int(session.execute(statement).scalar_one())


def latest(session: Session, *, subject_key: str, organization: str) -> PersonAccessCode | None:
    """The person's most recent code at this organization, retired or not."""
    return session.scalars(
        select(PersonAccessCode)
        .where(PersonAccessCode.subject_key == subject_key, PersonAccessCode.organization_id == organization)
        .order_by(PersonAccessCode.created_at.desc(), PersonAccessCode.id.desc())
        .limit(1)
    ).first()
