"""Fixtures: an app on a freshly migrated database, a test client, and a small world of actors.

Every test runs on SQLite; when ``CONSENT_TEST_DATABASE_URL`` is set it runs on PostgreSQL
too (in a schema of its own, emptied before each test).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import KeySet
from sqlalchemy import Engine, Integer, create_engine, text
from sqlalchemy.pool import NullPool

from consent_service import create_app
from consent_service.container import EXTENSION
from consent_service.core.keys import new_signing_key
from consent_service.services import organizations
from consent_service.storage import models
from consent_service.storage.migrate import upgrade

PG_URL = os.environ.get("CONSENT_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]
SIGNING_KEYS = json.dumps(KeySet([new_signing_key()]).as_dict(private=True))
# Argon2 at its deployed cost takes ~0.3 s a hash here (several a test that makes people and
# signs them in); every test's app uses the cheapest it allows.
CHEAP_PASSWORDS = {"WEB_PASSWORD_TIME_COST": 1, "WEB_PASSWORD_MEMORY_KIB": 64}


def skip_or_fail_in_ci(problem: str) -> NoReturn:
    """Skip a test that needs something this machine lacks (a browser, Redis), but fail it in CI
    (``CI=true``): a CI machine without it must not pass by skipping."""
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(problem)


def pytest_configure(config: pytest.Config) -> None:
    """The tests' files (each test's SQLite database, copied from the template) on the RAM disk
    when there is one and no --basetemp was given: commits then cost no disk flush. pytest still
    keeps the last three runs' folders there (under pytest-of-USER) and removes older ones."""
    if config.option.basetemp is None and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", "/dev/shm")


def _worker() -> str:
    """This pytest-xdist worker ("gw0", "gw1", ...), or "main" without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "consent.db"
    upgrade(f"sqlite:///{path}")
    return path


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included), through SQLite's backup API."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


_pg_engines: dict[str, Engine] = {}


def pg_engine(schema: str = "") -> Engine:
    """One engine per schema for the fixtures' own statements (made once, not once per test)."""
    if schema not in _pg_engines:
        args = {"options": f"-c search_path={schema}"} if schema else {}
        _pg_engines[schema] = create_engine(PG_URL, connect_args=args, poolclass=NullPool)
    return _pg_engines[schema]


@contextmanager
def new_pg_schema(label: str = "") -> Iterator[str]:
    """A freshly migrated PostgreSQL schema of this process (and xdist worker) alone, dropped after."""
    schema = f"cs_test_{_worker()}_{os.getpid()}_{uuid.uuid4().hex[:6]}{label}"
    with pg_engine().begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    upgrade(PG_URL, schema=schema)
    try:
        yield schema
    finally:
        with pg_engine().begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        _pg_engines.pop(schema, None)


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    with new_pg_schema() as schema:
        yield schema


_sequences: dict[str, list[tuple[str, int]]] = {}


def _schema_sequences(schema: str) -> list[tuple[str, int]]:
    """The sequences of ``schema`` (the serial ids) and their start values, looked up once."""
    if schema not in _sequences:
        with pg_engine(schema).begin() as conn:
            query = text("SELECT sequencename, start_value FROM pg_sequences WHERE schemaname = :s")
            rows = conn.execute(query, {"s": schema})
            _sequences[schema] = [(str(name), int(start)) for name, start in rows]
    return _sequences[schema]


def _delete_all_rows(schema: str) -> list[str]:
    """The statements that empty every table of ``schema`` and start its serial ids again, as
    ``TRUNCATE ... RESTART IDENTITY`` would, but by DELETE: TRUNCATE gives each of the ~30
    tables new files (created, then the old ones unlinked at commit), which cost far more than
    deleting the few rows a test leaves. Children first, so that every foreign key holds row by
    row."""
    statements = [f'DELETE FROM "{table.name}"' for table in reversed(models.metadata.sorted_tables)]
    sequences = _schema_sequences(schema)
    if sequences:
        statements.append(
            "SELECT " + ", ".join(f"setval('\"{name}\"', {start}, false)" for name, start in sequences)
        )
    return statements


def _run_script(schema: str, statements: list[str]) -> None:
    """``statements`` in one transaction and one round trip (no parameters, so PostgreSQL's
    simple protocol takes them all at once: ~90 round trips a test otherwise)."""
    with pg_engine(schema).begin() as conn:
        conn.exec_driver_sql(";\n".join(statements))


def _empty_pg(schema: str) -> None:
    head = f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{'0' * 64}')"
    _run_script(schema, [*_delete_all_rows(schema), head])


def _restore_pg(schema: str, snapshot: str) -> None:
    """``schema`` emptied and filled with the rows of the schema ``snapshot`` (same migrations)."""
    statements = _delete_all_rows(schema)
    for table in models.metadata.sorted_tables:  # parents first: the foreign keys hold row by row
        statements.append(f'INSERT INTO "{table.name}" SELECT * FROM "{snapshot}"."{table.name}"')
        for column in table.primary_key.columns:  # serial ids go on after the copied rows
            if isinstance(column.type, Integer):
                statements.append(
                    f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', '{column.name}'), "
                    f'coalesce(max("{column.name}"), 0) + 1, false) FROM "{table.name}"'
                )
    _run_script(schema, statements)


@pytest.fixture(scope="module", params=BACKENDS)
def database_backend(request: pytest.FixtureRequest) -> str:
    """The database a test runs on. Module-scoped, so that a module may share one world per
    backend (its tests run on SQLite first, then on PostgreSQL)."""
    return str(request.param)


@pytest.fixture
def database_start() -> Snapshot | None:
    """The state each test's database starts from: None, a freshly migrated one. A module may
    override it with a :class:`Snapshot` it made once (a world that its tests all start from)."""
    return None


@dataclass(frozen=True)
class Snapshot:
    """A database state to start tests from: a SQLite file, or a PostgreSQL schema to copy."""

    backend: str
    location: str  # the SQLite file, or the PostgreSQL schema


def fresh_database(
    request: pytest.FixtureRequest, backend: str, directory: Path, start: Snapshot | None = None
) -> dict[str, Any]:
    """The database settings of a database of its own (SQLite) or the process's schema emptied
    (PostgreSQL), holding ``start``'s rows or none."""
    assert start is None or start.backend == backend
    if backend == "sqlite":
        path = directory / "consent.db"
        if start is None:
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
        else:
            copy_sqlite(Path(start.location), path)
        return {"DATABASE_URL": f"sqlite:///{path}"}
    schema = request.getfixturevalue("pg_schema")
    if start is None:
        _empty_pg(schema)
    else:
        _restore_pg(schema, start.location)
    return {"DATABASE_URL": PG_URL, "DB_SCHEMA": schema}


@pytest.fixture
def database_config(
    request: pytest.FixtureRequest, database_backend: str, database_start: Snapshot | None, tmp_path: Path
) -> dict[str, Any]:
    return fresh_database(request, database_backend, tmp_path, database_start)


def config_for(database: dict[str, Any], directory: Path) -> dict[str, Any]:
    return {
        **database,
        "INSTANCE_PATH": str(directory / "instance"),
        "SECRET_KEY": "test-secret",
        "SIGNING_KEYS": SIGNING_KEYS,
        "RATELIMIT_ENABLED": False,
        **CHEAP_PASSWORDS,
        # Change events: webhooks on a loopback receiver over http (tests/test_webhooks.py).
        "WEBHOOKS_ALLOW_LOOPBACK_HTTP": True,
    }


def dispose(application: Flask) -> None:
    application.extensions[EXTENSION].sessions.kw["bind"].dispose()


def snapshot_of(world: World) -> Snapshot:
    """The database under ``world``, as a starting point for other tests (the world's app must
    not write to it any more)."""
    settings = world.services.settings
    engine = world.services.sessions.kw["bind"]
    if settings.get("DB_SCHEMA"):
        return Snapshot("postgresql", settings["DB_SCHEMA"])
    return Snapshot("sqlite", str(engine.url.database))


@contextmanager
def module_world(
    request: pytest.FixtureRequest, backend: str, label: str, settings: dict[str, Any] | None = None
) -> Iterator[World]:
    """An app on a database of the module's own, and its World, for the tests of a module that
    share one (dropped after the module)."""
    directory = request.getfixturevalue("tmp_path_factory").mktemp(label)
    with ExitStack() as stack:
        if backend == "sqlite":
            path = directory / "consent.db"
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
            database: dict[str, Any] = {"DATABASE_URL": f"sqlite:///{path}"}
        else:
            database = {"DATABASE_URL": PG_URL, "DB_SCHEMA": stack.enter_context(new_pg_schema(f"_{label}"))}
        application = create_app({**config_for(database, directory), **(settings or {})})
        stack.callback(dispose, application)
        yield World(application, application.test_client())


@dataclass(frozen=True)
class Seed:
    """A world made once for a module: its database (to copy), its tokens, what the maker returned."""

    snapshot: Snapshot
    tokens: dict[tuple[str, tuple[str, ...]], str]
    made: float
    built: Any = None


SEED_LIFETIME = 300  # seconds; well within the tokens' 900 s, so no test gets an expired token


@contextmanager
def seeded(
    request: pytest.FixtureRequest,
    backend: str,
    label: str,
    build: Callable[[World], Any],
    settings: dict[str, Any] | None = None,
) -> Iterator[Callable[[], Seed]]:
    """``seeds()``: a world that ``build`` made once for the module (made again when its tokens
    grow old). A test starts from a copy of its database (override ``database_start`` with
    ``seeds().snapshot``) and adopts its tokens, instead of making the same world again: the
    organizations, communities and clients most tests of a module begin with. ``settings``: the
    module's own settings that shape what is built (cheap password hashes, say)."""
    with ExitStack() as stack:
        made: list[Seed] = []

        def current() -> Seed:
            if not made or time.time() - made[-1].made > SEED_LIFETIME:
                world = stack.enter_context(module_world(request, backend, label, settings))
                built = build(world)
                dispose(world.app)
                made.append(Seed(snapshot_of(world), world.tokens(), time.time(), built))
            return made[-1]

        yield current


@pytest.fixture
def app_config(database_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return config_for(database_config, tmp_path)


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(app_config)
    yield application
    dispose(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class BrowserKeeper:
    """One browser for all the browser tests of this process (xdist worker): starting Chromium
    and quitting it cost about a second a test. ``fresh`` hands it over as a new one would be
    (``reset`` clears what a test may leave); a browser that fails its reset is replaced."""

    def __init__(self, profile: Path) -> None:
        self.profile, self.driver = profile, None

    def fresh(self, start: Callable[[Path], Any], reset: Callable[[Any], None]) -> Any:
        if self.driver is not None:
            try:
                reset(self.driver)
            except Exception:
                self.close()
        if self.driver is None:
            self.driver = start(self.profile)
        return self.driver

    def close(self) -> None:
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.quit()


@pytest.fixture(scope="session")
def browser_keeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserKeeper]:
    keeper = BrowserKeeper(tmp_path_factory.mktemp("chromium") / "profile")
    yield keeper
    keeper.close()


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


class World:
    """Organizations and their clients, made through the domain, with tokens from /oauth/token."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app, self.client = app, client
        self.services = app.extensions[EXTENSION]
        self._tokens: dict[tuple[str, tuple[str, ...]], str] = {}

    def org(self, org_id: str, type: str = "service-provider") -> str:
        from consent_service.storage import organizations as store

        with self.services.sessions() as session:
            exists = store.get_organization(session, org_id) is not None
        if not exists:
            organizations.create_organization(
                self.services, caller=None, id=org_id, name=org_id.title(), type=type, now=datetime.now(UTC)
            )
            # Each organization records under its own system (contract v1.1: consents only under
            # a registered system), the one the intake pages suggest.
            self.system(f"urn:{org_id}:client", org_id)
        return org_id

    def system(self, system: str, org_id: str | None = None, *, case_insensitive: bool = False) -> str:
        """Register ``system`` to ``org_id`` (None: shared), unless it is registered already."""
        from consent_service.core import pseudonyms
        from consent_service.services import subjects
        from consent_service.storage import subjects as subject_store

        with self.services.sessions() as session:
            exists = subject_store.get_system(session, pseudonyms.normalize_system(system)) is not None
        if not exists:
            subjects.register(
                self.services,
                caller=None,
                system=system,
                organization=org_id,
                shared=org_id is None,
                case_insensitive=case_insensitive,
                now=datetime.now(UTC),
            )
        return system

    def tokens(self) -> dict[tuple[str, tuple[str, ...]], str]:
        """The tokens this world was given so far (to hand to a world on a copy of its database)."""
        return dict(self._tokens)

    def adopt(self, tokens: dict[tuple[str, tuple[str, ...]], str]) -> None:
        """Use ``tokens`` (of a world whose database this one's was copied from) as if given here."""
        self._tokens.update(tokens)

    def credentials(self, org_id: str, *scopes: str) -> tuple[str, str]:
        # audit:read is held only by the admin organization or an oversight organization: an
        # organization a test first names with audit:read is made one.
        self.org(org_id, "oversight" if "audit:read" in scopes else "service-provider")
        created = organizations.create_client(
            self.services,
            caller=None,
            organization=org_id,
            name=f"{org_id} client",
            scopes=list(scopes),
            now=datetime.now(UTC),
        )
        return created.client_id, created.client_secret

    def token(self, org_id: str, *scopes: str) -> str:
        key = (org_id, tuple(sorted(scopes)))
        if key not in self._tokens:
            client_id, secret = self.credentials(org_id, *scopes)
            response = self.client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers=basic_auth(client_id, secret),
            )
            assert response.status_code == 200, response.get_json()
            self._tokens[key] = response.get_json()["access_token"]
        return self._tokens[key]

    def headers(self, org_id: str, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org_id, *scopes)}"}

    def admin(self) -> dict[str, str]:
        return self.headers("admin", "admin")


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> World:
    return World(app, client)
