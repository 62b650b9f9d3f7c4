"""Many rows into one table in one statement: ``COPY ... FROM STDIN`` on PostgreSQL (psycopg's
``cursor.copy``), one driver ``executemany`` on SQLite, else ``bulk.insert_rows``. For the bulk
import of consents and its audit entries. Repositories never commit.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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
    with _integrity(session.connection()):
        _insert(session, table, rows, autoincrement=autoincrement, serialized=serialized)


Writes = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]
Later = Callable[[Table, Sequence[Mapping[str, Any]]], None]


@contextlib.contextmanager
def meanwhile(session: Session, writes: Writes) -> Iterator[Later]:
    """Insert each ``(table, rows)`` of ``writes``, in order, while the block runs; the block
    may hand more with the function it is given (``later(table, rows)``: after those).

    PostgreSQL: on a thread, over the session's connection, so that the server takes the COPYs
    on another core while the block computes (a bulk import signs and digests meanwhile: its
    wall time was its CPU time plus the server's). The block must not use the session, nor
    change rows it handed over; its end waits for the writes, and raises what they raised.
    Elsewhere: each written at once, in the block's thread.
    """
    conn = session.connection()
    if conn.dialect.name != "postgresql":

        def now(table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
            insert(session, table, rows)

        for table, rows in writes:
            now(table, rows)
        yield now
        return
    raw = conn.connection.driver_connection  # the thread uses only the driver's connection
    pending: queue.SimpleQueue[tuple[Table, Sequence[Mapping[str, Any]]] | None] = queue.SimpleQueue()
    for write in writes:
        pending.put(write)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with _integrity(conn):
                while (write := pending.get()) is not None:
                    _copy(raw, write[0], write[1], autoincrement=False, serialized=())
        except BaseException as exc:  # handed to the block's thread, which raises it
            failed.append(exc)

    def later(table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        pending.put((table, rows))

    writer = threading.Thread(target=run, name="bulk-insert", daemon=True)
    writer.start()
    try:
        yield later
    finally:
        pending.put(None)
        writer.join()
    if failed:
        raise failed[0]


@contextlib.contextmanager
def _integrity(conn: Any) -> Iterator[None]:
    try:
        yield
    except conn.dialect.loaded_dbapi.IntegrityError as exc:
        # The driver's own error (these statements bypass SQLAlchemy's wrapping), raised as the
        # one a caller expects from a write: a key another transaction committed first.
        raise IntegrityError("INSERT", None, exc) from exc


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
    _copy(conn.connection.driver_connection, table, rows, autoincrement=autoincrement, serialized=serialized)


def _copy(
    raw: Any,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    autoincrement: bool,
    serialized: Collection[str],
) -> None:
    """``COPY ... FROM STDIN`` on the driver's connection ``raw`` (only that: ``meanwhile`` runs
    it on another thread)."""
    if not rows:
        return
    columns = [c for c in table.columns if not (autoincrement and c.primary_key)]
    json_columns = {c.name for c in columns if isinstance(c.type, JSON) and c.name not in serialized}
    names = [c.name for c in columns]
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
