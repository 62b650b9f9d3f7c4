"""Many rows into one table in one statement: ``COPY ... FROM STDIN`` on PostgreSQL (psycopg's
``cursor.copy``), one driver ``executemany`` on SQLite, else ``bulk.insert_rows``. For the bulk
import of consents and its audit entries. Repositories never commit.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent_service.storage.bulk import insert_rows


def insert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    autoincrement: bool = False,
    serialized: Collection[str] = (),
) -> None:
    """Insert ``rows`` (dicts of column values) in the session's transaction.

    ``autoincrement``: the table's integer key is left to the database (not in the rows).
    ``serialized``: JSON columns whose values are given as JSON text already (stored as given).
    Any other JSON value is serialized once per distinct object (rows share their lists).
    """
    if not rows:
        return
    conn = session.connection()
    try:
        _insert(session, table, rows, autoincrement=autoincrement, serialized=serialized)
    except conn.dialect.loaded_dbapi.IntegrityError as exc:
        # The driver's own error (these statements bypass SQLAlchemy's wrapping), raised as the
        # one a caller expects from a write: a key another transaction committed first.
        raise IntegrityError(f'INSERT INTO "{table.name}"', None, exc) from exc


def _insert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    autoincrement: bool,
    serialized: Collection[str],
) -> None:
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        _insert_sqlite(session, table, rows, autoincrement=autoincrement, serialized=serialized)
        return
    if conn.dialect.name != "postgresql":
        insert_rows(session, table, rows)
        return
    columns = [c for c in table.columns if not (autoincrement and c.primary_key)]
    json_columns = {c.name for c in columns if isinstance(c.type, JSON) and c.name not in serialized}
    names = [c.name for c in columns]
    raw = conn.connection.driver_connection
    memo: dict[int, str] = {}

    def value(name: str, v: Any) -> Any:
        if v is None or name not in json_columns:
            return v
        dumped = memo.get(id(v))
        if dumped is None:
            dumped = memo[id(v)] = json.dumps(v)
        return dumped

    quoted = ", ".join(f'"{n}"' for n in names)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([value(n, row.get(n)) for n in names])


def _insert_sqlite(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    autoincrement: bool,
    serialized: Collection[str],
) -> None:
    """One ``executemany`` on the driver's connection, in the session's transaction: each value
    converted by its column type's own bind processor (SQLAlchemy's, so stored exactly as the
    ORM would store it), once per distinct object (an import's rows share their timestamp and
    their code lists); JSON serialized as ``bulk.insert_rows`` does (None stays SQL NULL)."""
    conn = session.connection()
    columns = [c for c in table.columns if not (autoincrement and c.primary_key)]
    processors: list[Any] = []
    for c in columns:
        if c.name in serialized:
            processors.append(None)
        elif isinstance(c.type, JSON):
            processors.append(json.dumps)
        else:
            processors.append(c.type._cached_bind_processor(conn.dialect))
    converted = [(i, process) for i, process in enumerate(processors) if process is not None]
    names_of = [c.name for c in columns]
    memo: dict[tuple[int, int], Any] = {}
    keep: list[Any] = []  # the converted objects stay alive, so no id is reused meanwhile
    values: list[list[Any]] = []
    for row in rows:
        one = [row.get(name) for name in names_of]
        for i, process in converted:
            v = one[i]
            if v is None:
                continue
            slot = (i, id(v))
            done = memo.get(slot)
            if done is None:
                done = memo[slot] = process(v)
                keep.append(v)
            one[i] = done
        values.append(one)
    names = ", ".join(f'"{c.name}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    raw = conn.connection.driver_connection
    raw.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', values)
