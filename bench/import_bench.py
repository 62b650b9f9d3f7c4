"""Bulk consent import throughput: ``import_consents_per_s`` per backend (issue 15 item 2).

    python -m bench.import_bench                      # 20,000 rows, sqlite and postgresql
    python -m bench.import_bench --rows 5000 --backends sqlite

A CSV file of ``rows`` consents (distinct people, a few shared term sets, as a shelter's
paper forms would give) is imported through ``services.consent_import.import_file``, the
code ``POST /v1/consents/import`` and ``consent-service consents import`` run: every row
checked, then every consent written with its signed receipt, its event and its audit entry
binding its rows, in one transaction (PostgreSQL through COPY). The figure is rows per second
of the whole call, file parsing included, best of ``rounds`` (each round a fresh database);
``import_cpu_us_per_consent`` is the importing process's CPU time per row (``process_time``,
the lowest of the rounds: steadier than wall time on a shared machine; on PostgreSQL the
server's own work, on the other core, is not in it). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet

from consent_service.core.keys import new_signing_key

from . import datagen

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "bench-pseudonym-secret"
ORG = "bench-importer"
SYSTEM = "urn:bench-importer:client"
HEADER = [
    "subject_system",
    "subject_value",
    "purposes",
    "data_categories",
    "recipients",
    "expires_at",
    "evidence_method",
    "evidence_obtained_by",
    "evidence_setting",
]
TERMS = [
    ("service-delivery|service-planning", "housing|income", ORG),
    ("service-planning", "housing", ORG),
    ("care-coordination|referral", "health|housing", ORG),
    ("program-evaluation", "demographic|housing", ORG),
]


def make_file(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for n in range(rows):
        purposes, categories, recipients = TERMS[n % len(TERMS)]
        writer.writerow(
            [
                *(SYSTEM, f"P-{n:08d}", purposes, categories, recipients),
                *("2036-01-01T00:00:00+00:00", "written", f"worker-{n % 40}", "office"),
            ]
        )
    return out.getvalue().encode()


def _app(url: str, schema: str, instance: Path) -> Any:
    from consent_service import create_app

    keys = json.dumps(KeySet([new_signing_key()]).as_dict(private=True))
    return create_app(
        {
            "DATABASE_URL": url,
            "DB_SCHEMA": schema,
            "SECRET_KEY": SECRET,
            "SIGNING_KEYS": keys,
            "INSTANCE_PATH": str(instance),
            "RATELIMIT_ENABLED": False,
        }
    )


def one_round(
    backend: str, data: bytes, rows: int, workdir: Path, n: int, pg_url: str = PG_URL
) -> dict[str, Any]:
    from consent_service.container import EXTENSION
    from consent_service.core.caller import Caller, Via
    from consent_service.services import consent_import, organizations, subjects
    from consent_service.storage.migrate import upgrade

    if backend == "sqlite":
        url, schema = f"sqlite:///{workdir / f'import-{n}.db'}", ""
    else:
        url, schema = pg_url, f"bench_import_{os.getpid()}_{n}"
        datagen.drop_schema(url, schema)
        from sqlalchemy import create_engine, text

        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
    try:
        upgrade(url, schema=schema)
        app = _app(url, schema, workdir / f"instance-{backend}-{n}")
        services = app.extensions[EXTENSION]
        now = datetime.now(UTC)
        organizations.create_organization(
            services, caller=None, id=ORG, name="Bench", type="service-provider", now=now
        )
        subjects.register(
            services,
            caller=None,
            system=SYSTEM,
            organization=ORG,
            shared=False,
            case_insensitive=False,
            now=now,
        )
        caller = Caller(
            organization=ORG, client_id="bench", scopes=frozenset({"consents:write"}), via=Via.OPERATOR
        )
        started, cpu = time.perf_counter(), time.process_time()
        report = consent_import.import_file(
            services, caller=caller, data=data, fmt="csv", skip_bad=False, now=datetime.now(UTC)
        )
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert report.recorded == rows, report
        again = time.perf_counter()
        rerun = consent_import.import_file(
            services, caller=caller, data=data, fmt="csv", skip_bad=False, now=datetime.now(UTC)
        )
        rerun_s = time.perf_counter() - again
        assert rerun.recorded == 0 and rerun.already == rows, rerun
        services.sessions.kw["bind"].dispose()
        return {
            "seconds": round(elapsed, 3),
            "per_s": round(rows / elapsed),
            "cpu_us_per_consent": round(cpu / rows * 1e6, 1),
            "rerun_s": round(rerun_s, 3),
        }
    finally:
        if backend == "postgresql":
            datagen.drop_schema(url, schema)


def run(
    rows: int = 20_000,
    backends: tuple[str, ...] = ("sqlite", "postgresql"),
    rounds: int = 3,
    *,
    pg_url: str = PG_URL,
) -> dict[str, Any]:
    data = make_file(rows)
    out: dict[str, Any] = {"rows": rows, "rounds": rounds, "file_bytes": len(data), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="consent-import-bench-") as tmp:
        for backend in backends:
            try:
                results = [one_round(backend, data, rows, Path(tmp), n, pg_url) for n in range(rounds)]
                out["backends"][backend] = {
                    "import_consents_per_s": max(r["per_s"] for r in results),
                    "import_cpu_us_per_consent": min(r["cpu_us_per_consent"] for r in results),
                    "rounds": results,
                }
            except Exception as exc:  # one backend failing must not lose the other's figure
                out["backends"][backend] = {"error": repr(exc)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_bench", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    print(json.dumps(run(args.rows, backends, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
