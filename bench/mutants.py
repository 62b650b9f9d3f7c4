"""``python -m bench.mutants``: mutation testing of the decision engine and policy, one JSON document.

    make mutants                                   # about 3-4 minutes on 2 cores
    python -m bench.mutants --budget-minutes 5     # stop mutmut after 5 minutes (partial report)

Runs mutmut 3 (``pip install -e '.[mutation]'``) over ``consent_service/core/engine.py``,
``policy.py`` and ``rule_cache.py`` against their tests (the engine's, the policy's against
Casbin, the rule cache's and the pycasbin traps), as configured in pyproject.toml's
``[tool.mutmut]``. mutmut rewrites the modules into a ``mutants/`` folder next to the code it
reads, so this command copies the package, tests, policies, migrations (the rule cache's tests
build a database) and pyproject.toml into a temporary folder and runs mutmut there: the
checkout never holds mutated code or a ``mutants/`` folder, even when the run is interrupted,
and other people's edits made during the run do not reach it. ``CONSENT_TEST_DATABASE_URL`` is
dropped from mutmut's environment, so the rule cache's database tests run on SQLite only.

Prints and writes (``bench/results/mutants.json``) the counts by mutmut's status, and for
every mutant tested and not killed its function, line and diff; when the budget runs out the
untested ones are listed by name as ``not_checked`` and the report says ``complete: false``.
Every survivor is explained in docs/security.md, "Surviving mutants of the decision engine
and policy".
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
COPIED = ("consent_service", "tests", "policies", "migrations", "pyproject.toml")
# mutmut's exit-code meanings (mutmut.stats.status_by_exit_code); anything else is "suspicious".
STATUS_BY_EXIT_CODE: dict[int | None, str] = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    2: "interrupted",
    None: "not checked",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "caught by type check",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}
HUNK = re.compile(r"^@@ -(\d+)")


def log(message: str) -> None:
    print(f"[mutants {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def mutmut_config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        config = tomllib.load(fh).get("tool", {}).get("mutmut")
    if not config or not config.get("only_mutate"):
        raise SystemExit("pyproject.toml has no [tool.mutmut] with only_mutate")
    return dict(config)


def copy_tree(work: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=ignore)
        else:
            shutil.copy2(source, work / name)


def run_mutmut(mutmut: Path, work: Path, *, max_children: int, budget_seconds: float) -> bool:
    """Run ``mutmut run`` in ``work``; True when it finished within the budget."""
    env = {k: v for k, v in os.environ.items() if k != "CONSENT_TEST_DATABASE_URL"}
    with (work / "mutmut.log").open("wb") as out:
        process = subprocess.Popen(
            [str(mutmut), "run", "--max-children", str(max_children)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=budget_seconds)
        except subprocess.TimeoutExpired:
            log(f"budget of {budget_seconds / 60:.1f} min spent: stopping mutmut (partial report)")
            stop(process)
            return False
        except BaseException:
            stop(process)
            raise
    if code != 0:
        tail = (work / "mutmut.log").read_text(errors="replace")[-4000:]
        raise SystemExit(f"mutmut run failed (exit {code}):\n{tail}")
    return True


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to mutmut's process group (it stops its workers), then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def function_lines(source: str) -> dict[str, int]:
    """``Class.method`` / ``function`` -> the line of its ``def`` (decorators excluded)."""
    found: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[f"{node.name}.{item.name}"] = item.lineno
    return found


def function_of(mutant: str) -> str:
    """``pkg.mod.xǁClassǁmethod__mutmut_3`` -> ``Class.method``; ``pkg.mod.x_f__mutmut_1`` -> ``f``."""
    mangled = mutant.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    if mangled.startswith("xǁ"):
        return ".".join(mangled[2:].split("ǁ"))
    return mangled.removeprefix("x_")


def describe(
    mutmut: Path, work: Path, mutant: str, status: str, source_lines: list[str], defs: dict[str, int]
) -> dict[str, Any]:
    """Function, file line and the changed lines of one mutant (from ``mutmut show``)."""
    shown = subprocess.run(
        [str(mutmut), "show", mutant], cwd=work, capture_output=True, text=True, timeout=120
    ).stdout
    diff = [line for line in shown.splitlines() if line[:1] in "-+" and not line.startswith(("---", "+++"))]
    function = function_of(mutant)
    line = None
    offset = None
    for row in shown.splitlines():
        match = HUNK.match(row)
        if match:
            offset, index = int(match.group(1)), 0
        elif offset is not None and row[:1] in " -":
            if row[:1] == "-":
                line = defs.get(function, 1) + offset - 1 + index
                if source_lines[line - 1].strip() != row[1:].strip():  # not where expected: search
                    line = next(
                        (n for n, text in enumerate(source_lines, 1) if text.strip() == row[1:].strip()), None
                    )
                break
            index += 1
        elif offset is not None and row[:1] == "+" and line is None:
            line = defs.get(function, 1) + offset - 1 + index
            break
    return {"mutant": mutant, "status": status, "function": function, "line": line, "diff": diff}


def report(work: Path, mutmut: Path, config: dict[str, Any]) -> dict[str, Any]:
    modules: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for module in config["only_mutate"]:
        meta_path = work / "mutants" / f"{module}.meta"
        exit_codes: dict[str, int | None] = (
            json.loads(meta_path.read_text())["exit_code_by_key"] if meta_path.exists() else {}
        )
        source = (work / module).read_text()  # the copy that was mutated, not today's file
        defs, lines = function_lines(source), source.splitlines()
        statuses = {name: STATUS_BY_EXIT_CODE.get(code, "suspicious") for name, code in exit_codes.items()}
        counts.update(statuses.values())
        modules.append(
            {
                "module": module,
                "mutants": len(statuses),
                "by_status": dict(Counter(statuses.values())),
                "not_killed": [
                    describe(mutmut, work, name, status, lines, defs)
                    for name, status in sorted(statuses.items(), key=lambda kv: natural(kv[0]))
                    if status not in ("killed", "not checked")
                ],
                "not_checked": sorted(
                    (name for name, status in statuses.items() if status == "not checked"), key=natural
                ),
            }
        )
    total = sum(counts.values())
    return {
        "mutants": total,
        "killed": counts["killed"],
        "survived": counts["survived"],
        "timed_out": counts["timeout"],
        "no_tests": counts["no tests"],
        "other": total - counts["killed"] - counts["survived"] - counts["timeout"] - counts["no tests"],
        "score": round(counts["killed"] / total, 4) if total else None,
        "modules": modules,
    }


def natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m bench.mutants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=12.0,
        help="stop mutmut after this long and report what it finished (default 12)",
    )
    parser.add_argument(
        "--max-children",
        type=int,
        default=os.cpu_count() or 2,
        help="mutants tested at once (default: nproc)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (mutmut's mutants/)")
    parser.add_argument("--out", default=str(RESULTS / "mutants.json"))
    args = parser.parse_args(args_list)

    mutmut = Path(sys.executable).parent / "mutmut"
    if not mutmut.exists():
        raise SystemExit(f"{mutmut} not found: pip install -e '.[mutation]'")
    config = mutmut_config()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="consent-mutants-"))
    try:
        copy_tree(work)
        log(f"mutating {', '.join(config['only_mutate'])} in {work}")
        complete = run_mutmut(
            mutmut, work, max_children=args.max_children, budget_seconds=args.budget_minutes * 60
        )
        seconds = round(time.monotonic() - started, 1)
        result = report(work, mutmut, config)
    finally:
        if args.keep:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    watched = [*config["only_mutate"], *config.get("pytest_add_cli_args_test_selection", [])]
    document = {
        "command": shlex.join(["python", "-m", "bench.mutants", *args_list]),
        "tool": f"mutmut {metadata.version('mutmut')}",
        "tests": config.get("pytest_add_cli_args_test_selection", []),
        "commit": git("rev-parse", "HEAD") or "unknown",
        "uncommitted_changes_in": git("status", "--porcelain", "--", *watched).splitlines(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "budget_minutes": args.budget_minutes,
        "max_children": args.max_children,
        "seconds": seconds,
        **result,
    }
    text = json.dumps(document, indent=2, ensure_ascii=False)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    log(
        f"{document['mutants']} mutants: {document['killed']} killed, {document['survived']} survived, "
        f"{document['timed_out']} timed out, {document['no_tests']} without tests, {seconds} s"
        + ("" if complete else " (PARTIAL: budget spent)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
