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

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

_READONLY = "consent_readonly"


def make_engine(url: str, *, busy_timeout_ms: int = 5000, statement_timeout_ms: int = 5000,
                pool_size: int = 5, schema: str = "") -> Engine:
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
        _configure_sqlite(engine, busy_timeout_ms)
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


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is unreliable).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
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
            session.connection(execution_options={"isolation_level": "REPEATABLE READ",
                                                  "postgresql_readonly": True})
        else:
            session.connection(execution_options={_READONLY: True})
        yield session
    finally:
        session.rollback()
        session.close()


@contextmanager
def write(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A read-write session; the caller commits once (the unit of work), else it rolls back."""
    session = factory()
    try:
        session.connection()
        yield session
    finally:
        session.rollback()
        session.close()
