"""Fast, deterministic test worlds: consents, subjects, memberships, communities, rules, approvals.

Rows go straight through the driver (``executemany`` on SQLite inside one transaction with
``synchronous=OFF`` for the load only; ``COPY`` on PostgreSQL), never through the API: a
million consents through the API would take hours. The schema itself comes from the
project's migrations, so the service reads exactly what it would have written.

The world, for ``Sizes(consents=C, subjects=S, rules=R, communities=K)``:

* subject ``i`` is ``(SYSTEM, "S-<i>")`` and has about ``C/S`` consents recorded by
  ``bench-outreach``, with random purposes, categories and recipients (``bench-univ``, the
  requester, in about half), 5% revoked, 10% expired;
* subject ``i`` is a member of community ``i % K`` (recorded by its first consent);
* each community has ``R/K`` rules (10% deny, 90% require_approval, some with
  ``aggregate_only``; 20% for every requester, 10% for ``bench-univ``, the rest for one of a
  hundred other organizations), and half the communities approve ``bench-univ`` for
  research on health and housing.

So the work of one decision (consents per subject, rules per community) is the same at every
size: what grows is only the store, which is what the scaling figures are about.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from consent_service.core import pseudonyms
from consent_service.storage.migrate import upgrade

SYSTEM = "urn:bench:client"
REQUESTER = "bench-univ"
RECORDER = "bench-outreach"
STEWARD = "bench-steward"
ORGANIZATIONS = {
    REQUESTER: "research",
    "bench-gla": "government",
    RECORDER: "service-provider",
    STEWARD: "community-governance",
}
PURPOSES = ["research", "service-planning", "public-health", "service-delivery", "program-evaluation"]
RULE_PURPOSES = [*PURPOSES, "commercial", "law-enforcement"]
CATEGORIES = ["health", "mental-health", "housing", "income", "demographic", "identity", "education"]
# What the load asks: (purpose, categories), chosen at random per request.
REQUESTS = [
    ("research", ["health"]),
    ("service-planning", ["housing"]),
    ("public-health", ["health", "income"]),
    ("research", ["mental-health", "demographic"]),
]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sizes:
    consents: int
    subjects: int
    rules: int
    communities: int

    def as_dict(self) -> dict[str, int]:
        return {
            "consents": self.consents,
            "subjects": self.subjects,
            "rules": self.rules,
            "communities": self.communities,
        }


def subject_value(index: int) -> str:
    return f"S-{index}"


def subject_key(secret: str, index: int) -> str:
    key = pseudonyms.derive_key(secret.encode("utf-8"), "subject")
    return pseudonyms.subject_key(key, system=SYSTEM, value=subject_value(index))


def _spread(total: int, buckets: int) -> Iterator[int]:
    """``total`` split over ``buckets`` as evenly as integers allow."""
    base, extra = divmod(total, buckets)
    for index in range(buckets):
        yield base + (1 if index < extra else 0)


def community_id(index: int) -> str:
    return f"comm-{index:06d}"


# -- rows ---------------------------------------------------------------------------------------
# Datetimes are written as naive UTC text ("2026-01-01 00:00:01.000000"): SQLAlchemy's SQLite
# storage format, and read as UTC by PostgreSQL in a session with TIME ZONE 'UTC'.


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sample(rng: random.Random, population: Sequence[str], low: int, high: int) -> list[str]:
    return rng.sample(population, rng.randint(low, high))


def _terms_pool(rng: random.Random, size: int = 4096) -> list[tuple[str, str, str]]:
    """Random (purposes, categories, recipients) JSON triples, drawn from per consent (fast)."""
    pool = []
    for _ in range(size):
        recipients = (
            [RECORDER]
            + ([REQUESTER] if rng.random() < 0.5 else [])
            + (["bench-gla"] if rng.random() < 0.3 else [])
        )
        pool.append(
            (
                json.dumps(_sample(rng, PURPOSES, 1, 2)),
                json.dumps(_sample(rng, CATEGORIES, 1, 3)),
                json.dumps(recipients),
            )
        )
    return pool


def consent_rows(sizes: Sizes, secret: str, seed: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(consent, consent_version) rows, in subject-key order for index locality.

    They do not depend on the communities (membership rows carry those), so worlds that differ
    only in their rules share them.
    """
    rng = random.Random(seed)
    pool = _terms_pool(rng)
    evidence = json.dumps({"method": "electronic"})
    past, future = _ts(EPOCH - timedelta(days=1)), _ts(EPOCH + timedelta(days=3650))
    consents, versions = [], []
    number = 0
    counts = list(_spread(sizes.consents, sizes.subjects))
    for key, index in sorted((subject_key(secret, i), i) for i in range(sizes.subjects)):
        for _ in range(counts[index]):
            cid = f"c-{number:09d}"
            number += 1
            at = _ts(EPOCH + timedelta(seconds=number))
            revoked = rng.random() < 0.05
            roll = rng.random()
            expires = None if roll < 0.8 else (past if roll < 0.9 else future)
            purposes, categories, recipients = pool[rng.randrange(len(pool))]
            consents.append(
                (
                    cid,
                    key,
                    RECORDER,
                    "revoked" if revoked else "active",
                    1,
                    at,
                    at,
                    at if revoked else None,
                    "bench" if revoked else None,
                )
            )
            versions.append(
                (
                    cid,
                    1,
                    purposes,
                    categories,
                    recipients,
                    "[]",
                    expires,
                    evidence,
                    at,
                    "bench",
                    f"r-{cid}",
                    "bench-receipt",
                )
            )
    return consents, versions


def membership_rows(sizes: Sizes, secret: str, consents: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Subject ``i`` is a member of community ``i % communities``, recorded by its first consent."""
    first: dict[str, str] = {}
    for row in consents:
        first.setdefault(row[1], row[0])
    rows = []
    for index in range(sizes.subjects):
        key = subject_key(secret, index)
        if key in first:
            rows.append((key, community_id(index % sizes.communities), first[key], _ts(EPOCH)))
    return rows


def rule_rows(
    sizes: Sizes, seed: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(community, community_rule, approval) rows."""
    rng = random.Random(seed + 1)
    communities, rules, approvals = [], [], []
    number = 0
    at = _ts(EPOCH)
    for index, count in enumerate(_spread(sizes.rules, sizes.communities)):
        cid = community_id(index)
        communities.append((cid, f"Community {index}", 1, at))
        for _ in range(count):
            number += 1
            deny = rng.random() < 0.1
            categories = ["*"] if rng.random() < 0.03 else _sample(rng, CATEGORIES, 1, 2)
            roll = rng.random()
            requesters = ["*"] if roll < 0.2 else [REQUESTER] if roll < 0.3 else [f"org-{rng.randrange(100)}"]
            obligations = (
                {"aggregate_only": True, "min_cell_size": 5} if not deny and rng.random() < 0.3 else {}
            )
            rules.append(
                (
                    f"rule-{number:09d}",
                    cid,
                    "deny" if deny else "require_approval",
                    json.dumps([rng.choice(RULE_PURPOSES)]),
                    json.dumps(categories),
                    json.dumps(requesters),
                    json.dumps(obligations),
                    "[]",
                    "bench rule",
                    at,
                    STEWARD,
                    "bench",
                    None,
                    None,
                    None,
                    1,  # created_version: the community's version 1, as if added by the API
                )
            )
        if rng.random() < 0.5:
            approvals.append(
                (
                    f"appr-{index:07d}",
                    cid,
                    REQUESTER,
                    json.dumps(["research"]),
                    json.dumps(["health", "housing"]),
                    None,
                    None,
                    at,
                    STEWARD,
                    "bench",
                    None,
                    None,
                    None,
                )
            )
    return communities, rules, approvals


COLUMNS = {
    "organization": ("id", "name", "type", "created_at"),
    "subject_system": ("system", "organization_id", "shared", "case_insensitive", "created_at", "created_by"),
    "consent": (
        "id",
        "subject_key",
        "recorded_by",
        "status",
        "current_version",
        "created_at",
        "updated_at",
        "revoked_at",
        "revoked_reason",
    ),
    "consent_version": (
        "consent_id",
        "version",
        "purposes",
        "data_categories",
        "recipients",
        "communities",
        "expires_at",
        "evidence",
        "recorded_at",
        "recorded_by_client",
        "receipt_id",
        "receipt",
    ),
    "membership": ("subject_key", "community_id", "consent_id", "created_at"),
    "community": ("id", "name", "policy_version", "created_at"),
    "community_rule": (
        "id",
        "community_id",
        "effect",
        "purposes",
        "data_categories",
        "requesters",
        "obligations",
        "labels",
        "reason",
        "created_at",
        "created_by",
        "created_by_client",
        "retired_at",
        "retired_by",
        "retired_reason",
        "created_version",
    ),
    "approval": (
        "id",
        "community_id",
        "requester",
        "purposes",
        "data_categories",
        "expires_at",
        "notes",
        "created_at",
        "created_by",
        "created_by_client",
        "revoked_at",
        "revoked_by",
        "revoked_reason",
    ),
}


# -- loading ------------------------------------------------------------------------------------


def _load_sqlite(path: str, tables: Iterable[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=OFF")  # the load only; the service runs with FULL
        con.execute("PRAGMA cache_size=-262144")
        con.execute("BEGIN")
        for name, rows in tables:
            columns = COLUMNS[name]
            con.executemany(
                f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows
            )
        con.execute("COMMIT")
        con.execute("ANALYZE")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _copy_text(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    # COPY's text format; our values hold no tab, newline or backslash.
    for row in rows:
        yield "\t".join("\\N" if value is None else str(value) for value in row) + "\n"


def _load_postgres(url: str, schema: str, tables: Iterable[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
    engine = create_engine(url, connect_args={"options": f"-c search_path={schema} -c TimeZone=UTC"})
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for name, rows in tables:
                with cursor.copy(f"COPY {name} ({', '.join(COLUMNS[name])}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    block: list[str] = []
                    for line in _copy_text(rows):
                        block.append(line)
                        if len(block) >= 5000:
                            copy.write("".join(block))
                            block.clear()
                    if block:
                        copy.write("".join(block))
            raw.commit()
            raw.autocommit = True  # type: ignore[attr-defined]
            cursor.execute("ANALYZE")
        finally:
            raw.close()
    finally:
        engine.dispose()


@dataclass
class World:
    """The rows of one world, generated once and loaded into as many stores as needed."""

    sizes: Sizes
    tables: list[tuple[str, Sequence[tuple[Any, ...]]]]
    generate_s: float

    @property
    def consents(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        found = dict(self.tables)
        return list(found["consent"]), list(found["consent_version"])


def generate(
    sizes: Sizes,
    *,
    secret: str,
    seed: int = 7,
    consents: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] | None = None,
) -> World:
    """Generate a world; pass ``consents`` of a world with the same consent sizes to share them."""
    started = time.perf_counter()
    consent, version = consents or consent_rows(sizes, secret, seed)
    communities, rules, approvals = rule_rows(sizes, seed)
    organizations = [(org, org, kind, _ts(EPOCH)) for org, kind in ORGANIZATIONS.items()]
    tables: list[tuple[str, Sequence[tuple[Any, ...]]]] = [
        ("organization", organizations),
        # Many organizations record the same people here: the system is shared (contract v1.1).
        ("subject_system", [(SYSTEM, None, True, False, _ts(EPOCH), "bench")]),
        ("community", communities),
        ("community_rule", rules),
        ("approval", approvals),
        ("consent", consent),
        ("consent_version", version),
        ("membership", membership_rows(sizes, secret, consent)),
    ]
    return World(sizes=sizes, tables=tables, generate_s=round(time.perf_counter() - started, 2))


def load(world: World, *, url: str, schema: str) -> dict[str, Any]:
    """Migrate an empty database (or PostgreSQL schema) and load the world; returns timings."""
    started = time.perf_counter()
    if url.startswith("postgresql"):
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
    upgrade(url, schema=schema)
    migrated = time.perf_counter()
    if url.startswith("postgresql"):
        _load_postgres(url, schema, world.tables)
    else:
        _load_sqlite(url.removeprefix("sqlite:///"), world.tables)
    return {
        "migrate_s": round(migrated - started, 2),
        "load_s": round(time.perf_counter() - migrated, 2),
        "rows": sum(len(rows) for _, rows in world.tables),
    }


def drop_schema(url: str, schema: str) -> None:
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()
