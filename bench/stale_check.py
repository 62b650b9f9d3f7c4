"""No stale decisions across instances (issue 6 item 4; issue 5 item 5).

    python -m bench.stale_check [--trials 40] [--threads 4] [--stale]

Two gunicorn instances (``consent-service serve``, 2 workers each) on one PostgreSQL schema of
their own, migrated once with ``consent-service db upgrade``. Every change goes through instance
A; as soon as A acknowledges it, the same question is asked of instance B, whose workers have
the community's rules compiled and cached from earlier answers:

* revoke-then-authorize: a permitted subject's consent is revoked through A; B must deny;
* rule-change-then-authorize: a deny rule is added to the subject's community through A; B
  must deny (two asks, to reach both of B's workers).

Each permit B gives after the change was acknowledged is a stale permit: there must be none.
``--stale`` starts B with the test-only ``CONSENT_TESTING_ONLY_STALE_RULE_CACHE`` (a rule
cache that ignores policy versions) and shows that the check reports stale permits then.
Trials run on ``--threads`` threads at once. Prints a JSON report and saves it to
bench/results/stale-check[-stale-mode].json; exit status 0 when the result is the expected one
(0 stale permits, or > 0 in --stale mode). Loopback only; bounded by --trials and timeouts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.live_service import (
    PG_URL,
    bearer,
    call,
    deployment,
    log,
    make_client,
    register_system,
    save,
    token,
)

SYSTEM = "urn:bench:stale"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


class Race:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.trials = self.stale_permits = self.stale_denies = self.skipped = self.errors = 0
        self.gap_ms: list[float] = []  # from the change's acknowledgement to B's answer

    def record(self, **counts: int) -> None:
        with self.lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "stale_permits": self.stale_permits,
            "stale_denies": self.stale_denies,
            "skipped": self.skipped,
            "errors": self.errors,
            "ack_to_answer_ms_p50": percentile(self.gap_ms, 0.5),
            "ack_to_answer_ms_p95": percentile(self.gap_ms, 0.95),
        }


def run(*, trials: int, threads: int, stale: bool, pg_url: str) -> dict[str, Any]:
    with deployment("postgresql", pg_url=pg_url) as dep:
        a = dep.start("instance-a", workers=2)
        b = dep.start(
            "instance-b",
            workers=2,
            extra_env={"CONSENT_TESTING_ONLY_STALE_RULE_CACHE": "true"} if stale else None,
        )
        admin = token(a.base, *dep.admin)
        recorder = make_client(a.base, admin, "recorder", "service-provider", ["consents:write"])
        register_system(a.base, admin, SYSTEM, "recorder")
        requester = make_client(a.base, admin, "univ", "research", ["authorize"])
        steward = make_client(a.base, admin, "council", "community-governance", ["rules:write"])

        def consent(value: str, communities: list[str]) -> str:
            answer = call(
                a.base,
                "POST",
                "/v1/consents",
                headers=bearer(recorder),
                body={
                    "subject": {"system": SYSTEM, "value": value},
                    "communities": communities,
                    "purposes": ["research"],
                    "data_categories": ["health"],
                    "recipients": ["univ"],
                    "evidence": {"method": "written", "obtained_by": "bench"},
                },
            )
            assert answer.status == 201, answer
            return str(answer.body["id"])

        def ask_b(value: str) -> str:
            answer = call(
                b.base,
                "POST",
                "/v1/authorize",
                headers=bearer(requester),
                body={
                    "subject": {"system": SYSTEM, "value": value},
                    "purpose": "research",
                    "data_categories": ["health"],
                },
            )
            return str(answer.body["decision"]) if answer.status == 200 else f"http-{answer.status}"

        revoke_race, rule_race = Race("revoke-then-authorize"), Race("rule-change-then-authorize")

        def revoke_trial(i: int) -> None:
            value = f"revoke-{i}"
            consent_id = consent(value, [])
            if [ask_b(value) for _ in range(3)] != ["permit"] * 3:  # warm B; a trial needs a permit first
                revoke_race.record(skipped=1)
                return
            done = call(
                a.base,
                "POST",
                f"/v1/consents/{consent_id}/revoke",
                headers=bearer(recorder),
                body={"reason": "bench"},
            )
            acked = time.perf_counter()
            if done.status != 200:
                revoke_race.record(errors=1)
                return
            answer = ask_b(value)
            revoke_race.gap_ms.append((time.perf_counter() - acked) * 1000)
            revoke_race.record(
                trials=1, stale_permits=int(answer == "permit"), errors=int(answer.startswith("http"))
            )

        def rule_trial(i: int) -> None:
            community, value = f"community-{i}", f"member-{i}"
            made = call(
                a.base,
                "POST",
                "/v1/communities",
                headers=bearer(admin),
                body={"id": community, "name": community, "stewards": ["council"]},
            )
            assert made.status == 201, made
            consent(value, [community])
            if [ask_b(value) for _ in range(4)] != ["permit"] * 4:  # both of B's workers compile the rules
                rule_race.record(skipped=1)
                return
            rule = call(
                a.base,
                "POST",
                f"/v1/communities/{community}/rules",
                headers=bearer(steward),
                body={
                    "effect": "deny",
                    "purposes": ["research"],
                    "data_categories": ["*"],
                    "requesters": ["*"],
                    "reason": "bench",
                },
            )
            acked = time.perf_counter()
            if rule.status != 201:
                rule_race.record(errors=1)
                return
            answers = [ask_b(value), ask_b(value)]
            rule_race.gap_ms.append((time.perf_counter() - acked) * 1000)
            rule_race.record(
                trials=1,
                stale_permits=answers.count("permit"),
                errors=sum(x.startswith("http") for x in answers),
            )
            # And back: the rule retired through A, B must permit again (a stale deny otherwise).
            retired = call(
                a.base,
                "DELETE",
                f"/v1/communities/{community}/rules/{rule.body['id']}",
                headers=bearer(steward),
                body={"reason": "bench"},
            )
            if retired.status == 200:
                rule_race.record(stale_denies=int(ask_b(value) == "deny"))

        def in_threads(trial: Callable[[int], None], count: int) -> None:
            queue = list(range(count))
            lock = threading.Lock()

            def worker() -> None:
                while True:
                    with lock:
                        if not queue:
                            return
                        i = queue.pop()
                    try:
                        trial(i)
                    except Exception as exc:  # a broken trial is an error, never a pass
                        log(f"trial {i} failed: {exc!r}")
                        (revoke_race if trial is revoke_trial else rule_race).record(errors=1)

            pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join(timeout=600)

        started = time.monotonic()
        log(f"{'STALE MODE: ' if stale else ''}{trials} trials of each race on {threads} threads")
        in_threads(revoke_trial, trials)
        in_threads(rule_trial, trials)
        return {
            "mode": "deliberately stale (TESTING_ONLY_STALE_RULE_CACHE on B)" if stale else "normal",
            "backend": "postgresql",
            "instances": 2,
            "workers_per_instance": 2,
            "threads": threads,
            "seconds": round(time.monotonic() - started, 1),
            "races": {race.name: race.as_dict() for race in (revoke_race, rule_race)},
            "stale_permits": revoke_race.stale_permits + rule_race.stale_permits,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stale_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=40, help="trials of each race (at most 500)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--stale", action="store_true", help="B with the test-only stale rule cache")
    parser.add_argument("--pg-url", default=os.environ.get("CONSENT_BENCH_PG_URL", PG_URL))
    args = parser.parse_args(argv)
    report = run(trials=min(args.trials, 500), threads=args.threads, stale=args.stale, pg_url=args.pg_url)
    report["command"] = "python -m bench.stale_check " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(report, indent=2, sort_keys=True))
    save("stale-check-stale-mode.json" if args.stale else "stale-check.json", report)
    ok = report["stale_permits"] > 0 if args.stale else report["stale_permits"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
