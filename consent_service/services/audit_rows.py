"""Binding the state to the audit chain: every bound row is what its last audit entry recorded.

Of the audit resource, this is the row binding: the namings entries carry and the tallies that
check them (used by :mod:`.audit`'s verify and checkpoint, and by ``Services.append_audit``).
The chain's hash linking is pure in ``core/audit_chain.py``; the bound tables' SQL is in
``storage/audit_rows.py``.

Each audit entry that creates or changes rows carries, in its payload (so inside the entry's
keyed hash), one *naming* per row: ``[table, key, new, old]`` where ``new`` is the row's
digest after the change (null: deleted) and ``old`` its digest before (null: inserted)::

    digest(row) = HMAC-SHA256(k_rows, canonical JSON of [table, {column: value}])[:32 hex]

Verification streams (docs/audit.md, "What the chain covers"):

1. While the chain is walked, every naming adds ``f(new) - f(old)`` to a tally per table and
   bucket, where ``f(d) = HMAC-SHA256(k_state, d)`` read as a number (mod 2**256) and the
   bucket is a hash of (table, key) into ``BUCKETS``. The tally is the state the log says.
2. Every bound table is read in key order (keyset pages) and every row adds ``f(digest)``.
3. The tallies must be equal. ``f`` is keyed and never stored, so nobody without the secret
   can find changes whose terms cancel. Memory: one number per table and bucket.
4. Only if some bucket differs: the chain and those tables are read once more, keeping just
   the rows of (at most ``LOCALIZE``) differing buckets, which names each changed, added or
   deleted row and the entry that last recorded it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from consent_service.core.audit_chain import canonical
from consent_service.storage import audit as audit_store
from consent_service.storage import audit_rows as store
from consent_service.storage.models import Decision, DecisionCommunity

ROWS = "rows"  # the payload key of an entry's namings
BASELINE_TAG = "audit:rows-bound"  # entries binding the rows that existed before rows were bound
BUCKETS = 1024
LOCALIZE = 16  # differing buckets examined row by row (each holds ~ rows / BUCKETS rows)
MAX_PROBLEMS = 20
BASELINE_CHUNK = 500
MODULUS = 1 << 256

Progress = Callable[[int], None]


def plain(value: Any) -> Any:
    """A value as the digest reads it: a datetime as its UTC ISO text, anything else as it is."""
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return value


@cache
def _columns(table: Table) -> tuple[str, tuple[tuple[str, str, bool], ...], tuple[str, ...]]:
    """The table's name and its columns (each with its name as JSON and whether the digest reads
    it only when set: ``storage.audit_rows.READ_WHEN_SET``), in canonical (sorted) order, and its
    key columns: read once per table, not once per row."""
    names = sorted(column.name for column in table.columns)
    when_set = store.READ_WHEN_SET.get(table.name, frozenset())
    return (
        _CANONICAL.encode(table.name),
        tuple((name, _CANONICAL.encode(name), name in when_set) for name in names),
        tuple(column.name for column in table.primary_key.columns),
    )


# ``core.audit_chain.canonical``'s encoder, built once (json.dumps builds one per call), and
# the function it writes a string with (ensure_ascii=False).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
_string = json.encoder.encode_basestring


def _text(value: Any, memo: dict[int, str]) -> str:
    """One column value as ``canonical`` writes it; a list or dict through ``memo`` (see ``digest``)."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:  # what the encoder writes for an int, without its per-call setup
        return int.__repr__(value)
    if kind is datetime:
        return _string(_plain(value))
    if kind is list or kind is dict:
        known = memo.get(id(value))
        return known if known is not None else memo.setdefault(id(value), _CANONICAL.encode(value))
    return _CANONICAL.encode(_plain(value))


def _mac(key: bytes, body: str) -> str:
    return hmac.digest(key, body.encode(), "sha256").hex()[:32]


def digest(key: bytes, table: Table, values: Mapping[str, Any], memo: dict[int, str] | None = None) -> str:
    """The row's digest over every column (missing columns count as NULL; a column of
    ``READ_WHEN_SET`` counts only when it is not NULL).

    The text hashed is ``canonical([table, {column: value}])``, written here column by column so
    that ``memo`` (object id -> its canonical JSON) can serialize a value shared by many rows
    once: the decisions of a batch share their lists (``decision_record.SharedValues``). The
    caller keeps the rows alive while it uses ``memo``, so an id cannot be reused meanwhile.
    """
    name, columns, _ = _columns(table)
    if memo is None:  # one row alone (verification reads every row): one encoder call is faster
        body = _CANONICAL.encode(
            [
                table.name,
                {
                    c: _plain(v)
                    for c, _, when_set in columns
                    if (v := values.get(c)) is not None or not when_set
                },
            ]
        )
        return _mac(key, body)
    parts = [
        f"{quoted}:{_text(value, memo)}"
        for column, quoted, when_set in columns
        if (value := values.get(column)) is not None or not when_set
    ]
    return _mac(key, f"[{name},{{{','.join(parts)}}}]")


def digests(
    key: bytes,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    memo: dict[int, str],
    *,
    same: frozenset[str] = frozenset(),
) -> list[str]:
    """``digest(key, table, row, memo)`` of each row, for many rows of one write: the columns in
    ``same`` hold the same value in every row (a bulk import's rows share their organization,
    their instant, their status; a batch's decisions their time, caller, request and batch), so
    their text is written once, into a template the other columns' text is put into row by row.
    A row whose ``same`` column differs is refused (its digest would be wrong). ``memo``: see
    ``digest``."""
    if not rows:
        return []
    name, columns, _ = _columns(table)
    first = rows[0]
    shared = [(column, first.get(column)) for column in same]
    if any(when_set and column not in same for column, _, when_set in columns):
        # A column read only when set, varying row by row: no single template (no writer does this).
        for row in rows:
            _same(row, shared)
        return [digest(key, table, row, memo) for row in rows]
    runs = [f"[{name},{{"]
    variable = []
    comma = ""
    for column, quoted, when_set in columns:
        if column in same:
            value = first.get(column)
            if value is None and when_set:
                continue
            runs.append(f"{comma}{quoted}:{_text(value, memo)}".replace("%", "%%"))
        else:
            runs.append(f"{comma}{quoted}:".replace("%", "%%") + "%s")
            variable.append(column)
        comma = ","
    runs.append("}]")
    template = "".join(runs)
    string = _string
    out = []
    for row in rows:
        _same(row, shared)
        texts = tuple([string(v) if type(v) is str else _text(v, memo) for v in map(row.get, variable)])
        out.append(_mac(key, template % texts))
    return out


def _same(row: Mapping[str, Any], shared: list[tuple[str, Any]]) -> None:
    """Refuse a row whose ``same`` column differs from the first row's (its text is written once)."""
    for column, value in shared:
        if (mine := row.get(column)) is not value and mine != value:
            raise ValueError(f"column {column} differs between the rows of one write")


def key_text(key: Iterable[Any]) -> str:
    return canonical(list(key)).decode("utf-8")


def naming(
    key: bytes,
    table: Table,
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None = None,
    *,
    row_key: tuple[Any, ...] | None = None,
    memo: dict[int, str] | None = None,
) -> list[Any]:
    """``[table, key, new digest, old digest]`` for one row created, changed or deleted."""
    source = new if new is not None else old
    assert source is not None or row_key is not None
    k = row_key if row_key is not None else tuple(source[c] for c in _columns(table)[2])  # type: ignore[index]
    return [
        table.name,
        list(k),
        digest(key, table, new, memo) if new is not None else None,
        digest(key, table, old, memo) if old is not None else None,
    ]


def inserted(
    key: bytes, table: Table, rows: Iterable[Mapping[str, Any]], memo: dict[int, str] | None = None
) -> list[list[Any]]:
    """Namings of rows about to be inserted from these column values (the decision path)."""
    return [naming(key, table, values, memo=memo) for values in rows]


def decision_rows(
    key: bytes,
    decisions: Iterable[Mapping[str, Any]],
    links: Iterable[Mapping[str, Any]],
    memo: dict[int, str] | None = None,
) -> list[list[Any]]:
    """Namings of decision rows and their community links, from the values about to be inserted
    (``memo``: see ``digest``; one for a whole batch)."""
    return inserted(key, store.BOUND[Decision.__tablename__], decisions, memo) + inserted(
        key, store.BOUND[DecisionCommunity.__tablename__], links, memo
    )


# A batch's rows, bound by its one entry (``batch_binding``): the payload key, and the width of
# the decision ids (uuid4 text) and digests laid end to end in it.
BATCH_ROWS = "batch_rows"
ID_WIDTH = 36
DIGEST_WIDTH = 32
_DECISION_SAME = frozenset({"at", "batch_id", "client_id", "data_categories", "purpose", "requester"})


def batch_binding(
    key: bytes,
    decisions: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
    memo: dict[int, str],
) -> dict[str, Any]:
    """The rows a batch authorize inserts, named in one entry (``BATCH_ROWS``) and compactly.

    The same namings as ``decision_rows`` (every decision row and community link with its
    digest), laid out so that 10,000 of them stay small in the entry and in memory:
    ``decision``: the ids end to end and the digests end to end, in the same order;
    ``decision_community``: for each link, the position of its decision in that list and its
    community, and the digests end to end. ``namings_of`` reads them back as namings.
    Every decision of a batch shares ``_DECISION_SAME``'s columns (one time, one caller, one
    request, one batch); each link shares its time.
    """
    ids = [row["id"] for row in decisions]
    if any(len(i) != ID_WIDTH for i in ids):
        raise ValueError("a batch's decision ids are uuid4 text")
    position = {decision_id: n for n, decision_id in enumerate(ids)}
    return {
        Decision.__tablename__: {
            "ids": "".join(ids),
            "digests": "".join(
                digests(key, store.BOUND[Decision.__tablename__], decisions, memo, same=_DECISION_SAME)
            ),
        },
        DecisionCommunity.__tablename__: {
            "of": [position[link["decision_id"]] for link in links],
            "communities": [link["community_id"] for link in links],
            "digests": "".join(
                digests(
                    key, store.BOUND[DecisionCommunity.__tablename__], links, memo, same=frozenset({"at"})
                )
            ),
        },
    }


def _batch_namings(batch: Mapping[str, Any]) -> Iterator[list[Any]]:
    decisions, links = batch[Decision.__tablename__], batch[DecisionCommunity.__tablename__]
    ids, found = decisions["ids"], decisions["digests"]
    count = len(ids) // ID_WIDTH
    if len(ids) != count * ID_WIDTH or len(found) != count * DIGEST_WIDTH:
        raise ValueError("malformed batch binding")
    table = Decision.__tablename__
    for n in range(count):
        yield [
            table,
            [ids[n * ID_WIDTH : (n + 1) * ID_WIDTH]],
            found[n * DIGEST_WIDTH : (n + 1) * DIGEST_WIDTH],
            None,
        ]
    of, communities, found = links["of"], links["communities"], links["digests"]
    if len(of) != len(communities) or len(found) != len(of) * DIGEST_WIDTH:
        raise ValueError("malformed batch binding")
    table = DecisionCommunity.__tablename__
    for n, (index, community) in enumerate(zip(of, communities, strict=True)):
        if type(index) is not int or not 0 <= index < count:
            raise ValueError("malformed batch binding")
        decision_id = ids[index * ID_WIDTH : (index + 1) * ID_WIDTH]
        yield [table, [decision_id, community], found[n * DIGEST_WIDTH : (n + 1) * DIGEST_WIDTH], None]


def pending(key: bytes, session: Session) -> list[list[Any]]:
    """Namings of the rows the unit of work marked as added or changing (storage.audit_rows)."""
    return [
        naming(key, table, now, before, row_key=row_key)
        for table, row_key, before, now in store.take(session)
    ]


# -- the tally -------------------------------------------------------------------------------------


def _bucket(table: str, key: str) -> int:
    return zlib.crc32(f"{table}\x00{key}".encode()) % BUCKETS


@dataclass
class Tally:
    """Per (table, bucket): the sum of f(digest) over rows, and the number of rows."""

    state_key: bytes
    sums: dict[tuple[str, int], int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def _f(self, d: str) -> int:
        return int.from_bytes(hmac.new(self.state_key, d.encode("ascii"), hashlib.sha256).digest(), "big")

    def add(self, table: str, key: str, d: str, sign: int = 1) -> None:
        slot = (table, _bucket(table, key))
        self.sums[slot] = (self.sums.get(slot, 0) + sign * self._f(d)) % MODULUS
        self.counts[table] = self.counts.get(table, 0) + sign

    def apply(self, named: Iterable[list[Any]]) -> None:
        for table, key, new, old in named:
            text = key_text(key)
            if old is not None:
                self.add(table, text, old, -1)
            if new is not None:
                self.add(table, text, new)

    def differing(self, other: Tally) -> list[tuple[str, int]]:
        slots = {s for s, v in self.sums.items() if v} | {s for s, v in other.sums.items() if v}
        return sorted(s for s in slots if self.sums.get(s, 0) != other.sums.get(s, 0))

    def commitment(self) -> str:
        """A digest of the whole tally (what a checkpoint signs as ``state``)."""
        body = canonical(
            {
                "sums": sorted([t, b, format(v, "x")] for (t, b), v in self.sums.items() if v),
                "counts": {t: n for t, n in self.counts.items() if n},
            }
        )
        return hashlib.sha256(body).hexdigest()


def namings_of(payload: Mapping[str, Any]) -> list[list[Any]]:
    """The rows an entry binds: its ``rows``, and a batch's rows (``batch_binding``) read back."""
    if not isinstance(payload, Mapping):
        return []
    named = payload.get(ROWS)
    named = named if isinstance(named, list) else []
    batch = payload.get(BATCH_ROWS)
    return [*named, *_batch_namings(batch)] if batch is not None else named


def tallying(
    entries: Iterable[Any],
    tally: Tally,
    *,
    at_seqs: Iterable[int] = (),
    commitments: dict[int, str] | None = None,
    progress: Progress | None = None,
    seen: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """Pass the chain's entries through unchanged, adding each entry's namings to ``tally``.

    ``commitments`` receives the tally's commitment after each entry whose seq is in ``at_seqs``
    (the checkpoints'); ``seen`` records whether the chain starts before rows were bound.
    """
    wanted = set(at_seqs)
    for entry in entries:
        payload = entry.payload
        if seen is not None:
            if entry.seq == 1:
                seen["legacy"] = not (isinstance(payload, Mapping) and ROWS in payload)
            if entry.tag == BASELINE_TAG:
                seen["baseline"] = True
        try:
            tally.apply(namings_of(payload))
        except (TypeError, ValueError, AttributeError):
            seen_problem = seen if seen is not None else {}
            seen_problem.setdefault("malformed", entry.seq)
        if commitments is not None and entry.seq in wanted:
            commitments[entry.seq] = tally.commitment()
        if progress is not None:
            progress(1)
        yield entry


# -- the state against the tally --------------------------------------------------------------------


@dataclass(frozen=True)
class RowProblem:
    table: str
    row: list[Any]
    problem: str
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "row": self.row, "problem": self.problem, "seq": self.seq}


def tally_tables(
    session: Session, rows_key: bytes, state_key: bytes, progress: Progress | None = None
) -> Tally:
    tally = Tally(state_key)
    for name, table in store.BOUND.items():
        for values in store.rows(session, table):
            tally.add(name, key_text(store.key_of(table, values)), digest(rows_key, table, values))
            if progress is not None:
                progress(1)
    return tally


def locate(session: Session, rows_key: bytes, slots: list[tuple[str, int]]) -> list[RowProblem]:
    """Name the rows of the differing (table, bucket) slots: a second, bounded pass."""
    chosen = set(slots[:LOCALIZE])
    live: dict[tuple[str, str], tuple[str, int]] = {}
    problems: list[RowProblem] = []
    for entry in audit_store.entries(session):
        for table, key, new, old in namings_of(entry.payload):
            text = key_text(key)
            if (table, _bucket(table, text)) not in chosen:
                continue
            before = live.get((table, text))
            if old is not None and (before is None or before[0] != old):
                problems.append(
                    RowProblem(
                        table,
                        list(key),
                        (
                            f"row {text} of table {table} was changed outside the service before entry "
                            f"{entry.seq} changed it"
                        ),
                        entry.seq,
                    )
                )
            if new is None:
                live.pop((table, text), None)
            else:
                live[(table, text)] = (new, entry.seq)
    for name in sorted({t for t, _ in chosen}):
        table = store.BOUND.get(name)
        if table is None:
            continue
        for values in store.rows(session, table):
            text = key_text(store.key_of(table, values))
            if (name, _bucket(name, text)) not in chosen:
                continue
            recorded = live.pop((name, text), None)
            key = [_plain(v) for v in store.key_of(table, values)]
            if recorded is None:
                problems.append(
                    RowProblem(
                        name,
                        key,
                        (
                            f"row {text} of table {name} is not recorded by any audit entry "
                            "(inserted outside the service)"
                        ),
                    )
                )
            elif digest(rows_key, table, values) != recorded[0]:
                problems.append(
                    RowProblem(
                        name,
                        key,
                        (
                            f"row {text} of table {name} differs from what entry {recorded[1]} recorded "
                            "(edited outside the service)"
                        ),
                        recorded[1],
                    )
                )
    for (name, text), (_, seq) in sorted(live.items()):
        if name in {t for t, _ in chosen}:
            problems.append(
                RowProblem(
                    name,
                    json.loads(text),
                    (
                        f"row {text} of table {name}, recorded by entry {seq}, is missing "
                        "(deleted outside the service)"
                    ),
                    seq,
                )
            )
    if not problems:  # the sums differ, yet no row stands out: say so rather than pass
        problems = [
            RowProblem(t, [], f"table {t} differs from what the audit chain recorded") for t, _ in slots[:1]
        ]
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0, p.table, key_text(p.row)))
    return problems[:MAX_PROBLEMS]


def check_state(
    session: Session, rows_key: bytes, logged: Tally, progress: Progress | None = None
) -> list[RowProblem]:
    """Compare the tables with the chain's tally; name the rows that differ (empty: all bound)."""
    stored = tally_tables(session, rows_key, logged.state_key, progress)
    slots = logged.differing(stored)
    return locate(session, rows_key, slots) if slots else []


def work(session: Session) -> int:
    """How many steps a verification takes (entries + rows), for a progress bar."""
    return audit_store.head(session)[0] + sum(store.count(session, t) for t in store.BOUND.values())


# -- binding the rows that existed before rows were bound ------------------------------------------


def needs_baseline(session: Session) -> bool:
    """True when the chain began before entries recorded rows and no baseline was appended."""
    first = audit_store.at(session, 1)
    if first is None or (isinstance(first.payload, Mapping) and ROWS in first.payload):
        return False
    return not audit_store.has_tag(session, BASELINE_TAG)


def baseline_entries(
    session: Session, rows_key: bytes, now: datetime
) -> Iterator[tuple[datetime, str, str | None, dict[str, Any]]]:
    """Entries naming every row that exists now, ``BASELINE_CHUNK`` rows per entry."""
    for name, table in store.BOUND.items():
        chunk: list[list[Any]] = []
        for values in store.rows(session, table):
            chunk.append(naming(rows_key, table, values))
            if len(chunk) == BASELINE_CHUNK:
                yield now, BASELINE_TAG, name, {"table": name, ROWS: chunk}
                chunk = []
        if chunk:
            yield now, BASELINE_TAG, name, {"table": name, ROWS: chunk}
