"""The rows the audit chain binds, and the unit of work's list of rows it changed.

Every table in ``BOUND`` is covered by ``audit verify``: each of its rows must be what the
audit entry that last created or changed it recorded. Binding a new table is one line in
the registration at the bottom of this module (and its writers call :func:`added` /
:func:`changing`). Repositories never commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Table, and_, event, func, inspect, literal, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from consent_service.storage.models import (
    AccessRequest,
    Agreement,
    AgreementDocument,
    Approval,
    Community,
    CommunityRule,
    CommunitySteward,
    Consent,
    ConsentEvent,
    ConsentImportRow,
    ConsentVersion,
    Decision,
    DecisionCommunity,
    Duty,
    Membership,
    OAuthClient,
    Organization,
    PersonAccessCode,
    StewardChange,
    SubjectSystem,
    UserAccount,
    Webhook,
)

BOUND: dict[str, Table] = {}
# Columns added to a bound table after its rows were first bound: a row's digest reads them only
# when they are not NULL, so every row bound before the column existed keeps its digest.
READ_WHEN_SET: dict[str, frozenset[str]] = {
    "decision": frozenset({"batch_id"}),
    "user_account": frozenset({"idp_issuer", "idp_subject"}),
}
_PENDING = "audit_rows_pending"  # session.info: {(table, key): the row before the unit of work}
Key = tuple[Any, ...]


def bind(model: Any) -> None:
    """Register a table whose every row the audit chain binds (one line per table)."""
    table = model.__table__
    BOUND[table.name] = table


def key_of(table: Table, values: Mapping[str, Any]) -> Key:
    return tuple(values[column.name] for column in table.primary_key.columns)


def _where_key(table: Table, key: Key) -> Any:
    return and_(*(column == value for column, value in zip(table.primary_key.columns, key, strict=True)))


def row(session: Session, table: Table, key: Key, *, lock: bool = False) -> dict[str, Any] | None:
    """The row with this key; ``lock``: also lock it until the commit (PostgreSQL; SQLite's
    writer holds the whole database already)."""
    query = select(table).where(_where_key(table, key))
    found = session.connection().execute(query.with_for_update() if lock else query).mappings().first()
    return dict(found) if found is not None else None


def _after(table: Table, last: Key) -> Any:
    """Keyset condition ``key > last``: a row-value comparison for a key of several columns,
    which both PostgreSQL and SQLite answer from the primary key's index (an OR of column
    comparisons would not be, on PostgreSQL)."""
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        return columns[0] > last[0]
    return tuple_(*columns) > tuple_(*(literal(v, type_=c.type) for c, v in zip(columns, last, strict=True)))


def rows(session: Session, table: Table, *, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every row of ``table`` in key order, read in keyset pages: memory stays bounded."""
    order = list(table.primary_key.columns)
    last: Key | None = None
    conn = session.connection()
    while True:
        query = select(table).order_by(*order).limit(batch)
        if last is not None:
            query = query.where(_after(table, last))
        page = [dict(r) for r in conn.execute(query).mappings()]
        if not page:
            return
        yield from page
        last = key_of(table, page[-1])


def count(session: Session, table: Table) -> int:
    return int(session.connection().execute(select(func.count()).select_from(table)).scalar_one())


# -- the unit of work's changed rows -------------------------------------------------------------


def added(session: Session, model: Any, *key: Any) -> None:
    """A row this unit of work inserts (call after the flush that gives it its key)."""
    session.info.setdefault(_PENDING, {}).setdefault((model.__table__.name, tuple(key)), None)


def added_rows(session: Session, *objects: Any) -> None:
    """ORM rows this unit of work inserted (after the flush): each one's key from its identity."""
    for obj in objects:
        identity = inspect(obj).identity
        if type(obj).__table__.name in BOUND and identity is not None:
            added(session, type(obj), *identity)


def changing(session: Session, model: Any, *key: Any) -> None:
    """A row this unit of work is about to update or delete: call BEFORE the change.

    The row as it was is kept, so the audit entry records what it replaced. The row is locked
    from here to the commit: a concurrent change of the same row (two failed sign-ins at once)
    waits, then reads what the first one committed, so each entry's "before" is the state the
    previous entry recorded.
    """
    pending = session.info.setdefault(_PENDING, {})
    name = model.__table__.name
    if (name, tuple(key)) not in pending:
        pending[(name, tuple(key))] = row(session, model.__table__, tuple(key), lock=True)


def take(session: Session) -> list[tuple[Table, Key, dict[str, Any] | None, dict[str, Any] | None]]:
    """The rows changed since the last audit entry: (table, key, before, now); clears the list."""
    pending = session.info.pop(_PENDING, {})
    return [
        (BOUND[name], key, before, row(session, BOUND[name], key)) for (name, key), before in pending.items()
    ]


def forget_at_transaction_end(factory: sessionmaker[Session]) -> None:
    """The list belongs to one transaction: a commit or rollback drops what is left of it.

    A commit with rows left on it (changed, but no audit entry appended after) is not refused
    here: tests and the benchmark set up state that way. ``audit verify`` names such rows.
    """

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        session.info.pop(_PENDING, None)

    @event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)


for _model in (
    Organization,
    OAuthClient,
    UserAccount,
    Community,
    CommunitySteward,
    Membership,
    Consent,
    ConsentVersion,
    ConsentEvent,
    CommunityRule,
    Approval,
    Agreement,
    AgreementDocument,
    Duty,
    Decision,
    DecisionCommunity,
    SubjectSystem,
    PersonAccessCode,
    ConsentImportRow,
    StewardChange,
    AccessRequest,
    Webhook,
):
    bind(_model)
