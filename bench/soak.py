"""Load and soak under gunicorn, with kill -9 of a worker in the middle (issue 6 item 9).

    python -m bench.soak [--backend sqlite|postgresql|both] [--seconds 120] [--threads 8] [--control]

SQLite: one instance (``consent-service serve``, 2 workers). PostgreSQL: two instances of 2
workers on one schema of their own, requests spread round-robin over both. The store is seeded
with a bench world (bench/datagen.py: subjects with consents, half of them in communities with
rules and approvals), then ``--threads`` closed-loop clients send, for ``--seconds``:

* 90% ``POST /v1/authorize`` (random subject, one of ``datagen.REQUESTS``, requester
  ``bench-univ`` or ``bench-gla``);
* 7% ``POST /v1/consents`` and 3% ``POST /v1/consents/{id}/revoke``, each with its own
  ``Idempotency-Key``; a write that got no answer is retried with the same key, as a client would.

Half-way through, one worker (of the first instance) gets ``kill -9``; gunicorn replaces it.
Afterwards, from the database itself:

* every decision answered with 200 has exactly one decision row and one ``decision:*`` audit
  entry with the same outcome; decision rows without an answer (committed by the killed worker,
  answer lost with it) are counted apart and must not outnumber the unanswered authorizes;
* every acknowledged write is there (consent with version 1, its event and audit entry; a
  revocation's status, event and audit entry): 0 lost; no consent exists that no one was told of;
* the audit chain verifies (``consent-service audit verify``);
* RSS of every gunicorn process (``/proc``) at start, every 15 s, and at the end.

``--control`` plants faults so each zero is shown able to fire: with the decision table renamed
for a moment five authorizes must answer 5xx; then, behind the service's back, one acknowledged
consent is deleted, one acknowledged revocation undone, one answered decision's row deleted,
another's audit entry deleted (the chain must break) and one unannounced consent copied in.

Prints one JSON report and saves bench/results/soak-<backend>.json (soak-<backend>-control.json).
Loopback only; bounded (``--seconds`` at most 600, every call with a timeout, thread joins with
deadlines, servers stopped at exit by process group, the PostgreSQL schema dropped).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.datagen import (
    REQUESTER,
    REQUESTS,
    SYSTEM,
    Sizes,
    _load_postgres,
    _load_sqlite,
    generate,
    subject_value,
)
from bench.live_service import (
    CLI,
    PG_URL,
    Answer,
    bearer,
    call,
    consent_writes_held,
    deployment,
    log,
    make_client,
    save,
    token,
)
from bench.stale_check import percentile

SIZES = Sizes(consents=20_000, subjects=5_000, rules=500, communities=50)
RECORDER = "bench-outreach"  # the seeded consents' recorder: its client may revoke them too
TIMEOUT = 10.0
KILL_WINDOW = (-1.0, 5.0)  # seconds around the kill in which a connection error is "the kill's"


def consent_body(rng: random.Random, subjects: int) -> dict[str, Any]:
    return {
        "subject": {"system": SYSTEM, "value": subject_value(rng.randrange(subjects))},
        "purposes": rng.sample(["research", "service-planning", "public-health"], rng.randint(1, 2)),
        "data_categories": rng.sample(["health", "housing", "income", "mental-health"], rng.randint(1, 2)),
        "recipients": [RECORDER, REQUESTER] + (["bench-gla"] if rng.random() < 0.5 else []),
        "evidence": {"method": "written", "obtained_by": "soak"},
    }


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory(instances: list[Any]) -> dict[str, Any]:
    """RSS (MB) of each instance's master and workers: the workers' sum and the largest."""
    found: dict[str, Any] = {}
    for instance in instances:
        workers = {pid: rss_kb(pid) for pid in instance.worker_pids()}
        sizes = [kb for kb in workers.values() if kb is not None]
        found[instance.name] = {
            "master_mb": round((rss_kb(instance.process.pid) or 0) / 1024, 1),
            "workers_mb": {str(pid): round(kb / 1024, 1) for pid, kb in workers.items() if kb is not None},
            "workers_sum_mb": round(sum(sizes) / 1024, 1),
            "worker_max_mb": round(max(sizes, default=0) / 1024, 1),
        }
    return found


class Soak:
    """Closed-loop clients with the 90/7/3 mix, remembering every answer."""

    def __init__(
        self,
        instances: list[Any],
        tokens: dict[str, str],
        revocable: list[str],
        *,
        threads: int,
        seconds: float,
    ) -> None:
        self.instances, self.tokens = instances, tokens
        self.threads, self.seconds = threads, seconds
        self.lock = threading.Lock()
        self.turn = itertools.count()
        self.t0 = 0.0
        self.records: list[tuple[str, float, float, int]] = []  # kind, start s, end s, status (0: none)
        self.decisions: dict[str, str] = {}  # decision id -> outcome, of every 200
        self.acknowledged: dict[str, str] = {}  # idempotency key -> consent id (201)
        self.revoked: set[str] = set()  # consent ids whose revocation got 200
        self.revocable = revocable  # active consents, each revoked at most once
        self.retries: list[dict[str, Any]] = []  # unanswered writes and how their retries ended
        self.kill: dict[str, Any] = {}

    def base(self) -> str:
        return str(self.instances[next(self.turn) % len(self.instances)].base)

    def send(self, kind: str, path: str, body: Any, headers: dict[str, str]) -> Answer:
        started = time.monotonic()
        answer = call(self.base(), "POST", path, body=body, headers=headers, timeout=TIMEOUT)
        with self.lock:
            self.records.append((kind, started - self.t0, time.monotonic() - self.t0, answer.status))
        return answer

    def write(self, kind: str, path: str, body: Any, ok: int) -> Answer:
        """A write with its own key; without an answer, retried with that key (up to 6 times)."""
        headers = {**bearer(self.tokens["writer"]), "Idempotency-Key": uuid.uuid4().hex}
        answer = self.send(kind, path, body, headers)
        if answer.status == 0:
            retry = {"kind": kind, "first_error": answer.error[:120], "attempts": 0, "status": 0}
            for _ in range(6):
                time.sleep(0.5)
                answer = self.send(f"{kind}-retry", path, body, headers)
                retry["attempts"] += 1
                retry["status"] = answer.status
                if answer.status != 0:
                    break
            with self.lock:
                self.retries.append(retry)
        if answer.status == ok:
            with self.lock:
                if kind == "record":
                    self.acknowledged[headers["Idempotency-Key"]] = answer.body["id"]
                    self.revocable.append(answer.body["id"])
                else:
                    self.revoked.add(path.split("/")[3])
        return answer

    def loop(self, rng: random.Random, stop_at: float) -> None:
        subjects = SIZES.subjects
        while time.monotonic() < stop_at:
            roll = rng.random()
            if roll < 0.90:
                purpose, categories = rng.choice(REQUESTS)
                requester = "univ" if rng.random() < 0.8 else "gla"
                answer = self.send(
                    "authorize",
                    "/v1/authorize",
                    {
                        "subject": {"system": SYSTEM, "value": subject_value(rng.randrange(subjects))},
                        "purpose": purpose,
                        "data_categories": categories,
                    },
                    bearer(self.tokens[requester]),
                )
                if answer.status == 200:
                    with self.lock:
                        self.decisions[answer.body["decision_id"]] = answer.body["decision"]
                continue
            victim = None
            if roll >= 0.97:
                with self.lock:
                    if self.revocable:
                        victim = self.revocable.pop(rng.randrange(len(self.revocable)))
            if victim is None:
                self.write("record", "/v1/consents", consent_body(rng, subjects), 201)
            else:
                self.write("revoke", f"/v1/consents/{victim}/revoke", {"reason": "soak"}, 200)

    def killer(self) -> None:
        """kill -9 one worker of the first instance half-way; note when gunicorn replaced it."""
        time.sleep(self.seconds / 2)
        workers = self.instances[0].worker_pids()
        if not workers:
            return
        victim = random.choice(workers)
        os.kill(victim, signal.SIGKILL)
        at = time.monotonic() - self.t0
        self.kill = {"instance": self.instances[0].name, "pid": victim, "at_s": round(at, 2)}
        log(f"kill -9 worker {victim} at {at:.1f} s")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = self.instances[0].worker_pids()
            if victim not in now and len(now) >= len(workers):
                self.kill["replacement_forked_after_s"] = round(time.monotonic() - self.t0 - at, 2)
                return
            time.sleep(0.05)

    def run(self, samples: list[dict[str, Any]]) -> None:
        self.t0 = time.monotonic()
        stop_at = self.t0 + self.seconds
        pool = [
            threading.Thread(target=self.loop, args=(random.Random(i), stop_at), daemon=True)
            for i in range(self.threads)
        ]
        chaos = threading.Thread(target=self.killer, daemon=True)
        for thread in [*pool, chaos]:
            thread.start()
        while any(thread.is_alive() for thread in pool) and time.monotonic() < stop_at + 90:
            time.sleep(1.0)
            elapsed = time.monotonic() - self.t0
            if elapsed // 15 > (len(samples) - 1) and elapsed < self.seconds:
                samples.append({"at_s": round(elapsed), **memory(self.instances)})
        for thread in [*pool, chaos]:
            thread.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        def latencies(kinds: set[str]) -> dict[str, Any]:
            done = [
                (end - start) * 1000
                for kind, start, end, status in self.records
                if kind in kinds and status != 0
            ]
            return {
                "answered": len(done),
                "p50_ms": percentile(done, 0.50),
                "p95_ms": percentile(done, 0.95),
                "p99_ms": percentile(done, 0.99),
                "max_ms": round(max(done, default=0.0), 1),
            }

        first = [r for r in self.records if not r[0].endswith("-retry")]
        elapsed = max((r[2] for r in self.records), default=1.0)
        statuses: dict[str, Counter[str]] = {}
        for kind, _, _, status in self.records:
            statuses.setdefault(kind, Counter())[str(status)] += 1
        kill_at = self.kill.get("at_s")
        no_answer = [r for r in self.records if r[3] == 0]
        in_window = [
            r
            for r in no_answer
            if kill_at is not None and kill_at + KILL_WINDOW[0] <= r[2] <= kill_at + KILL_WINDOW[1]
        ]
        held = [r for r in self.records if kill_at is not None and r[1] <= kill_at <= r[2]]
        windows: dict[int, list[float]] = {}
        for _, start, end, status in self.records:
            if status != 0 and end < self.seconds:  # whole windows of the run only
                windows.setdefault(int(end // 30) * 30, []).append((end - start) * 1000)
        return {
            "requests": len(self.records),
            "first_attempts": len(first),
            "seconds": round(elapsed, 1),
            "by_30s": [
                {"from_s": at, "rps": round(len(done) / 30, 1), "p95_ms": percentile(done, 0.95)}
                for at, done in sorted(windows.items())
            ],
            "rps": round(len(self.records) / elapsed, 1),
            "mix": dict(Counter(r[0] for r in first)),
            "outcomes": dict(Counter(self.decisions.values())),
            "authorize": latencies({"authorize"}),
            "writes": latencies({"record", "revoke"}),
            "statuses_by_kind": {kind: dict(counts) for kind, counts in sorted(statuses.items())},
            "server_errors_5xx": sum(1 for r in self.records if r[3] >= 500),
            "connection_errors": len(no_answer),
            "connection_errors_in_kill_window": len(in_window),
            "kill_window_s": list(KILL_WINDOW),
            "in_flight_at_kill": {
                "requests": len(held),
                "answered": sum(1 for r in held if r[3] != 0),
                "no_answer": sum(1 for r in held if r[3] == 0),
            },
            "unanswered_authorize": sum(1 for r in self.records if r[0] == "authorize" and r[3] == 0),
            "unanswered_writes_retried": len(self.retries),
            "unanswered_writes_unresolved": sum(1 for r in self.retries if r["status"] == 0),
            "retries": self.retries[:10],
        }


def check(dep: Any, soak: Soak, seeded: set[str]) -> dict[str, Any]:
    """What the database holds, against what the clients were told."""
    engine = dep.engine()
    with engine.connect() as conn:
        consents, versions, events = consent_writes_held(conn)
        audited = {
            (row.object_id, row.tag)
            for row in conn.execute(
                text(
                    "SELECT object_id, tag FROM audit_entry"
                    " WHERE tag IN ('consent:recorded', 'consent:revoked')"
                )
            )
        }
        rows = {row.id: row.outcome for row in conn.execute(text("SELECT id, outcome FROM decision"))}
        entries: Counter[str] = Counter()
        audit_outcome: dict[str, str] = {}
        for row in conn.execute(text("SELECT object_id, tag FROM audit_entry WHERE tag LIKE 'decision:%'")):
            entries[row.object_id] += 1
            audit_outcome[row.object_id] = row.tag.split(":", 1)[1]
    engine.dispose()
    lost = [
        cid
        for cid in soak.acknowledged.values()
        if cid not in consents
        or cid not in versions
        or (cid, "recorded") not in events
        or (cid, "consent:recorded") not in audited
    ]
    lost_revocations = [
        cid
        for cid in soak.revoked
        if consents.get(cid) != "revoked"
        or (cid, "revoked") not in events
        or (cid, "consent:revoked") not in audited
    ]
    unannounced = sorted(set(consents) - seeded - set(soak.acknowledged.values()))
    answered = soak.decisions
    unanswered_rows = [d for d in rows if d not in answered]
    return {
        "acknowledged_consents": len(soak.acknowledged),
        "acknowledged_revocations": len(soak.revoked),
        "lost_consents": len(lost),
        "lost_revocations": len(lost_revocations),
        "lost_writes": len(lost) + len(lost_revocations),
        "lost_examples": (lost + lost_revocations)[:5],
        "consents_no_one_was_told_of": len(unannounced),
        "unannounced_examples": unannounced[:5],
        "decisions": {
            "answered_200": len(answered),
            "rows": len(rows),
            "audit_entries": sum(entries.values()),
            "answered_without_row": sum(1 for d in answered if d not in rows),
            "answered_without_audit_entry": sum(1 for d in answered if entries[d] == 0),
            "answered_with_several_audit_entries": sum(1 for d in answered if entries[d] > 1),
            "outcome_differs": sum(
                1
                for d, outcome in answered.items()
                if (d in rows and rows[d] != outcome) or (d in audit_outcome and audit_outcome[d] != outcome)
            ),
            "rows_without_audit_entry": sum(1 for d in rows if entries[d] == 0),
            "audit_entries_without_row": sum(1 for d in entries if d not in rows),
            "recorded_but_unanswered": len(unanswered_rows),
        },
    }


def audit_verify(dep: Any) -> dict[str, Any]:
    done = subprocess.run(
        [*CLI, "audit", "verify"],
        env=dep.env,
        cwd=dep.workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    said = (done.stdout + done.stderr).strip().splitlines()
    return {"exit_status": done.returncode, "said": said[-1][:300] if said else ""}


def control_5xx(dep: Any, soak: Soak) -> None:
    """The decision table renamed for a moment: five authorizes must be 5xx (and counted)."""
    engine = dep.engine()
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE decision RENAME TO decision_soak_control"))
        for i in range(5):
            soak.send(
                "authorize-control",
                "/v1/authorize",
                {
                    "subject": {"system": SYSTEM, "value": subject_value(i)},
                    "purpose": "research",
                    "data_categories": ["health"],
                },
                bearer(soak.tokens["univ"]),
            )
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE decision_soak_control RENAME TO decision"))
        engine.dispose()
    log("control: 5 authorizes with the decision table renamed")


def plant_faults(dep: Any, soak: Soak) -> dict[str, str]:
    """Behind the service's back: one lost consent, one undone revocation, two decision faults, a copy."""
    consent = next(c for c in soak.acknowledged.values() if c not in soak.revoked)
    revocation = next(iter(soak.revoked))
    no_row, no_audit, flipped, doubled = list(soak.decisions)[:4]
    copy = f"soak-copy-{uuid.uuid4().hex[:8]}"
    columns = "subject_key, recorded_by, status, current_version, created_at, updated_at"
    entry = "at, tag, actor_org, actor_client, object_id, payload, prev_hash, hash"
    engine = dep.engine()
    with engine.begin() as conn:
        for table in ("consent_event", "consent_version"):
            conn.execute(text(f"DELETE FROM {table} WHERE consent_id = :c"), {"c": consent})
        conn.execute(text("DELETE FROM consent WHERE id = :c"), {"c": consent})
        conn.execute(
            text("UPDATE consent SET status = 'active', revoked_at = NULL WHERE id = :c"), {"c": revocation}
        )
        conn.execute(
            text("DELETE FROM consent_event WHERE consent_id = :c AND kind = 'revoked'"), {"c": revocation}
        )
        conn.execute(text("DELETE FROM decision_community WHERE decision_id = :d"), {"d": no_row})
        conn.execute(text("DELETE FROM decision WHERE id = :d"), {"d": no_row})
        conn.execute(text("DELETE FROM audit_entry WHERE object_id = :d"), {"d": no_audit})
        conn.execute(
            text(
                "UPDATE decision SET outcome = CASE WHEN outcome = 'permit' THEN 'deny' "
                "ELSE 'permit' END WHERE id = :d"
            ),
            {"d": flipped},
        )
        conn.execute(
            text(
                f"INSERT INTO audit_entry (seq, {entry}) SELECT (SELECT MAX(seq) + 1 FROM "
                f"audit_entry), {entry} FROM audit_entry WHERE object_id = :d"
            ),
            {"d": doubled},
        )
        conn.execute(
            text(f"INSERT INTO consent (id, {columns}) SELECT :n, {columns} FROM consent WHERE id = :c"),
            {"n": copy, "c": revocation},
        )
    engine.dispose()
    planted = {
        "deleted_consent": consent,
        "undone_revocation": revocation,
        "deleted_decision_row": no_row,
        "deleted_decision_audit_entry": no_audit,
        "flipped_decision_outcome": flipped,
        "doubled_decision_audit_entry": doubled,
        "copied_consent": copy,
    }
    log(f"control: planted {planted}")
    return planted


def run(backend: str, *, seconds: float, threads: int, control: bool, pg_url: str) -> dict[str, Any]:
    with deployment(backend, pg_url=pg_url) as dep:
        started = time.monotonic()
        world = generate(SIZES, secret=dep.env["CONSENT_SECRET_KEY"], seed=11)
        if backend == "sqlite":
            _load_sqlite(dep.env["CONSENT_DATABASE_URL"].removeprefix("sqlite:///"), world.tables)
        else:
            _load_postgres(dep.env["CONSENT_DATABASE_URL"], dep.schema, world.tables)
        consents, versions = world.consents
        seeded = {row[0] for row in consents}
        open_ended = {row[0] for row in versions if row[6] is None}
        revocable = [row[0] for row in consents if row[3] == "active" and row[0] in open_ended]
        log(f"{backend}: seeded {SIZES.as_dict()} in {time.monotonic() - started:.1f} s")
        instances = [
            dep.start(f"{backend}-{name}", workers=2)
            for name in (["a"] if backend == "sqlite" else ["a", "b"])
        ]
        admin = token(instances[0].base, *dep.admin)
        tokens = {
            "writer": make_client(instances[0].base, admin, RECORDER, "service-provider", ["consents:write"]),
            "univ": make_client(instances[0].base, admin, REQUESTER, "research", ["authorize"]),
            "gla": make_client(instances[0].base, admin, "bench-gla", "government", ["authorize"]),
        }
        soak = Soak(instances, tokens, revocable, threads=threads, seconds=seconds)
        samples = [{"at_s": 0, **memory(instances)}]
        log(f"{backend}: {len(instances)} instance(s) x 2 workers, {threads} clients for {seconds:.0f} s")
        soak.run(samples)
        time.sleep(1.0)
        samples.append({"at_s": round(time.monotonic() - soak.t0), **memory(instances)})
        planted: dict[str, str] = {}
        if control:
            control_5xx(dep, soak)
        dep.stop()
        if control:
            planted = plant_faults(dep, soak)
        verified = audit_verify(dep)
        result = check(dep, soak, seeded)
        summary = soak.summary()
        decisions = result["decisions"]
        return {
            "backend": backend,
            "instances": len(instances),
            "workers_per_instance": 2,
            "client_threads": threads,
            "generator": "python threads on the same 2 cores (closed loop, a new connection per request)",
            "world": SIZES.as_dict(),
            "kill": soak.kill,
            **summary,
            **result,
            "decisions_equal": decisions["answered_without_row"]
            == decisions["answered_without_audit_entry"]
            == decisions["answered_with_several_audit_entries"]
            == decisions["outcome_differs"]
            == decisions["rows_without_audit_entry"]
            == decisions["audit_entries_without_row"]
            == 0
            and decisions["recorded_but_unanswered"] <= summary["unanswered_authorize"],
            "audit_verify": verified,
            "memory": {
                "start": samples[0],
                "end": samples[-1],
                "workers_sum_mb_timeline": [
                    {
                        "at_s": s["at_s"],
                        **{name: v["workers_sum_mb"] for name, v in s.items() if name != "at_s"},
                    }
                    for s in samples
                ],
            },
            "control": control,
            "planted": planted,
        }


def verdict(report: dict[str, Any], control: bool) -> list[str]:
    """What is wrong with the report (empty: as expected)."""
    problems = []
    decisions = report["decisions"]
    if control:
        expected = {"lost_consents": 1, "lost_revocations": 1, "consents_no_one_was_told_of": 1}
        problems += [f"{k}={report[k]}, expected {v}" for k, v in expected.items() if report[k] != v]
        problems += [
            f"{k}={decisions[k]}, expected 1"
            for k in (
                "answered_without_row",
                "answered_without_audit_entry",
                "answered_with_several_audit_entries",
                "outcome_differs",
            )
            if decisions[k] != 1
        ]
        if report["server_errors_5xx"] < 5:
            problems.append("the renamed decision table gave fewer than 5 server errors")
        if report["audit_verify"]["exit_status"] == 0:
            problems.append("audit verify passed with an entry deleted")
    else:
        for key in (
            "lost_writes",
            "consents_no_one_was_told_of",
            "server_errors_5xx",
            "unanswered_writes_unresolved",
        ):
            if report[key]:
                problems.append(f"{key}={report[key]}")
        if not report["decisions_equal"]:
            problems.append(f"decisions differ: {decisions}")
        if report["audit_verify"]["exit_status"] != 0:
            problems.append(f"audit verify: {report['audit_verify']['said']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=120.0, help="per backend (at most 600)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--control", action="store_true", help="plant faults; every check must fire")
    parser.add_argument("--pg-url", default=os.environ.get("CONSENT_BENCH_PG_URL", PG_URL))
    args = parser.parse_args(argv)
    command = "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    failed = False
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        report = run(
            backend,
            seconds=max(4.0, min(args.seconds, 600)),
            threads=max(1, min(args.threads, 64)),
            control=args.control,
            pg_url=args.pg_url,
        )
        report["command"] = command
        report["problems"] = verdict(report, args.control)
        failed = failed or bool(report["problems"])
        print(json.dumps(report, indent=2, sort_keys=True))
        save(f"soak-{backend}{'-control' if args.control else ''}.json", report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
