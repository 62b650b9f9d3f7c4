"""Fixtures: an app on a freshly migrated database, a test client, and a small world of actors.

Every test runs on SQLite; when ``CONSENT_TEST_DATABASE_URL`` is set it runs on PostgreSQL
too (in a schema of its own, emptied before each test).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import KeySet
from sqlalchemy import create_engine, text

from consent_service import create_app
from consent_service.core.keys import new_signing_key
from consent_service.services import organizations
from consent_service.storage import models
from consent_service.storage.migrate import upgrade
from consent_service.views.common import EXTENSION

PG_URL = os.environ.get("CONSENT_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]
SIGNING_KEYS = json.dumps(KeySet([new_signing_key()]).as_dict(private=True))


def skip_or_fail_in_ci(problem: str) -> NoReturn:
    """Skip a test that needs something this machine lacks (a browser, Redis), but fail it in CI
    (``CI=true``): a CI machine without it must not pass by skipping."""
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "consent.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    schema = f"cs_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    upgrade(PG_URL, schema=schema)
    yield schema
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _empty_pg(schema: str) -> None:
    engine = create_engine(PG_URL, connect_args={"options": f"-c search_path={schema}"})
    tables = ", ".join(f'"{t.name}"' for t in models.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        path = tmp_path / "consent.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return {"DATABASE_URL": f"sqlite:///{path}"}
    schema = request.getfixturevalue("pg_schema")
    _empty_pg(schema)
    return {"DATABASE_URL": PG_URL, "DB_SCHEMA": schema}


@pytest.fixture
def app_config(database_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {
        **database_config,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret",
        "SIGNING_KEYS": SIGNING_KEYS,
        "RATELIMIT_ENABLED": False,
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(app_config)
    yield application
    application.extensions[EXTENSION].sessions.kw["bind"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


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
            subjects.register(self.services, caller=None, system=system, organization=org_id,
                              shared=org_id is None, case_insensitive=case_insensitive, now=datetime.now(UTC))
        return system

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
