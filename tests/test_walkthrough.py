"""docs/api.md runs as written (issue 17 item 4): its shell blocks, pasted in order into bash
against ``consent-service serve`` on a free port with a temporary database, print what the page
shows after them: on a fresh database and after ``consent-service demo`` (``make demo``). The run
happens in a temporary folder and writes nothing into the repository.

A block followed by a ```text block must print exactly that (ids and tokens do not appear in
them); a block without one must run without an error answer. ``set -u`` makes an unset
variable (a ``$CONSENT_ID`` that was never set, say) fail the run instead of turning a revoke
into another call.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bench/, the live deployment helper

from bench import live_service as live  # noqa: E402

PAGE = REPO / "docs" / "api.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
MARK = "@@walkthrough-block@@"
SHARED_CACHES = r"__pycache__/|\.hypothesis/|\.pytest_cache/|\.mypy_cache/|\.ruff_cache/|bench/results/"


def blocks(text: str) -> list[tuple[str, str | None]]:
    """Each ``sh`` block and the ``text`` block right after it (its expected output), if any."""
    fenced = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    found: list[tuple[str, str | None]] = []
    for i, (kind, body, _, end) in enumerate(fenced):
        if kind != "sh":
            continue
        expected = None
        if i + 1 < len(fenced):
            next_kind, next_body, next_start, _ = fenced[i + 1]
            if next_kind == "text" and text[end:next_start].strip() == "":
                expected = next_body
        found.append((body, expected))
    return found


def script(steps: list[tuple[str, str | None]]) -> str:
    lines = ["set -u"]
    for i, (body, _) in enumerate(steps):
        lines += [f"echo '{MARK} {i}'", body]
    return "\n".join(lines) + "\n"


def git_state() -> list[str]:
    """Every changed, new or ignored file of the checkout, but the caches that tests running
    beside this one (pytest-xdist) write: bytecode, Hypothesis's examples, the bench's results."""
    listed = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in listed.splitlines() if not re.search(SHARED_CACHES, line)]


def test_the_page_has_the_walkthrough() -> None:
    steps = blocks(PAGE.read_text(encoding="utf-8"))
    assert len(steps) >= 10
    assert sum(expected is not None for _, expected in steps) >= 8


@pytest.mark.parametrize("after_demo", [False, True], ids=["fresh", "after-demo"])
def test_the_walkthrough_runs_and_prints_what_the_page_shows(after_demo: bool) -> None:
    steps = blocks(PAGE.read_text(encoding="utf-8"))
    before = git_state()
    with live.deployment("sqlite", extra_env={"PYTHONDONTWRITEBYTECODE": "1"}) as dep:
        instance = dep.start("walkthrough", workers=1)
        if after_demo:
            printed = dep.cli("demo", "--base-url", instance.base)
            assert f"curl -s {instance.base}/v1/authorize" in printed  # the commands are for this port
        (dep.workdir / ".venv").symlink_to(Path(sys.executable).parent.parent)
        tmp = dep.workdir / "tmp"
        tmp.mkdir()
        here = sorted(p.name for p in dep.workdir.iterdir())  # the folder it is pasted in (the repository)
        ran = subprocess.run(
            ["bash", "-c", script(steps)],
            cwd=dep.workdir,
            env={**dep.env, "BASE": instance.base, "TMPDIR": str(tmp)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        written = sorted(p.name for p in tmp.iterdir())
        assert sorted(p.name for p in dep.workdir.iterdir()) == here  # nothing written where it runs
    outputs = re.split(rf"^{MARK} \d+\n", ran.stdout, flags=re.M)[1:]
    assert len(outputs) == len(steps), ran.stdout[-2000:]
    for (body, expected), printed in zip(steps, outputs, strict=True):
        where = body.strip().splitlines()[0][:100]
        if expected is not None:
            assert printed == expected, (where, printed, ran.stderr[-2000:])
        else:
            assert '{"error"' not in printed, (where, printed)
    assert "unbound variable" not in ran.stderr and "command not found" not in ran.stderr, ran.stderr
    assert written == ["access-report.html", "receipt.html"]
    assert git_state() == before  # nothing written into the repository


def test_the_make_targets_print_commands_for_the_port_given() -> None:
    made = subprocess.run(
        ["make", "-n", "run", "demo", "PORT=5077", "HOST=127.0.0.2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in {"PORT", "HOST"}},
    ).stdout
    assert "admin hint --host 127.0.0.2 --port 5077" in made
    assert "serve --host 127.0.0.2 --port 5077" in made
    assert "demo --base-url http://127.0.0.2:5077" in made
    assert "5000" not in made


def test_the_readme_and_docs_link_only_to_files_in_the_repository() -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            resolved = (page.parent / target).resolve()
            if not resolved.exists() or REPO not in resolved.parents:
                broken.append(f"{page.name}: {target}")
    assert broken == []
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "(docs/reference.md)" in readme
