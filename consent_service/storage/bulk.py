"""The decision path's reads and writes, for one subject or a cohort, in SQLAlchemy Core.

A subject's current consent terms, its memberships with each community's policy version,
and the requester's approvals, asked for any number of subjects: ``IN`` over the subject keys,
in chunks so no statement carries more than ``CHUNK`` parameters. Authorize, single and batch,
uses these: they run on the session's connection as Core statements (no ORM compile or identity
map per call; results are plain rows) and writes are one ``executemany`` per table.
Repositories never commit.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Row,
    Table,
    Text,
    bindparam,
    cast,
    column,
    exists,
    func,
    insert,
    literal,
    select,
    table,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from consent_service.core.engine import ConsentTerms
from consent_service.storage.models import (
    Agreement,
    Approval,
    Community,
    Consent,
    ConsentVersion,
    Decision,
    DecisionCommunity,
    Membership,
)

CHUNK = 1000
T = TypeVar("T")


class SerializedJSON(TypeDecorator[Any]):
    """A JSON column whose value the caller has already serialized (see :func:`insert_rows`)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


@cache
def _lean(model: Table) -> tuple[Any, frozenset[str]]:
    """An INSERT into ``model`` whose JSON columns take text (same SQL, same casts), built once."""
    json_columns = frozenset(c.name for c in model.columns if isinstance(c.type, JSON))
    lean = table(
        model.name,
        *(column(c.name, SerializedJSON() if c.name in json_columns else c.type) for c in model.columns),
    )
    return insert(lean), json_columns


def insert_rows(session: Session, model: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """One executemany of ``rows`` into ``model``, each distinct JSON value serialized once.

    Rows of one batch share most of their JSON values (the same categories, the same empty
    lists); keying by object identity serializes each shared object once. The rows keep those
    objects alive for the whole call, so an id cannot be reused meanwhile.
    """
    if not rows:
        return
    statement, json_columns = _lean(model)
    memo: dict[int, str] = {}

    def dumps(value: Any) -> str:
        text = memo.get(id(value))
        if text is None:
            text = memo[id(value)] = json.dumps(value)
        return text

    # None stays SQL NULL (a nullable JSON column), not the JSON text "null".
    session.connection().execute(
        statement,
        [
            {**row, **{name: None if row[name] is None else dumps(row[name]) for name in json_columns}}
            for row in rows
        ],
    )


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Built once: a decision runs these several times per request, and building a statement costs
# more than executing it from SQLAlchemy's compiled cache. The key lists are expanding
# parameters (one "IN (?, ?, ...)" per list length).
_KEYS: Any = bindparam("keys", expanding=True)
# The three code lists come back as JSON text and are decoded through ``code_list``: consents
# share a handful of distinct lists ("research, service-planning"), so a cohort of 100,000
# consents decodes each list once instead of 300,000 times (batch authorize's largest cost).
_CURRENT_TERMS = (
    select(
        Consent.subject_key,
        Consent.id,
        ConsentVersion.version,
        cast(ConsentVersion.purposes, Text).label("purposes"),
        cast(ConsentVersion.data_categories, Text).label("data_categories"),
        cast(ConsentVersion.recipients, Text).label("recipients"),
        ConsentVersion.expires_at,
        ConsentVersion.recorded_at,
    )
    .join(
        ConsentVersion,
        (ConsentVersion.consent_id == Consent.id) & (ConsentVersion.version == Consent.current_version),
    )
    .where(Consent.subject_key.in_(_KEYS), Consent.status == "active")
)
_MEMBERSHIPS = (
    select(Membership.subject_key, Community.id, Community.policy_version, Community.show_community_id)
    .join(Membership, Membership.community_id == Community.id)
    # Pending and confirmed memberships alike (the safe side: rules apply from intake on);
    # an ended one no longer brings its community's rules.
    .where(Membership.subject_key.in_(_KEYS), Membership.ended_at.is_(None))
)
_APPROVALS = (
    select(
        Approval.id,
        Approval.community_id,
        Approval.requester,
        Approval.purposes,
        Approval.data_categories,
        Approval.expires_at,
        Approval.revoked_at,
        Agreement.review_at,  # NULL without an agreement
    )
    .outerjoin(Agreement, Agreement.id == Approval.agreement_id)
    .where(
        Approval.community_id.in_(bindparam("communities", expanding=True)),
        Approval.requester == bindparam("requester"),
        Approval.revoked_at.is_(None),
    )
)


class CurrentTerms(NamedTuple):
    """One active consent's current version, its code lists decoded (shared, interned tuples)."""

    subject_key: str
    id: str
    version: int
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    recipients: tuple[str, ...]
    expires_at: datetime | None
    recorded_at: datetime


@lru_cache(maxsize=16_384)
def code_list(text: str) -> tuple[str, ...]:
    """A JSON list of codes as a tuple of interned strings, decoded once per distinct text."""
    return tuple(sys.intern(str(code)) for code in json.loads(text))


def current_terms_for_subjects(
    session: Session, subject_keys: Iterable[str]
) -> dict[str, list[CurrentTerms]]:
    """subject_key -> the current version of each of its active consents: indexed by subject_key."""
    keys = sorted(set(subject_keys))
    found: dict[str, list[CurrentTerms]] = defaultdict(list)
    conn = session.connection()
    for chunk in chunked(keys):
        for row in conn.execute(_CURRENT_TERMS, {"keys": list(chunk)}):
            found[row.subject_key].append(
                CurrentTerms(
                    row.subject_key,
                    row.id,
                    row.version,
                    code_list(row.purposes),
                    code_list(row.data_categories),
                    code_list(row.recipients),
                    row.expires_at,
                    row.recorded_at,
                )
            )
    return found


def _names(recipient: Any, dialect: str) -> Any:
    """The consent version lists ``recipient`` among its recipients (a JSON list of codes)."""
    if dialect == "postgresql":
        return cast(ConsentVersion.recipients, JSONB).has_key(type_coerce(recipient, Text))
    listed = func.json_each(ConsentVersion.recipients).table_valued("value")
    return exists(select(literal(1)).select_from(listed).where(listed.c.value == recipient))


# The times as the driver's plain datetimes (naive on SQLite), made aware UTC by ``_utc``: a
# cohort's ~100,000 consents each carry two, and UTCDateTime's conversion costs twice as much.
_PLAIN_TIME = DateTime(timezone=True)


@cache
def _terms_naming(dialect: str) -> Any:
    """``_CURRENT_TERMS`` of the consents that name the requester (bind ``recipient``), built once."""
    return (
        select(
            Consent.subject_key,
            Consent.id,
            ConsentVersion.version,
            cast(ConsentVersion.purposes, Text).label("purposes"),
            cast(ConsentVersion.data_categories, Text).label("data_categories"),
            cast(ConsentVersion.recipients, Text).label("recipients"),
            type_coerce(ConsentVersion.expires_at, _PLAIN_TIME).label("expires_at"),
            type_coerce(ConsentVersion.recorded_at, _PLAIN_TIME).label("recorded_at"),
        )
        .join(
            ConsentVersion,
            (ConsentVersion.consent_id == Consent.id) & (ConsentVersion.version == Consent.current_version),
        )
        .where(
            Consent.subject_key.in_(_KEYS),
            Consent.status == "active",
            _names(bindparam("recipient"), dialect),
        )
    )


def _utc(value: datetime) -> datetime:
    """What ``types.UTCDateTime`` reads: an aware UTC datetime."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def terms_naming(
    session: Session, subject_keys: Iterable[str], *, recipient: str
) -> dict[str, list[ConsentTerms]]:
    """subject_key -> the engine's terms of each active consent whose current version names
    ``recipient`` (filtered in SQL: no other consent can permit it or name it as the reader,
    ``engine.covering_consent`` and ``disclosure.named_by``), indexed by subject_key."""
    keys = sorted(set(subject_keys))
    found: dict[str, list[ConsentTerms]] = defaultdict(list)
    statement = _terms_naming(session.get_bind().dialect.name)
    conn = session.connection()
    for chunk in chunked(keys):
        for key, cid, version, purposes, categories, recipients, expires_at, recorded_at in conn.execute(
            statement, {"keys": list(chunk), "recipient": recipient}
        ):
            found[key].append(
                ConsentTerms(
                    cid,
                    version,
                    code_list(purposes),
                    code_list(categories),
                    code_list(recipients),
                    None if expires_at is None else _utc(expires_at),
                    True,
                    _utc(recorded_at),
                )
            )
    return found


def memberships_with_versions(
    session: Session, subject_keys: Iterable[str], *, showing: set[str] | None = None
) -> dict[str, list[tuple[str, int]]]:
    """subject_key -> [(community_id, policy_version)] ordered by community id; the communities
    that show their id in answers are added to ``showing`` (read in the same statement)."""
    keys = sorted(set(subject_keys))
    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    conn = session.connection()
    for chunk in chunked(keys):
        for row in conn.execute(_MEMBERSHIPS, {"keys": list(chunk)}):
            found[row.subject_key].append((row.id, row.policy_version))
            if showing is not None and row.show_community_id:
                showing.add(row.id)
    for memberships in found.values():
        memberships.sort()
    return found


def approvals_for(session: Session, *, communities: Iterable[str], requester: str) -> list[Row]:
    """The requester's unrevoked approvals from any of these communities, each with its agreement's
    review date (expiry and review are the engine's questions)."""
    wanted = sorted(set(communities))
    found: list[Row] = []
    conn = session.connection()
    for chunk in chunked(wanted):
        found.extend(conn.execute(_APPROVALS, {"communities": list(chunk), "requester": requester}))
    return found


def add_decisions(
    session: Session, decisions: Sequence[Mapping[str, Any]], communities: Sequence[Mapping[str, Any]]
) -> None:
    """Insert decision rows and their decision_community rows (dicts of column values)."""
    insert_rows(session, Decision.__table__, decisions)
    insert_rows(session, DecisionCommunity.__table__, communities)
