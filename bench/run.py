"""The benchmark run: worlds, servers, rounds, medians, targets, one JSON document.

Per backend (SQLite, PostgreSQL) it loads three worlds (fresh copies, made by this run):

* ``large``: the issue's sizes (full: 1,000,000 consents, 100,000 subjects, 100,000 rules in
  10,000 communities);
* ``few_consents``: 100x fewer consents and subjects, the same rules (for consent_scaling);
* ``few_rules``: the same consents, 100x fewer rules and communities (for rule_scaling);

then serves each, plus the two floors, under the same gunicorn settings, and measures every
item once per round, in an order rotated each round. Figures are medians over the rounds;
ratios are the median of the per-round ratios (both sides measured minutes apart, not hours).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet

from consent_service.core.keys import new_signing_key

from . import datagen, engine_bench, import_bench, load
from .datagen import REQUESTER, SYSTEM, Sizes
from .live_service import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SECRET = "bench-pseudonym-secret"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HUGE_LIMIT = "100000000 per minute"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    mode: str
    large: Sizes
    few_consents: Sizes
    few_rules: Sizes
    rounds: int = 3
    seconds: float = 10.0
    warmup_seconds: float = 3.0
    batch_subjects: int = 10_000
    import_rows: int = 20_000  # rows of the consent import file (bench/import_bench.py)
    engine_calls: int = 20_000
    engine_rules: int = 1_000
    workers: int = field(default_factory=lambda: os.cpu_count() or 2)
    backends: tuple[str, ...] = ("sqlite", "postgresql")
    budget_seconds: float = 40 * 60

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("large", "few_consents", "few_rules"):
            out[name] = getattr(self, name).as_dict()
        return out


def plan_for(mode: str, *, scale: float = 1.0) -> Plan:
    def sizes(consents: int, subjects: int, rules: int, communities: int) -> Sizes:
        return Sizes(
            consents=max(1, int(consents * scale)),
            subjects=max(1, int(subjects * scale)),
            rules=max(1, int(rules * scale)),
            communities=max(1, int(communities * scale)),
        )

    if mode == "quick":
        return Plan(
            mode=mode,
            large=sizes(100_000, 10_000, 10_000, 1_000),
            few_consents=sizes(1_000, 100, 10_000, 1_000),
            few_rules=sizes(100_000, 10_000, 100, 10),
            seconds=3.0,
            warmup_seconds=1.0,
            engine_calls=5_000,
            import_rows=5_000,
            budget_seconds=12 * 60,
        )
    return Plan(
        mode=mode,
        large=sizes(1_000_000, 100_000, 100_000, 10_000),
        few_consents=sizes(10_000, 1_000, 100_000, 10_000),
        few_rules=sizes(1_000_000, 100_000, 1_000, 100),
    )


# -- machine and commit -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError):
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(git("status", "--porcelain"))}


# -- servers ------------------------------------------------------------------------------------


def _own_rss_kb(pid: int) -> int:
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    mapped_db, in_db = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            in_db = fields[-1].endswith(".db")  # a mapping's first line ends with its path
        elif in_db and fields[:1] == ["Rss:"]:
            mapped_db += int(fields[1])
    return rss - mapped_db


@dataclass
class Server:
    name: str
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    ready_dir: Path
    workers: int

    def worker_pids(self) -> list[int]:
        return [int(p.name.split("-", 1)[1]) for p in self.ready_dir.glob("ready-*")]

    def rss_mb(self) -> list[float]:
        """Each worker's resident memory, less the pages of a SQLite database file it maps
        (``CONSENT_SQLITE_MMAP_MB``): those are the OS page cache, shared by every worker."""
        sizes = []
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                sizes.append(round(_own_rss_kb(pid) / 1024, 1))
        return sizes

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start(name: str, kind: str, env: dict[str, str], workers: int, workdir: Path, *, warm: bool) -> Server:
    port = free_port()
    ready = workdir / f"ready-{name}"
    ready.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.serve",
            kind,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--ready-dir",
            str(ready),
            *(["--warm"] if warm else []),
        ],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / f"{name}.log", "wb"),  # noqa: SIM115 (the child owns it)
    )
    return Server(name=name, kind=kind, port=port, process=process, ready_dir=ready, workers=workers)


def wait_ready(servers: list[Server], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for server in servers:
        while len(server.worker_pids()) < server.workers:
            if server.process.poll() is not None:
                raise RuntimeError(f"server {server.name} exited; see its log in the work folder")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {server.name} not ready after {timeout:.0f} s")
            time.sleep(0.2)


# -- one backend --------------------------------------------------------------------------------


@dataclass
class Store:
    name: str
    url: str
    schema: str

    def env(self, keys: str, instance: Path) -> dict[str, str]:
        return {
            "CONSENT_DATABASE_URL": self.url,
            "CONSENT_DB_SCHEMA": self.schema,
            "CONSENT_SECRET_KEY": SECRET,
            "CONSENT_SIGNING_KEYS": keys,
            "CONSENT_INSTANCE_PATH": str(instance),
            "CONSENT_RATELIMIT_DEFAULT": HUGE_LIMIT,
            "CONSENT_RATELIMIT_TOKEN": HUGE_LIMIT,
            "CONSENT_TOKEN_EXPIRES_IN": "3600",
        }

    def app(self, keys: str, instance: Path) -> Any:
        """The service in this process on this store, rate limits off (bench setup and profiles)."""
        from consent_service import create_app

        return create_app(
            {
                "DATABASE_URL": self.url,
                "DB_SCHEMA": self.schema,
                "SECRET_KEY": SECRET,
                "SIGNING_KEYS": keys,
                "INSTANCE_PATH": str(instance),
                "RATELIMIT_ENABLED": False,
            }
        )


def bench_client(store: Store, keys: str, instance: Path) -> tuple[str, str]:
    """A client of the requester with scope authorize, made through the domain (audited)."""
    from consent_service.container import EXTENSION
    from consent_service.services import organizations

    app = store.app(keys, instance)
    services = app.extensions[EXTENSION]
    try:
        created = organizations.create_client(
            services,
            caller=None,
            organization=REQUESTER,
            name="bench",
            scopes=["authorize"],
            now=datetime.now(UTC),
        )
        return created.client_id, created.client_secret
    finally:
        services.sessions.kw["bind"].dispose()


def measure_http(server: Server, token: str | None, subjects: int, plan: Plan, seed: int) -> dict[str, Any]:
    common = {"port": server.port, "token": token or "none", "subjects": subjects}
    load.run(**common, connections=2, seconds=plan.warmup_seconds, seed=seed)
    return {
        "c2": load.run(**common, connections=2, seconds=plan.seconds, seed=seed + 1),
        "c8": load.run(**common, connections=8, seconds=plan.seconds, seed=seed + 2),
    }


def measure_batch(server: Server, token: str, subjects: int, plan: Plan, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    cohort = [
        {"system": SYSTEM, "value": datagen.subject_value(rng.randrange(subjects))}
        for _ in range(plan.batch_subjects)
    ]
    body = {"subjects": cohort, "purpose": "research", "data_categories": ["health"]}
    started = time.perf_counter()
    status, answer = load.post_json(server.port, "/v1/authorize/batch", body, token)
    seconds = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"batch answered {status}: {str(answer)[:300]}")
    return {
        "subjects": plan.batch_subjects,
        "seconds": round(seconds, 3),
        "subjects_per_s": round(plan.batch_subjects / seconds, 1),
        "summary": answer["summary"],
    }


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def run_backend(
    backend: str, plan: Plan, worlds: dict[str, datagen.World], workdir: Path, deadline: float
) -> dict[str, Any]:
    keys = json.dumps(KeySet([new_signing_key()]).as_dict(private=True))
    stores: dict[str, Store] = {}
    datagen_report = {}
    for name, world in worlds.items():
        if backend == "sqlite":
            store = Store(name, f"sqlite:///{workdir / f'{backend}-{name}.db'}", "")
        else:
            store = Store(name, PG_URL, f"bench_{os.getpid()}_{name}")
        log(f"{backend}: loading {name} {world.sizes.as_dict()}")
        datagen_report[name] = datagen.load(world, url=store.url, schema=store.schema)
        stores[name] = store
    clients = {
        name: bench_client(store, keys, workdir / f"instance-{backend}-{name}")
        for name, store in stores.items()
    }
    servers: list[Server] = []
    try:
        large_env = stores["large"].env(keys, workdir / f"instance-{backend}-large")
        servers.append(start(f"{backend}-floor", "floor", {}, plan.workers, workdir, warm=False))
        servers.append(start(f"{backend}-storage", "storage", large_env, plan.workers, workdir, warm=False))
        servers.append(
            start(f"{backend}-storage-core", "storage-core", large_env, plan.workers, workdir, warm=False)
        )
        for name, store in stores.items():
            servers.append(
                start(
                    f"{backend}-{name}",
                    "service",
                    store.env(keys, workdir / f"instance-{backend}-{name}"),
                    plan.workers,
                    workdir,
                    warm=True,
                )
            )
        log(f"{backend}: starting {len(servers)} servers, warming the rule caches")
        wait_ready(servers, timeout=max(60.0, min(900.0, deadline - time.monotonic())))
        by_name = {s.name.removeprefix(f"{backend}-"): s for s in servers}
        subjects = {name: world.sizes.subjects for name, world in worlds.items()}
        items: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
            ("floor", lambda seed: measure_http(by_name["floor"], None, subjects["large"], plan, seed)),
            (
                "storage_floor",
                lambda seed: measure_http(by_name["storage"], None, subjects["large"], plan, seed),
            ),
            (
                "storage_floor_core",
                lambda seed: measure_http(by_name["storage-core"], None, subjects["large"], plan, seed),
            ),
        ]
        for name in worlds:

            def service_item(seed: int, name: str = name) -> dict[str, Any]:
                token = load.token(by_name[name].port, *clients[name])
                return measure_http(by_name[name], token, subjects[name], plan, seed)

            items.append((f"authorize_{name}", service_item))

        def batch_item(seed: int) -> dict[str, Any]:
            token = load.token(by_name["large"].port, *clients["large"])
            return measure_batch(by_name["large"], token, subjects["large"], plan, seed)

        items.append(("batch", batch_item))

        rounds: list[dict[str, Any]] = []
        for number in range(plan.rounds):
            if time.monotonic() > deadline:
                log(f"{backend}: time budget reached after {number} rounds")
                break
            shift = number % len(items)
            order = items[shift:] + items[:shift]
            log(f"{backend}: round {number + 1}/{plan.rounds}: {', '.join(name for name, _ in order)}")
            results = {name: measure(1000 * number + index) for index, (name, measure) in enumerate(order)}
            results["order"] = [name for name, _ in order]
            rounds.append(results)
        rss = {s.name.removeprefix(f"{backend}-"): s.rss_mb() for s in servers}
    finally:
        for server in servers:
            server.stop()
    first_change, profile = in_process(
        stores["large"],
        keys,
        workdir / f"instance-{backend}-large",
        plan,
        clients["large"],
        backend,
        worlds["large"].sizes.subjects,
    )
    if backend == "postgresql":
        for store in stores.values():
            datagen.drop_schema(store.url, store.schema)
    summary = summarise(rounds, rss, datagen_report, first_change)
    summary["profile"] = profile
    return summary


def summarise(
    rounds: list[dict[str, Any]],
    rss: dict[str, list[float]],
    datagen_report: dict[str, Any],
    first_change: dict[str, Any],
) -> dict[str, Any]:
    def each(item: str, conns: str, key: str) -> list[float]:
        return [r[item][conns][key] for r in rounds if item in r]

    def ratio(top: str, bottom: str) -> float | None:
        values = [r[top]["c8"]["rps"] / r[bottom]["c8"]["rps"] for r in rounds if r[bottom]["c8"]["rps"]]
        return median(values)

    errors = sum(
        r[item][c]["errors"]
        for r in rounds
        for item in r
        if isinstance(r[item], dict) and "c2" in r[item]
        for c in ("c2", "c8")
    )
    out = {
        "floor_rps": median(each("floor", "c8", "rps")),
        "storage_floor_rps": median(each("storage_floor", "c8", "rps")),
        "storage_floor_core_rps": median(each("storage_floor_core", "c8", "rps")),
        "authorize_rps": median(each("authorize_large", "c8", "rps")),
        "authorize_rps_c2": median(each("authorize_large", "c2", "rps")),
        "authorize_p50_ms": median(each("authorize_large", "c2", "p50_ms")),
        "authorize_p99_ms_c2": median(each("authorize_large", "c2", "p99_ms")),
        "authorize_p99_ms_c8": median(each("authorize_large", "c8", "p99_ms")),
        "authorize_vs_floor": ratio("authorize_large", "floor"),
        "authorize_vs_storage_floor": ratio("authorize_large", "storage_floor"),
        "consent_scaling": ratio("authorize_large", "authorize_few_consents"),
        "rule_scaling": ratio("authorize_large", "authorize_few_rules"),
        "authorize_rps_few_consents": median(each("authorize_few_consents", "c8", "rps")),
        "authorize_rps_few_rules": median(each("authorize_few_rules", "c8", "rps")),
        "batch_subjects_per_s": median([r["batch"]["subjects_per_s"] for r in rounds if "batch" in r]),
        "rss_mb_per_worker": max(rss.get("large") or [0.0]),
        "rss_mb_per_worker_all": rss,
        "first_decision_after_change": first_change,
        "http_errors": errors,
        "rounds_completed": len(rounds),
        "datagen": datagen_report,
        "rounds": rounds,
    }
    return out


def in_process(
    store: Store, keys: str, instance: Path, plan: Plan, client: tuple[str, str], backend: str, subjects: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The in-process measurements on the large world: first decision after a change, profile."""
    from consent_service.container import EXTENSION

    from .profile import authorize_profile

    app = store.app(keys, instance)
    services = app.extensions[EXTENSION]
    try:
        profile = authorize_profile(
            app,
            client_id=client[0],
            client_secret=client[1],
            subjects=subjects,
            requests=300 if plan.mode == "quick" else 1000,
            out=RESULTS / f"profile-authorize-{backend}.txt",
        )
        profile["cpu_ms_per_request"] = cpu_per_request(app, store, client, subjects)
        profile["commit_ms"] = commit_ms(services)
        return first_decision_after_change(services, plan), profile
    finally:
        services.sessions.kw["bind"].dispose()


def cpu_per_request(
    app: Any, store: Store, client: tuple[str, str], subjects: int, requests: int = 300
) -> dict[str, float]:
    """CPU time per request in process (Flask test client, no HTTP server, no load generator).

    Less disturbed by the neighbours than requests per second: it counts this process's CPU
    only. Rounds alternate floor, storage floor and authorize; medians of three.
    """
    from .apps import floor_app, storage_app

    storage = storage_app(config={"DATABASE_URL": store.url, "DB_SCHEMA": store.schema, "SECRET_KEY": SECRET})
    apps = {
        "floor": floor_app().test_client(),
        "storage_floor": storage.test_client(),
        "authorize": app.test_client(),
    }
    answer = apps["authorize"].post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "authorize"}, auth=client
    )
    headers = {"Authorization": f"Bearer {answer.get_json()['access_token']}"}
    rng = random.Random(5)
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(3):
        for name, test_client in apps.items():
            bodies = [
                {
                    "subject": {"system": SYSTEM, "value": datagen.subject_value(rng.randrange(subjects))},
                    "purpose": purpose,
                    "data_categories": categories,
                }
                for purpose, categories in (rng.choice(datagen.REQUESTS) for _ in range(requests))
            ]
            for body in bodies[:20]:
                test_client.post("/v1/authorize", json=body, headers=headers)
            started = time.process_time()
            for body in bodies:
                response = test_client.post("/v1/authorize", json=body, headers=headers)
                assert response.status_code == 200, response.get_data(as_text=True)[:200]
            samples[name].append((time.process_time() - started) / requests * 1000)
    out = {f"{name}_ms": round(statistics.median(values), 3) for name, values in samples.items()}
    out["authorize_vs_floor"] = round(out["floor_ms"] / out["authorize_ms"], 3)
    out["authorize_vs_storage_floor"] = round(out["storage_floor_ms"] / out["authorize_ms"], 3)
    return out


def commit_ms(services: Any, commits: int = 30) -> float:
    """Wall time of one small write transaction (BEGIN IMMEDIATE / UPDATE / COMMIT): the fsync floor.

    The update really changes the row (+1, then -1 to put it back): a no-op update is not
    written (SQLite) or flushed the same way.
    """
    from sqlalchemy import text

    from consent_service.storage.db import write

    times = []
    for n in range(commits):
        started = time.perf_counter()
        with write(services.sessions) as session:
            step = "+ 1" if n % 2 == 0 else "- 1"
            session.execute(text(f"UPDATE audit_head SET seq = seq {step} WHERE id = 1"))
            session.commit()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def first_decision_after_change(services: Any, plan: Plan) -> dict[str, Any]:
    """In process, on the large world: a normal decision vs the first one after a rule change.

    A community of ``plan.engine_rules`` rules with one member; the rule cache is warm; then a
    rule is added (the version bumped and the rule stamped with it, as the rule API does) and
    the next decision, which brings that community up to date, is timed. Median of five
    changes; normal = median of 50 calls.
    """
    import uuid

    from consent_service.core.caller import Caller, Via
    from consent_service.services.authorize import Subject, authorize
    from consent_service.storage import communities as community_store
    from consent_service.storage.db import write
    from consent_service.storage.models import Community, CommunityRule, Membership

    _, rules, _ = datagen.rule_rows(Sizes(consents=0, subjects=1, rules=plan.engine_rules, communities=1), 5)
    big = "comm-big"
    now = datetime.now(UTC)
    member = 0  # subject 0 exists in every world
    with write(services.sessions) as session:
        session.add(Community(id=big, name="big", policy_version=1, created_at=now))
        session.flush()
        session.add_all(
            CommunityRule(
                id=f"big-{n}",
                community_id=big,
                effect=r[2],
                purposes=json.loads(r[3]),
                data_categories=json.loads(r[4]),
                requesters=json.loads(r[5]),
                obligations=json.loads(r[6]),
                labels=[],
                reason="bench",
                created_at=now,
                created_by=datagen.STEWARD,
                created_by_client="bench",
                created_version=1,
            )
            for n, r in enumerate(rules)
        )
        session.add(
            Membership(
                subject_key=datagen.subject_key(SECRET, member),
                community_id=big,
                consent_id="bench",
                created_at=now,
            )
        )
        session.commit()
    caller = Caller(
        organization=REQUESTER, client_id="bench", scopes=frozenset({"authorize"}), via=Via.OPERATOR
    )
    subject = Subject(system=SYSTEM, value=datagen.subject_value(member))

    def decide() -> float:
        started = time.perf_counter()
        authorize(
            services,
            caller=caller,
            subject=subject,
            purpose="service-planning",
            data_categories=["housing"],
            now=datetime.now(UTC),
        )
        return (time.perf_counter() - started) * 1000

    for _ in range(10):
        decide()
    normal = [decide() for _ in range(50)]
    first = []
    for _ in range(5):
        with write(services.sessions) as session:
            # As the rule API does: bump the version, stamp the new rule with it.
            version = community_store.bump_policy_version(session, big)
            session.add(
                CommunityRule(
                    id=str(uuid.uuid4()),
                    community_id=big,
                    effect="require_approval",
                    purposes=["commercial"],
                    data_categories=["income"],
                    requesters=["org-1"],
                    obligations={},
                    labels=[],
                    reason="bench",
                    created_at=datetime.now(UTC),
                    created_by=datagen.STEWARD,
                    created_by_client="bench",
                    created_version=version,
                )
            )
            session.commit()
        first.append(decide())
        normal.extend(decide() for _ in range(5))
    return {
        "rules_in_community": plan.engine_rules + 5,
        "normal_ms": median(normal),
        "first_after_change_ms": median(first),
        "ratio": round(statistics.median(first) / statistics.median(normal), 2),
    }


# -- the whole run ------------------------------------------------------------------------------

TARGETS: list[tuple[str, str, float, str]] = [
    # (metric, comparison, bound, which backends)
    ("authorize_vs_storage_floor", ">=", 0.9, "all"),
    ("authorize_vs_floor", ">=", 0.25, "sqlite"),
    ("authorize_p99_ms_c2", "<=", 10, "all"),
    ("authorize_p99_ms_c8", "<=", 30, "all"),
    ("consent_scaling", ">=", 0.9, "all"),
    ("rule_scaling", ">=", 0.9, "all"),
    ("batch_subjects_per_s", ">=", 20_000, "all"),
    ("import_consents_per_s", ">=", 5_000, "all"),
    ("rss_mb_per_worker", "<=", 250, "all"),
]


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def check(name: str, value: Any, op: str, bound: float) -> None:
        met = value is not None and (value >= bound if op == ">=" else value <= bound)
        out.append({"metric": name, "value": value, "target": f"{op} {bound:g}", "met": bool(met)})

    engine = report.get("engine") or {}
    check("engine_us_p50", engine.get("engine_us_p50"), "<=", 40)
    check("engine_us_p99", engine.get("engine_us_p99"), "<=", 150)
    for backend, figures in report["backends"].items():
        if "error" in figures:
            continue
        for metric, op, bound, scope in TARGETS:
            if scope in ("all", backend):
                check(f"{backend}.{metric}", figures.get(metric), op, bound)
        change = figures.get("first_decision_after_change") or {}
        check(f"{backend}.first_decision_after_change_ratio", change.get("ratio"), "<=", 2)
    return out


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="consent-bench-"))
    try:
        yield path
    finally:
        if not keep:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


def run(plan: Plan, *, command: str, keep: bool = False) -> dict[str, Any]:
    began = time.monotonic()
    deadline = began + plan.budget_seconds
    load.ensure_wrk(log)
    report: dict[str, Any] = {
        "command": command,
        **commit(),
        "machine": machine(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_generator": "wrk" if load.WRK else "python (wrk not found)",
        "plan": plan.as_dict(),
    }
    log("engine micro-benchmark")
    engine_rounds = [
        engine_bench.run(rules=plan.engine_rules, calls=plan.engine_calls, seed=11 + n)
        for n in range(plan.rounds)
    ]
    report["engine"] = {
        "engine_us_p50": median([r["engine_us_p50"] for r in engine_rounds]),
        "engine_us_p99": median([r["engine_us_p99"] for r in engine_rounds]),
        "compile_ms_median": median([r["compile_ms_median"] for r in engine_rounds]),
        "rounds": engine_rounds,
    }
    log(f"generating worlds: {plan.large.as_dict()}")
    large = datagen.generate(plan.large, secret=SECRET)
    same_consents = (plan.few_rules.consents, plan.few_rules.subjects) == (
        plan.large.consents,
        plan.large.subjects,
    )
    worlds = {
        "large": large,
        "few_consents": datagen.generate(plan.few_consents, secret=SECRET),
        "few_rules": datagen.generate(
            plan.few_rules, secret=SECRET, consents=large.consents if same_consents else None
        ),
    }
    report["generate_s"] = {name: world.generate_s for name, world in worlds.items()}
    report["backends"] = {}
    with workspace(keep) as workdir:
        for backend in plan.backends:
            try:
                report["backends"][backend] = run_backend(backend, plan, worlds, workdir, deadline)
            except Exception as exc:  # one backend failing must not lose the other's figures
                log(f"{backend} failed: {exc!r}")
                report["backends"][backend] = {"error": repr(exc)}
    log(f"consent import: {plan.import_rows} rows")
    imports = import_bench.run(plan.import_rows, plan.backends, plan.rounds, pg_url=PG_URL)
    report["import"] = imports
    for backend, figures in imports["backends"].items():
        if "import_consents_per_s" in figures and "error" not in report["backends"].get(backend, {}):
            into = report["backends"].setdefault(backend, {})
            for name in ("import_consents_per_s", "import_cpu_us_per_consent"):
                into[name] = figures[name]
    report["targets"] = targets(report)
    report["elapsed_s"] = round(time.monotonic() - began, 1)
    return report
