"""Set-based reads and bulk writes for cohort decisions (``POST /v1/authorize/batch``).

The same questions as the single-subject repositories (``consents.current_terms_for_subject``,
``communities.memberships_with_versions``, ``communities.approvals_for``,
``decisions.add``), asked for many subjects at once: ``IN`` over the subject keys, in chunks so
no statement carries more than ``CHUNK`` parameters. Writes are Core ``executemany`` (no ORM
unit of work per row). Repositories never commit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import JSON, Row, Table, column, insert, select, table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import TypeDecorator

from .models import Approval, Community, Consent, ConsentVersion, Decision, DecisionCommunity, Membership

CHUNK = 1000
T = TypeVar("T")


class SerializedJSON(TypeDecorator[Any]):
    """A JSON column whose value the caller has already serialized (see :func:`insert_rows`)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


@cache
def _lean(model: Table) -> tuple[TableClause, frozenset[str]]:
    """``model`` as a plain table whose JSON columns take text (same SQL, same casts)."""
    json_columns = frozenset(c.name for c in model.columns if isinstance(c.type, JSON))
    return table(model.name, *(column(c.name, SerializedJSON() if c.name in json_columns else c.type)
                               for c in model.columns)), json_columns


def insert_rows(session: Session, model: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """One executemany of ``rows`` into ``model``, each distinct JSON value serialized once.

    Rows of one batch share most of their JSON values (the same categories, the same empty
    lists); keying by object identity serializes each shared object once. The rows keep those
    objects alive for the whole call, so an id cannot be reused meanwhile.
    """
    if not rows:
        return
    lean, json_columns = _lean(model)
    memo: dict[int, str] = {}

    def dumps(value: Any) -> str:
        text = memo.get(id(value))
        if text is None:
            text = memo[id(value)] = json.dumps(value)
        return text

    session.execute(insert(lean), [{**row, **{name: dumps(row[name]) for name in json_columns}}
                                   for row in rows])


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def current_terms_for_subjects(session: Session, subject_keys: Iterable[str]) -> dict[str, list[Row]]:
    """subject_key -> the current version of each of its active consents (as the single query)."""
    keys = sorted(set(subject_keys))
    found: dict[str, list[Row]] = defaultdict(list)
    query = (select(Consent.subject_key, Consent.id, ConsentVersion.version, ConsentVersion.purposes,
                    ConsentVersion.data_categories, ConsentVersion.recipients, ConsentVersion.expires_at,
                    ConsentVersion.recorded_at)
             .join(ConsentVersion, (ConsentVersion.consent_id == Consent.id)
                   & (ConsentVersion.version == Consent.current_version)))
    for chunk in chunked(keys):
        for row in session.execute(query.where(Consent.subject_key.in_(chunk), Consent.status == "active")):
            found[row.subject_key].append(row)
    return found


def memberships_with_versions(session: Session,
                              subject_keys: Iterable[str]) -> dict[str, list[tuple[str, int]]]:
    """subject_key -> [(community_id, policy_version)] ordered by community id (as the single query)."""
    keys = sorted(set(subject_keys))
    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    query = (select(Membership.subject_key, Community.id, Community.policy_version)
             .join(Membership, Membership.community_id == Community.id))
    for chunk in chunked(keys):
        for row in session.execute(query.where(Membership.subject_key.in_(chunk))):
            found[row.subject_key].append((row.id, row.policy_version))
    for memberships in found.values():
        memberships.sort()
    return found


def approvals_for(session: Session, *, communities: Iterable[str], requester: str) -> list[Approval]:
    """The requester's unrevoked approvals from any of these communities."""
    wanted = sorted(set(communities))
    found: list[Approval] = []
    for chunk in chunked(wanted):
        found.extend(session.scalars(select(Approval).where(
            Approval.community_id.in_(chunk), Approval.requester == requester,
            Approval.revoked_at.is_(None))))
    return found


def add_decisions(session: Session, decisions: Sequence[Mapping[str, Any]],
                  communities: Sequence[Mapping[str, Any]]) -> None:
    """Insert decision rows and their decision_community rows (dicts of column values)."""
    insert_rows(session, Decision.__table__, decisions)
    insert_rows(session, DecisionCommunity.__table__, communities)
