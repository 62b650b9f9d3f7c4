"""The OpenID provider the single sign-on tests run: panva's oidc-provider (npm, pinned in
tests/oidc/package-lock.json) with node, configured by tests/oidc/provider.mjs, on loopback."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import skip_or_fail_in_ci

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "consent-service"
CLIENT_SECRET = "a client secret for the test provider"
ACCOUNTS = {
    "ana": {
        "email": "ana@council-a.example",
        "name": "Ana Steward",
        "org": "council-a",
        "roles": ["steward"],
    },
    "wes": {
        "email": "wes@clinic.example",
        "name": "Wes Worker",
        "org": "clinic",
        "roles": ["intake", "payroll"],
    },
    "stranger": {"email": "s@elsewhere.example", "name": "S", "org": "elsewhere", "roles": ["steward"]},
    "roleless": {"email": "r@clinic.example", "name": "R", "org": "clinic", "roles": ["payroll"]},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installed(npm: str) -> None:
    """``npm ci`` in tests/oidc once, when ``make test`` runs on a machine without it (.ci/run
    does it first): under a file lock, so two xdist workers do not install into one folder at once."""
    with open(Path(tempfile.gettempdir()) / "consent-tests-oidc-npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, check=True, timeout=300)


@contextmanager
def running_provider(
    directory: Path, port: int, redirect_base: str, *, claims_at_userinfo: bool = False
) -> Iterator[dict[str, Any]]:
    """The provider on 127.0.0.1:``port`` for a client whose pages are at ``redirect_base``,
    once its discovery document answers; stopped after. Its accounts are ``ACCOUNTS``, in a file
    (``["accounts"]``) a test may rewrite; ``claims_at_userinfo``: their claims other than ``sub``
    are left out of the ID token. No node: skipped here, a failure in CI."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        skip_or_fail_in_ci("node and npm are needed to run the OpenID provider (tests/oidc)")
    installed(npm)
    accounts = directory / "accounts.json"
    accounts.write_text(json.dumps(ACCOUNTS), encoding="utf-8")
    issuer = f"http://127.0.0.1:{port}"
    log = directory / "provider.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [node, "provider.mjs", str(port), str(accounts), CLIENT_ID, CLIENT_SECRET, redirect_base],
            cwd=PROVIDER_DIR,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CLAIMS_AT_USERINFO": "1" if claims_at_userinfo else "0"},
        )
    try:
        metadata = None
        deadline = time.monotonic() + 30
        while metadata is None and time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the provider stopped: {log.read_text(errors='replace')}")
            try:
                metadata = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).json()
            except requests.RequestException:
                time.sleep(0.2)
        assert metadata is not None, "the provider did not answer within 30 s"
        yield {"issuer": issuer, "metadata": metadata, "accounts": accounts}
    finally:
        process.terminate()
        process.wait(timeout=10)
