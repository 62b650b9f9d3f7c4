"""``python -m bench [--quick]``: run the benchmark, print one JSON document, save it.

    make bench                       # full sizes (1M consents ...), < 40 min on 2 cores
    python -m bench --quick          # small sizes, a few minutes
    python -m bench --backends sqlite --rounds 3 --seconds 10

Needs PostgreSQL at 127.0.0.1:5432 (trust, database ``test``; the run uses schemas of its own
and drops them) unless ``--backends sqlite``; ``wrk`` for the HTTP load (``apt-get install
wrk``), else a slower Python load generator is used and the report says so.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from . import run as bench_run


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs (a few minutes)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql")
    parser.add_argument("--rounds", type=int, help="rounds (median taken; at least 3 for the report)")
    parser.add_argument("--seconds", type=float, help="seconds per load run")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every world size (e.g. 0.1)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: nproc)")
    parser.add_argument("--pg-url", default=bench_run.PG_URL)
    parser.add_argument("--budget-minutes", type=float, help="stop starting new rounds after this long")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (databases, server logs)")
    parser.add_argument("--out", default=str(bench_run.RESULTS / "latest.json"))
    args = parser.parse_args(args_list)

    plan = bench_run.plan_for("quick" if args.quick else "full", scale=args.scale)
    plan.backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    for name in plan.backends:
        if name not in ("sqlite", "postgresql"):
            parser.error(f"unknown backend {name!r}")
    if args.rounds:
        plan.rounds = args.rounds
    if args.seconds:
        plan.seconds = args.seconds
    if args.workers:
        plan.workers = args.workers
    if args.budget_minutes:
        plan.budget_seconds = args.budget_minutes * 60
    bench_run.PG_URL = args.pg_url
    report = bench_run.run(plan, command=shlex.join(["python", "-m", "bench", *args_list]), keep=args.keep)
    text = json.dumps(report, indent=2, default=str)
    out = bench_run.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    for target in report["targets"]:
        print(
            f"{'met    ' if target['met'] else 'MISSED '} {target['metric']} = {target['value']} "
            f"(target {target['target']})",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
