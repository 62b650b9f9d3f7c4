"""The reads and writes of a bulk import and export of consents. Repositories never commit.

Rows are written with one statement per table: on PostgreSQL through ``COPY ... FROM STDIN``
(psycopg's ``cursor.copy``), elsewhere one ``executemany`` (``storage.bulk_insert``).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Row, Table, func, select, text
from sqlalchemy.orm import Session

from consent_service.storage import bulk_insert
from consent_service.storage.bulk import chunked
from consent_service.storage.models import (
    Consent,
    ConsentEvent,
    ConsentImportRow,
    ConsentVersion,
    Decision,
    Membership,
    Organization,
)


def owned_consents(session: Session, organization: str, ids: Sequence[str]) -> set[str]:
    """Of ``ids``, those of consents ``organization`` recorded."""
    found: set[str] = set()
    for chunk in chunked(list(dict.fromkeys(ids))):
        found.update(
            session.scalars(
                select(Consent.id).where(Consent.id.in_(chunk), Consent.recorded_by == organization)
            )
        )
    return found


def imported_keys(session: Session, organization: str, keys: Sequence[str]) -> set[str]:
    """Of ``keys``, the row keys an earlier import of ``organization`` recorded."""
    found: set[str] = set()
    for chunk in chunked(list(keys)):
        found.update(
            session.scalars(
                select(ConsentImportRow.row_key).where(
                    ConsentImportRow.organization_id == organization, ConsentImportRow.row_key.in_(chunk)
                )
            )
        )
    return found


def organization_name(session: Session, organization: str) -> str:
    name = session.scalar(select(Organization.name).where(Organization.id == organization))
    return name if name is not None else organization


def memberships_of(session: Session, subject_keys: Iterable[str]) -> dict[str, dict[str, bool]]:
    """subject_key -> {community: whether the membership is current} for every membership row of
    the subject, ended ones too: none is added again (only the person rejoins), and an ended one
    is told nothing (as ``communities.memberships_with_versions`` for a consent recorded alone)."""
    found: dict[str, dict[str, bool]] = defaultdict(dict)
    for chunk in chunked(sorted(set(subject_keys))):
        for key, community, ended_at in session.execute(
            select(Membership.subject_key, Membership.community_id, Membership.ended_at).where(
                Membership.subject_key.in_(chunk)
            )
        ):
            found[key][community] = ended_at is None
    return found


def next_event_ids(session: Session, count: int) -> list[int]:
    """``count`` new ``consent_event`` ids, known before the insert (the audit entries name them).

    PostgreSQL: drawn from the column's sequence. SQLite: after the largest, which is safe as
    the writer holds the database until its commit.
    """
    if count == 0:
        return []
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence('consent_event', 'id')) FROM generate_series(1, :n)"),
            {"n": count},
        )
        return [int(r[0]) for r in rows]
    top = conn.execute(select(func.coalesce(func.max(ConsentEvent.id), 0))).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))


ANALYZE_AFTER = 1000  # rows written to consent_import_row at once (PostgreSQL)


def insert(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, autoincrement: bool = False
) -> None:
    """Insert ``rows`` (dicts of column values): ``COPY`` on PostgreSQL, else one executemany
    (``bulk_insert.insert``; ``autoincrement``: the integer key is left to the database)."""
    bulk_insert.insert(session, table, rows, autoincrement=autoincrement)
    _analyze(session, table, len(rows))


@contextlib.contextmanager
def inserting(session: Session, writes: bulk_insert.Writes) -> Iterator[bulk_insert.Later]:
    """``insert`` of each ``(table, rows)`` in order while the block runs, and of those the block
    hands to the function it is given (``bulk_insert.meanwhile``: the block must not use the
    session)."""
    handed = list(writes)

    def later(table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        handed.append((table, rows))
        more(table, rows)

    with bulk_insert.meanwhile(session, writes) as more:
        yield later
    for table, rows in handed:
        _analyze(session, table, len(rows))


def _analyze(session: Session, table: Table, count: int) -> None:
    conn = session.connection()
    if (
        table.name == ConsentImportRow.__tablename__
        and count >= ANALYZE_AFTER
        and conn.dialect.name == "postgresql"
    ):
        # The next import looks its rows up by key: without statistics (a table that was small
        # when last analyzed) PostgreSQL scans the table once per chunk of keys, and a re-run
        # of a 20,000-row file took 12 s instead of a fraction of one. The sample needed for
        # that is small (10 for the default 100: 5 ms instead of 30 for 20,000 rows).
        conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
        conn.exec_driver_sql(f'ANALYZE "{table.name}"')
        conn.exec_driver_sql("SET LOCAL default_statistics_target TO DEFAULT")


# -- export ----------------------------------------------------------------------------------------

PAGE = 500


def consents_of(session: Session, organization: str) -> Iterator[tuple[Consent, ConsentVersion]]:
    """Every consent ``organization`` recorded with its current version, in id order, read in
    keyset pages (memory stays bounded whatever the number)."""
    after = ""
    while True:
        page = session.execute(
            select(Consent, ConsentVersion)
            .join(
                ConsentVersion,
                (ConsentVersion.consent_id == Consent.id)
                & (ConsentVersion.version == Consent.current_version),
            )
            .where(Consent.recorded_by == organization, Consent.id > after)
            .order_by(Consent.id)
            .limit(PAGE)
        ).all()
        if not page:
            return
        yield from page
        session.expunge_all()
        after = page[-1][0].id


def decisions_about(session: Session, organization: str) -> Iterator[Row[Any]]:
    """The decisions that read a consent ``organization`` recorded, in id order, in pages."""
    after = ""
    while True:
        page = session.execute(
            select(
                Decision.id,
                Decision.at,
                Decision.requester,
                Decision.purpose,
                Decision.data_categories,
                Decision.outcome,
                Decision.consent_id,
                Decision.consent_version,
            )
            .join(Consent, Consent.id == Decision.consent_id)
            .where(Consent.recorded_by == organization, Decision.id > after)
            .order_by(Decision.id)
            .limit(PAGE)
        ).all()
        if not page:
            return
        yield from page
        after = page[-1].id
