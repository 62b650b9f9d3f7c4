"""The larger schemathesis run (issue 6 item 5): the suite's hostile-input test with more examples.

    python -m bench.fuzz [--examples 200] [--backends sqlite,postgresql] [--random]

Runs ``tests/test_hostile_input.py::test_schemathesis_finds_no_error_in_any_operation`` (positive
and negative generation, every operation of /openapi.json) with ``CONSENT_FUZZ_EXAMPLES`` examples
per operation and mode instead of the suite's 25. ``--random`` draws new examples each run (the
suite's are fixed, ``derandomize``). Bounded: at most 2000 examples per operation and mode, and a
time limit for the whole run. Prints a JSON report and saves it to bench/results/fuzz.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench.live_service import PG_URL, save

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--minutes", type=float, default=30)
    args = parser.parse_args(argv)
    examples = max(1, min(args.examples, 2000))
    env = {**os.environ, "CONSENT_FUZZ_EXAMPLES": str(examples)}
    env.pop("CONSENT_FUZZ_RANDOM", None)
    if args.random:
        env["CONSENT_FUZZ_RANDOM"] = "1"
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    selector = " or ".join(backends)
    if "postgresql" in backends:
        env.setdefault("CONSENT_TEST_DATABASE_URL", PG_URL)
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_hostile_input.py::test_schemathesis_finds_no_error_in_any_operation",
            "-k",
            selector,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=args.minutes * 60,
        check=False,
    )
    lines = re.findall(r"^\d+ (?:passed|failed).*$", done.stdout, re.MULTILINE)
    summary = (lines or [done.stdout[-300:]])[-1]
    report = {
        "examples_per_operation_and_mode": examples,
        "random": args.random,
        "backends": backends,
        "seconds": round(time.monotonic() - started, 1),
        "result": summary,
        "exit_status": done.returncode,
        "failures": re.findall(r"^FAILED .*$", done.stdout, re.MULTILINE),
        "command": "python -m bench.fuzz " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(json.dumps(report, indent=2, sort_keys=True))
    if done.returncode != 0:
        print(done.stdout[-60000:], file=sys.stderr)
    save("fuzz.json", report)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
