"""The service as it runs in production, for the reliability scripts (durability, stale_check).

Each instance is ``consent-service serve`` (gunicorn, sync workers) in a process group of its
own, on a free loopback port, configured only through ``CONSENT_*`` environment variables. The
database is migrated once with ``consent-service db upgrade`` (the release step), clients are
made with ``consent-service admin create-client`` and the HTTP API, as an operator would.

Everything is bounded: each HTTP call has a timeout, each wait a deadline, and ``stop()``
(also run at exit) ends the instances this module started, by their process group ids.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_URL = os.environ.get("CONSENT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent
CLI = (
    [str(BIN / "consent-service")]
    if (BIN / "consent-service").exists()
    else [sys.executable, "-c", "from consent_service.cli import main; main()"]
)
RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int  # 0: no answer (connection refused, reset, timed out)
    body: Any
    error: str = ""


def call(
    base: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    data = None
    all_headers = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return Answer(response.status, json.loads(raw) if raw else None)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return Answer(exc.code, json.loads(raw) if raw else None)
        except ValueError:
            return Answer(exc.code, raw.decode("utf-8", "replace"))
    except (OSError, ValueError) as exc:  # refused, reset, timed out, half an answer
        return Answer(0, None, f"{type(exc).__name__}: {exc}")


def token(base: str, client_id: str, secret: str) -> str:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = call(
        base,
        "POST",
        "/oauth/token",
        form={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status == 200, answer
    return str(answer.body["access_token"])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


# -- a deployment: one database, one or more instances ----------------------------------------------


@dataclass
class Instance:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    logfile: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the children of this instance's master process."""
        try:
            found = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in found]

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


@dataclass
class Deployment:
    backend: str  # sqlite | postgresql
    workdir: Path
    env: dict[str, str]
    schema: str = ""
    instances: list[Instance] = field(default_factory=list)
    admin: tuple[str, str] = ("", "")

    def cli(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [*CLI, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"consent-service {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def start(self, name: str, *, workers: int = 2, extra_env: dict[str, str] | None = None) -> Instance:
        port = free_port()
        logfile = self.workdir / f"{name}.log"
        with logfile.open("wb") as out:
            process = subprocess.Popen(
                [*CLI, "serve", "--port", str(port), "--workers", str(workers)],
                env={**self.env, **(extra_env or {})},
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        instance = Instance(name, port, process, logfile)
        self.instances.append(instance)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {logfile.read_text()[-2000:]}")
            if (
                call(instance.base, "GET", "/readyz", timeout=2).status == 200
                and len(instance.worker_pids()) >= workers
            ):
                return instance
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready within 60 s: {logfile.read_text()[-2000:]}")

    def stop(self) -> None:
        for instance in self.instances:
            instance.stop()
        self.instances.clear()

    def engine(self) -> Any:
        from sqlalchemy import create_engine

        url = self.env["CONSENT_DATABASE_URL"]
        if self.schema:
            return create_engine(url, connect_args={"options": f"-c search_path={self.schema}"})
        return create_engine(url)


@contextlib.contextmanager
def deployment(
    backend: str, *, pg_url: str = PG_URL, keep: bool = False, extra_env: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """A migrated database (SQLite file, or a PostgreSQL schema of its own) and an admin client."""
    from joserfc.jwk import KeySet

    from consent_service.core.keys import new_signing_key

    workdir = Path(tempfile.mkdtemp(prefix=f"consent-{backend}-"))
    schema = ""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")},
        "CONSENT_INSTANCE_PATH": str(workdir / "instance"),
        "CONSENT_SECRET_KEY": uuid.uuid4().hex,
        "CONSENT_SIGNING_KEYS": json.dumps(KeySet([new_signing_key()]).as_dict(private=True)),
        "CONSENT_RATELIMIT_ENABLED": "false",
        **(extra_env or {}),
    }
    if backend == "sqlite":
        env["CONSENT_DATABASE_URL"] = f"sqlite:///{workdir / 'consent.db'}"
    else:
        from sqlalchemy import create_engine, text

        schema = f"cs_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(pg_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        env["CONSENT_DATABASE_URL"] = pg_url
        env["CONSENT_DB_SCHEMA"] = schema
    dep = Deployment(backend, workdir, env, schema)
    atexit.register(dep.stop)
    try:
        dep.cli("db", "upgrade")
        made = json.loads(dep.cli("admin", "create-client", "--name", "bench admin", "--json"))
        dep.admin = (made["client_id"], made["client_secret"])
        yield dep
    finally:
        dep.stop()
        if schema:
            from sqlalchemy import create_engine, text

            admin = create_engine(pg_url)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
        if not keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")


def register_system(base: str, admin_token: str, system: str, org: str) -> None:
    """Register ``system`` to ``org`` (consents are recorded only under a registered system)."""
    made = call(
        base,
        "POST",
        "/v1/subject-systems",
        headers=bearer(admin_token),
        body={"system": system, "organization": org},
    )
    assert made.status == 201, made


def make_client(base: str, admin_token: str, org: str, org_type: str, scopes: list[str]) -> str:
    """An organization (if new) and a client of it; returns a token of that client."""
    call(
        base,
        "POST",
        "/v1/organizations",
        body={"id": org, "name": org, "type": org_type},
        headers=bearer(admin_token),
    )
    made = call(
        base,
        "POST",
        "/v1/clients",
        headers=bearer(admin_token),
        body={"organization": org, "name": f"{org} bench", "scopes": scopes},
    )
    assert made.status == 201, made
    return token(base, made.body["client_id"], made.body["client_secret"])


def save(name: str, report: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return path


def consent_writes_held(conn: Any) -> tuple[dict[str, str], set[str], set[tuple[str, str]]]:
    """What the database holds of consent writes, for the scripts that check none was lost:
    status by consent id, the ids that have their version 1, and (consent id, event kind)."""
    from sqlalchemy import text

    consents = {row.id: row.status for row in conn.execute(text("SELECT id, status FROM consent"))}
    versions = {
        row.consent_id
        for row in conn.execute(text("SELECT consent_id FROM consent_version WHERE version = 1"))
    }
    events = {
        (row.consent_id, row.kind) for row in conn.execute(text("SELECT consent_id, kind FROM consent_event"))
    }
    return consents, versions, events
