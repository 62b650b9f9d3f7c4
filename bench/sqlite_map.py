"""``python -m bench.sqlite_map``: does a SQLite store of 1M consents answer as fast as one of
10,000, with and without reading the file through a memory map? Prints one JSON document.

In process (Flask test client, no HTTP server): the 1M-consent and 10,000-consent worlds of the
full bench (same rules), each run: drop the OS page cache where allowed (root), 300 authorize
calls to warm, then 300 timed; four runs of each setting, alternating; medians of wall time and
of CPU time per call. ``consent_scaling`` is the 10k world's time over the 1M world's.
About 3 minutes, most of it loading the worlds (kept in ``--work`` for a re-run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet

from . import datagen
from .run import SECRET, SYSTEM, Store, bench_client

WORLDS = {
    "large": datagen.Sizes(consents=1_000_000, subjects=100_000, rules=100_000, communities=10_000),
    "few_consents": datagen.Sizes(consents=10_000, subjects=1_000, rules=100_000, communities=10_000),
}
SETTINGS = {"no_map": {"SQLITE_MMAP_MB": 0}, "map_1gb": {"SQLITE_MMAP_MB": 1024}}


def drop_os_cache() -> bool:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    return False


def prepare(work: Path, keys: str) -> dict[str, tuple[Store, tuple[str, str]]]:
    out = {}
    for name, sizes in WORLDS.items():
        path = work / f"{name}.db"
        store = Store(name, f"sqlite:///{path}", "")
        secret_file = work / f"{name}.client"
        if not path.exists() or not secret_file.exists():
            path.unlink(missing_ok=True)
            datagen.load(datagen.generate(sizes, secret=SECRET), url=store.url, schema="")
            secret_file.write_text(json.dumps(bench_client(store, keys, work / f"instance-{name}")))
        client = json.loads(secret_file.read_text())
        out[name] = (store, (client[0], client[1]))
    return out


def one_run(
    store: Store, client: tuple[str, str], keys: str, setting: dict[str, Any], seed: int
) -> dict[str, Any]:
    from consent_service import create_app
    from consent_service.container import EXTENSION

    dropped = drop_os_cache()
    app = create_app(
        {
            "DATABASE_URL": store.url,
            "SECRET_KEY": SECRET,
            "SIGNING_KEYS": keys,
            "INSTANCE_PATH": str(
                Path(store.url.removeprefix("sqlite:///")).parent / f"instance-{store.name}"
            ),
            "RATELIMIT_ENABLED": False,
            **setting,
        }
    )
    test_client = app.test_client()
    token = test_client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "authorize"}, auth=client
    ).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(seed)
    subjects = WORLDS[store.name].subjects
    wall: list[float] = []
    cpu_started = 0.0
    for call in range(600):
        purpose, categories = rng.choice(datagen.REQUESTS)
        body = {
            "subject": {"system": SYSTEM, "value": datagen.subject_value(rng.randrange(subjects))},
            "purpose": purpose,
            "data_categories": categories,
        }
        if call == 300:
            cpu_started = time.process_time()
        started = time.perf_counter()
        response = test_client.post("/v1/authorize", json=body, headers=headers)
        if call >= 300:
            wall.append(time.perf_counter() - started)
        assert response.status_code == 200, response.get_data(as_text=True)[:200]
    cpu = (time.process_time() - cpu_started) / 300
    app.extensions[EXTENSION].sessions.kw["bind"].dispose()
    return {"wall_ms": statistics.median(wall) * 1000, "cpu_ms": cpu * 1000, "os_cache_dropped": dropped}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_map", description=__doc__)
    parser.add_argument("--work", default="/tmp/consent-bench-sqlite-map")
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    keys_file = work / "keys.json"
    if not keys_file.exists():
        from consent_service.core.keys import new_signing_key

        keys_file.write_text(json.dumps(KeySet([new_signing_key()]).as_dict(private=True)))
    keys = keys_file.read_text()
    stores = prepare(work, keys)
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {s: {w: [] for w in WORLDS} for s in SETTINGS}
    for run in range(args.runs):
        for label, setting in SETTINGS.items():
            for name, (store, client) in stores.items():
                samples[label][name].append(one_run(store, client, keys, setting, seed=3 + run))
    report: dict[str, Any] = {"runs": args.runs, "calls_timed": 300}
    for label, worlds in samples.items():
        med = {
            name: {k: round(statistics.median(r[k] for r in runs), 3) for k in ("wall_ms", "cpu_ms")}
            for name, runs in worlds.items()
        }
        report[label] = {
            **med,
            "consent_scaling_wall": round(med["few_consents"]["wall_ms"] / med["large"]["wall_ms"], 3),
            "consent_scaling_cpu": round(med["few_consents"]["cpu_ms"] / med["large"]["cpu_ms"], 3),
            "os_cache_dropped": all(r["os_cache_dropped"] for runs in worlds.values() for r in runs),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
