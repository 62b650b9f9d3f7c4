"""Engines and transactions.

Two kinds of transaction, chosen per unit of work:

* ``read_snapshot`` — one consistent snapshot for every read of a decision. PostgreSQL:
  REPEATABLE READ, READ ONLY (READ COMMITTED would give each statement its own snapshot).
  SQLite: a deferred ``BEGIN``, whose first read fixes the WAL snapshot.
* ``write`` — SQLite takes the write lock at ``BEGIN IMMEDIATE`` so a transaction never
  fails half-way when upgrading a read lock; PostgreSQL uses READ COMMITTED.

Timeouts (SQLite busy_timeout, PostgreSQL statement_timeout) turn a stuck store into an
error, which the service answers with 503, never with a permit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

_READONLY = "consent_readonly"


def make_engine(
    url: str,
    *,
    busy_timeout_ms: int = 5000,
    sqlite_mmap_mb: int = 1024,
    statement_timeout_ms: int = 5000,
    pool_size: int = 5,
    schema: str = "",
) -> Engine:
    """Create the engine with the durability and timeout settings the service relies on."""
    from sqlalchemy import create_engine

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            hide_parameters=True,  # personal data: never in logs or error messages
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            poolclass=NullPool if database in ("", ":memory:") else None,
        )
        _configure_sqlite(engine, busy_timeout_ms, mmap_mb=sqlite_mmap_mb)
        if database and database != ":memory:":
            # Half the busy timeout for the turn: a writer that cannot get it then waits in
            # SQLite too, so the longest wait before a 503 is 1.5 busy timeouts.
            _WRITER_QUEUES[engine] = WriterQueue(Path(f"{database}.writer-lock"), busy_timeout_ms / 2000)
        return engine
    options = f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms}"
    if schema:
        options += f" -c search_path={schema}"
    engine = create_engine(
        url,
        hide_parameters=True,  # personal data: never in logs or error messages
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=statement_timeout_ms / 1000,
        connect_args={
            "connect_timeout": max(1, statement_timeout_ms // 1000),
            "options": options,
        },
    )
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, *, mmap_mb: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is unreliable).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # Index pages through the memory map rather than read() (a large store's own cost:
        # consent_scaling 0.77 -> 0.96 on 1M consents, docs/performance.md).
        cur.execute(f"PRAGMA mmap_size={1024 * 1024 * int(mmap_mb)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def read_snapshot(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A read-only session whose every statement sees the same committed snapshot."""
    session = factory()
    try:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(
                execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            )
        else:
            session.connection(execution_options={_READONLY: True})
        yield session
    finally:
        session.rollback()
        session.close()


Row = TypeVar("Row", bound=SQLModel)


def detached(row: Row) -> Row:
    """A copy of ``row`` that belongs to no session: a use case's result outlives its snapshot,
    whose closing rollback expires the session's own rows (reading one then would fail)."""
    return type(row)(**row.model_dump())


@contextmanager
def write(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A read-write session; the caller commits once (the unit of work), else it rolls back."""
    queue = _WRITER_QUEUES.get(factory.kw["bind"])
    with queue.turn() if queue is not None else nullcontext():
        session = factory()
        try:
            session.connection()
            yield session
        finally:
            session.rollback()
            session.close()


class WriterQueue:
    """SQLite writers of every worker process wait their turn on a file lock, not in SQLite.

    SQLite has one writer at a time; a second ``BEGIN IMMEDIATE`` waits in SQLite's busy
    handler, which sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries whatever the holder's
    progress: a 1 ms commit can cost its neighbour 3 to 30 ms (issue 5's p99). Here a writer
    first takes a lock within its process, then an ``flock`` on ``<database>.writer-lock``
    shared by all processes, polled at 0.1 to 1 ms, and only then begins. The lock only
    orders writers; SQLite's own lock still guards the data. A writer that cannot get its
    turn within the busy timeout goes ahead anyway and leaves it to SQLite, whose timeout then
    fails the request closed (503).
    """

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path, self.timeout_s = path, timeout_s
        self._in_process = threading.Lock()
        self._local = threading.local()
        self._open: list[int] = []  # the lock file's descriptor in this process, once opened
        self._pid = 0
        weakref.finalize(self, _close_all, self._open)  # with its engine, the queue goes

    def _file(self) -> int:
        if not self._open or self._pid != os.getpid():
            # A forked worker must not share its parent's open file (one flock for both):
            # it closes the inherited descriptor (the parent's lock is unaffected) and opens its own.
            _close_all(self._open)
            self._open.append(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._pid = os.getpid()
        return self._open[0]

    def _flock(self, deadline: float) -> int | None:
        fd, pause = self._file(), 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return None
                time.sleep(pause)
                pause = min(pause * 2, 0.001)

    @contextmanager
    def turn(self) -> Iterator[None]:
        if getattr(self._local, "inside", False):  # a write within a write: the outer one waited
            yield
            return
        deadline = time.monotonic() + self.timeout_s
        in_process = self._in_process.acquire(timeout=self.timeout_s)
        held: int | None = None
        try:
            if in_process:
                try:
                    held = self._flock(deadline)
                except OSError:
                    held = None  # no lock file (read-only folder): SQLite alone orders writers
            self._local.inside = True
            yield
        finally:
            self._local.inside = False
            if held is not None:
                fcntl.flock(held, fcntl.LOCK_UN)
            if in_process:
                self._in_process.release()


def _close_all(descriptors: list[int]) -> None:
    while descriptors:
        with contextlib.suppress(OSError):
            os.close(descriptors.pop())


_WRITER_QUEUES: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()
