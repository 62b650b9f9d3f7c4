"""Nothing acknowledged is lost when a worker is killed (issue 6 item 3).

    python -m bench.durability [--backend sqlite|postgresql] [--seconds 20] [--kills 3]

Starts the service under gunicorn (``consent-service serve``, 2 workers), then writer threads
record consents (each with its own ``Idempotency-Key``) and revoke some of them, while the
script ``kill -9``s a worker every few seconds. Afterwards, from the database itself:

* every consent that got a 201 exists, with its version 1, its "recorded" event and its audit
  entry; every revocation that got a 200 is there (status revoked, a "revoked" event);
* requests that got no answer (the killed worker's) are retried with the same key: each ends
  with exactly one consent, never two;
* the audit chain verifies (``consent-service audit verify``).

A positive control (``--control``) deletes one acknowledged consent behind the service's back
before the check, which must then report exactly one lost write.

Prints one JSON report and saves it to bench/results/durability-<backend>.json. Loopback only;
stops by itself (``--seconds`` of writes, every call with a timeout, servers stopped at exit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from typing import Any

from sqlalchemy import text

from bench.live_service import (
    bearer,
    call,
    consent_writes_held,
    deployment,
    log,
    make_client,
    register_system,
    save,
    token,
)

SUBJECT_SYSTEM = "urn:bench:durability"


def consent_body(value: str) -> dict[str, Any]:
    return {
        "subject": {"system": SUBJECT_SYSTEM, "value": value},
        "purposes": ["service-delivery"],
        "data_categories": ["housing"],
        "recipients": ["writer-org"],
        "evidence": {"method": "written", "obtained_by": "bench"},
    }


class Writers:
    """Threads that record and revoke, remembering exactly what was acknowledged."""

    def __init__(self, base: str, token_value: str, threads: int, seconds: float) -> None:
        self.base, self.headers = base, bearer(token_value)
        self.threads, self.seconds = threads, seconds
        self.lock = threading.Lock()
        self.acknowledged: dict[str, str] = {}  # idempotency key -> consent id (201)
        self.revoked: set[str] = set()  # consent ids whose revocation got 200
        self.unanswered: dict[str, str] = {}  # idempotency key -> subject value (no answer at all)
        self.unanswered_revocations: set[str] = set()
        self.other: dict[str, int] = {}  # status -> count, for anything else
        self.sent = 0

    def _count(self, status: int) -> None:
        with self.lock:
            self.other[str(status)] = self.other.get(str(status), 0) + 1

    def run_one(self, rng: random.Random, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            key, value = uuid.uuid4().hex, f"S-{uuid.uuid4().hex}"
            answer = call(
                self.base,
                "POST",
                "/v1/consents",
                body=consent_body(value),
                headers={**self.headers, "Idempotency-Key": key},
                timeout=10,
            )
            with self.lock:
                self.sent += 1
            if answer.status == 201:
                with self.lock:
                    self.acknowledged[key] = answer.body["id"]
                if rng.random() < 0.3:
                    revoked = call(
                        self.base,
                        "POST",
                        f"/v1/consents/{answer.body['id']}/revoke",
                        body={"reason": "bench"},
                        headers=self.headers,
                        timeout=10,
                    )
                    with self.lock:
                        self.sent += 1
                        if revoked.status == 200:
                            self.revoked.add(answer.body["id"])
                        elif revoked.status == 0:
                            self.unanswered_revocations.add(answer.body["id"])
                    if revoked.status not in (0, 200):
                        self._count(revoked.status)
            elif answer.status == 0:
                with self.lock:
                    self.unanswered[key] = value
            else:
                self._count(answer.status)

    def run(self) -> None:
        stop_at = time.monotonic() + self.seconds
        pool = [
            threading.Thread(target=self.run_one, args=(random.Random(i), stop_at), daemon=True)
            for i in range(self.threads)
        ]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(timeout=self.seconds + 60)


def killer(instance: Any, kills: int, seconds: float, done: list[dict[str, Any]]) -> None:
    """kill -9 one worker at evenly spaced moments inside the write window."""
    for i in range(kills):
        time.sleep(seconds / (kills + 1))
        workers = instance.worker_pids()
        if not workers:
            continue
        victim = random.choice(workers)
        os.kill(victim, signal.SIGKILL)
        done.append({"at_s": round(seconds / (kills + 1) * (i + 1), 1), "pid": victim})
        log(f"kill -9 worker {victim}")


def check(dep: Any, writers: Writers, retried: dict[str, str]) -> dict[str, Any]:
    engine = dep.engine()
    with engine.connect() as conn:
        consents, versions, events = consent_writes_held(conn)
        audited = {
            row.object_id
            for row in conn.execute(
                text("SELECT object_id FROM audit_entry WHERE tag IN ('consent:recorded', 'consent:revoked')")
            )
        }
    engine.dispose()
    lost = [
        cid
        for cid in writers.acknowledged.values()
        if cid not in consents or cid not in versions or (cid, "recorded") not in events or cid not in audited
    ]
    lost_revocations = [
        cid for cid in writers.revoked if consents.get(cid) != "revoked" or (cid, "revoked") not in events
    ]
    # A retry that made a second consent would leave more consents than distinct answers.
    answered = set(writers.acknowledged.values()) | set(retried.values())
    doubled = len(consents) - len(answered)
    retried_missing = [cid for cid in retried.values() if cid not in consents]
    return {
        "acknowledged_writes": len(writers.acknowledged) + len(writers.revoked),
        "acknowledged_consents": len(writers.acknowledged),
        "acknowledged_revocations": len(writers.revoked),
        "lost_writes": len(lost) + len(lost_revocations),
        "lost_examples": (lost + lost_revocations)[:5],
        "unanswered_then_retried": len(retried),
        "retried_missing": len(retried_missing),
        "doubled_by_retry": doubled,
        "consents_in_database": len(consents),
    }


def run(
    backend: str, *, seconds: float, kills: int, threads: int, control: bool, pg_url: str
) -> dict[str, Any]:
    with deployment(backend, pg_url=pg_url) as dep:
        instance = dep.start("durability", workers=2)
        admin = token(instance.base, *dep.admin)
        writer_token = make_client(instance.base, admin, "writer-org", "service-provider", ["consents:write"])
        register_system(instance.base, admin, SUBJECT_SYSTEM, "writer-org")
        writers = Writers(instance.base, writer_token, threads, seconds)
        killed: list[dict[str, Any]] = []
        chaos = threading.Thread(target=killer, args=(instance, kills, seconds, killed), daemon=True)
        log(f"{backend}: {threads} writers for {seconds:.0f} s, {kills} kill -9")
        chaos.start()
        writers.run()
        chaos.join(timeout=seconds + 30)
        time.sleep(1.0)  # the master has replaced the killed workers
        retried: dict[str, str] = {}
        for key, value in writers.unanswered.items():  # a client's retry, with the same key
            for _ in range(5):
                answer = call(
                    instance.base,
                    "POST",
                    "/v1/consents",
                    body=consent_body(value),
                    headers={**bearer(writer_token), "Idempotency-Key": key},
                    timeout=10,
                )
                if answer.status == 201:
                    retried[key] = answer.body["id"]
                    break
                time.sleep(0.5)
        verified = dep.cli("audit", "verify")
        dep.stop()
        if control and writers.acknowledged:
            victim = next(iter(writers.acknowledged.values()))
            engine = dep.engine()
            with engine.begin() as conn:
                for table in ("consent_event", "consent_version"):
                    conn.execute(text(f"DELETE FROM {table} WHERE consent_id = :c"), {"c": victim})
                conn.execute(
                    text("DELETE FROM idempotency_record WHERE CAST(body AS TEXT) LIKE :c"),
                    {"c": f"%{victim}%"},
                )
                conn.execute(text("DELETE FROM consent WHERE id = :c"), {"c": victim})
            engine.dispose()
            log(f"control: deleted acknowledged consent {victim}")
        result = check(dep, writers, retried)
        return {
            "backend": backend,
            "seconds": seconds,
            "writer_threads": threads,
            "workers": 2,
            "kills": killed,
            "requests_sent": writers.sent,
            "unanswered": len(writers.unanswered),
            "unanswered_revocations": len(writers.unanswered_revocations),
            "other_statuses": writers.other,
            "audit_verify": verified.strip()[-200:],
            "control": control,
            **result,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.durability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--control", action="store_true", help="delete one acknowledged write first")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CONSENT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args(argv)
    report = run(
        args.backend,
        seconds=min(args.seconds, 600),
        kills=args.kills,
        threads=args.threads,
        control=args.control,
        pg_url=args.pg_url,
    )
    report["command"] = "python -m bench.durability " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(report, indent=2, sort_keys=True))
    if not args.control:
        save(f"durability-{args.backend}.json", report)
    expected_lost = 1 if args.control else 0
    return 0 if report["lost_writes"] == expected_lost and report["doubled_by_retry"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
