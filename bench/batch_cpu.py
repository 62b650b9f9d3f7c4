"""``python -m bench.batch_cpu``: CPU and wall time of ``POST /v1/authorize/batch`` in process.

The quick bench's ``large`` world (100,000 consents over 10,000 subjects, 10,000 rules in 1,000
communities), loaded fresh per backend; the service in this process (Flask test client, no HTTP
server, rules warm as in a served worker); ``--batches`` requests of ``--subjects`` random
subjects each (``research`` / ``health``, as the bench's batch), each timed by wall clock and by
this process's CPU time (``time.process_time``: what the neighbours on a shared machine disturb
least). Then single authorize's CPU per request against its floors (``run.cpu_per_request``),
so a change to the shared path shows on both. Prints one JSON document.

``--profile FILE``: one more batch under pyinstrument, its text tree written to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet

from . import datagen
from .run import PG_URL, SECRET, SYSTEM, Store, bench_client, cpu_per_request

SIZES = datagen.Sizes(consents=100_000, subjects=10_000, rules=10_000, communities=1_000)


def _batches(app: Any, client: tuple[str, str], *, batches: int, subjects: int, profile: Path | None) -> Any:
    test_client = app.test_client()
    token = test_client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "authorize"}, auth=client
    ).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(11)

    def body() -> dict[str, Any]:
        cohort = [
            {"system": SYSTEM, "value": datagen.subject_value(rng.randrange(SIZES.subjects))}
            for _ in range(subjects)
        ]
        return {"subjects": cohort, "purpose": "research", "data_categories": ["health"]}

    def one(request: dict[str, Any]) -> dict[str, Any]:
        response = test_client.post("/v1/authorize/batch", json=request, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response.get_json()  # type: ignore[no-any-return]

    one(body())  # warm: first statements compiled, rules of every community touched
    walls, cpus = [], []
    summary: dict[str, Any] = {}
    for _ in range(batches):
        request = body()
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = one(request)["summary"]
        cpus.append(time.process_time() - cpu_started)
        walls.append(time.perf_counter() - started)
    if profile is not None:
        from pyinstrument import Profiler

        request = body()
        profiler = Profiler(interval=0.001)
        profiler.start()
        one(request)
        profiler.stop()
        profile.write_text(
            profiler.output_text(unicode=False, color=False, show_all=bool(os.environ.get("PROFILE_ALL")))
        )
    return {
        "subjects": subjects,
        "batches": batches,
        "wall_s": [round(w, 3) for w in walls],
        "cpu_s": [round(c, 3) for c in cpus],
        "wall_s_median": round(statistics.median(walls), 3),
        "cpu_s_median": round(statistics.median(cpus), 3),
        "subjects_per_wall_s": round(subjects / statistics.median(walls)),
        "subjects_per_cpu_s": round(subjects / statistics.median(cpus)),
        "last_summary": summary,
    }


def run_backend(backend: str, work: Path, keys: str, args: argparse.Namespace) -> dict[str, Any]:
    from consent_service.container import EXTENSION

    from .serve import warm

    if backend == "sqlite":
        store = Store("large", f"sqlite:///{work / 'batch.db'}", "")
    else:
        store = Store("large", PG_URL, f"bench_batch_{os.getpid()}")
    datagen.load(datagen.generate(SIZES, secret=SECRET), url=store.url, schema=store.schema)
    try:
        client = bench_client(store, keys, work / f"instance-{backend}")
        app = store.app(keys, work / f"instance-{backend}")
        services = app.extensions[EXTENSION]
        try:
            warm(app)
            out = _batches(
                app,
                client,
                batches=args.batches,
                subjects=args.subjects,
                profile=Path(f"{args.profile}-{backend}.txt") if args.profile else None,
            )
            if not args.no_single:
                out["single_cpu_ms_per_request"] = cpu_per_request(app, store, client, SIZES.subjects)
            return out
        finally:
            services.sessions.kw["bind"].dispose()
    finally:
        if backend == "postgresql":
            datagen.drop_schema(store.url, store.schema)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_cpu", description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--profile", default="", help="write a pyinstrument tree to PROFILE-<backend>.txt")
    parser.add_argument("--no-single", action="store_true", help="skip single authorize's CPU per request")
    args = parser.parse_args()
    from consent_service.core.keys import new_signing_key

    keys = json.dumps(KeySet([new_signing_key()]).as_dict(private=True))
    report: dict[str, Any] = {"world": SIZES.as_dict(), "loadavg_at_start": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="consent-batch-cpu-") as tmp:
        for backend in args.backends.split(","):
            report[backend] = run_backend(backend, Path(tmp), keys, args)
    report["loadavg_at_end"] = list(os.getloadavg())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
