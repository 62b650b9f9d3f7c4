"""The schema comes only from the migrations, and they agree with the models; the CLI (contract, "CLI")."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from consent_service import create_app
from consent_service.cli import main
from consent_service.storage import models
from consent_service.storage.migrate import alembic_config, upgrade

PG_URL = os.environ.get("CONSENT_TEST_DATABASE_URL", "")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql", marks=pytest.mark.skipif(not PG_URL, reason="CONSENT_TEST_DATABASE_URL is not set")
        ),
    ]
)
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A new, empty database brought to head by the migrations alone."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        upgrade(url)
        engine = create_engine(url)
        yield engine
        engine.dispose()
        return
    schema = f"cs_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        upgrade(PG_URL, schema=schema)
        engine = create_engine(PG_URL, connect_args={"options": f"-c search_path={schema}"})
        yield engine
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


class TestModelsAndMigrationsAgree:
    def test_autogenerate_finds_nothing_to_change(self, migrated):
        with migrated.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, models.metadata)
        assert differences == []

    def test_every_model_table_exists(self, migrated):
        with migrated.connect() as conn:
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == head_revision()
            for table in models.metadata.sorted_tables:
                conn.execute(text(f'SELECT count(*) FROM "{table.name}"'))

    def test_there_is_one_head(self):
        assert len(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()) == 1


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``cli(*args)`` runs ``consent-service`` against a new instance folder and SQLite database."""
    for name in [n for n in os.environ if n.startswith("CONSENT_") and n != "CONSENT_TEST_DATABASE_URL"]:
        monkeypatch.delenv(name)
    instance = tmp_path / "instance"
    env = {"CONSENT_INSTANCE_PATH": str(instance), "CONSENT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    run.env = env  # type: ignore[attr-defined]
    run.database = tmp_path / "cli.db"  # type: ignore[attr-defined]
    return run


class TestDbUpgrade:
    def test_migrates_a_new_database_and_is_idempotent(self, cli):
        for _ in range(2):
            result = cli("db", "upgrade")
            assert result.exit_code == 0, result.output
        with sqlite3.connect(cli.database) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {table.name for table in models.metadata.sorted_tables} <= tables


class TestCreateClient:
    def test_prints_exactly_one_json_object_with_working_credentials(self, cli, monkeypatch):
        assert cli("db", "upgrade").exit_code == 0
        result = cli("admin", "create-client", "--name", "x", "--json")
        assert result.exit_code == 0, result.output
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1
        created = json.loads(lines[0])
        assert set(created) == {"client_id", "client_secret"}

        for name, value in cli.env.items():
            monkeypatch.setenv(name, value)
        app = create_app({"RATELIMIT_ENABLED": False})
        try:
            response = app.test_client().post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(created["client_id"], created["client_secret"]),
            )
            assert response.status_code == 200, response.get_json()
            assert response.get_json()["scope"] == "admin"
        finally:
            app.extensions["consent_service"].sessions.kw["bind"].dispose()

    def test_a_second_client_reuses_the_admin_organization(self, cli):
        assert cli("db", "upgrade").exit_code == 0
        first = json.loads(cli("admin", "create-client", "--name", "a", "--json").stdout)
        second = json.loads(cli("admin", "create-client", "--name", "b", "--json").stdout)
        assert first["client_id"] != second["client_id"]
        with sqlite3.connect(cli.database) as conn:
            rows = conn.execute("SELECT DISTINCT organization_id FROM oauth_client").fetchall()
        assert rows == [("admin",)]


class TestAuditVerify:
    def test_exits_0_on_an_intact_chain(self, cli):
        assert cli("db", "upgrade").exit_code == 0
        assert cli("admin", "create-client", "--name", "x", "--json").exit_code == 0
        result = cli("audit", "verify")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["ok"] is True

    def test_exits_non_zero_with_a_clear_message_when_an_entry_was_changed(self, cli):
        assert cli("db", "upgrade").exit_code == 0
        assert cli("admin", "create-client", "--name", "x", "--json").exit_code == 0
        with sqlite3.connect(cli.database) as conn:
            conn.execute("""UPDATE audit_entry SET payload = '{"name": "forged"}'
                            WHERE seq = (SELECT min(seq) FROM audit_entry)""")
        result = cli("audit", "verify")
        assert result.exit_code != 0
        assert "BROKEN" in result.stderr


class TestAuditReadBecomesOversightOnly:
    """Migration 0006: audit:read stays only with the admin organization and oversight
    organizations; a council that held it reads its community with community:read instead."""

    def test_upgrade_takes_audit_read_from_everyone_else(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0004")
        engine = create_engine(url)
        now = "2026-11-01 00:00:00.000000"
        with engine.begin() as conn:
            for org, kind in (
                ("admin", "other"),
                ("council", "community-governance"),
                ("watch", "other"),
                ("gla", "government"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO organization (id, name, type, created_at) VALUES (:id, :id, :type, :now)"
                    ),
                    {"id": org, "type": kind, "now": now},
                )
            conn.execute(text("UPDATE organization SET type = 'oversight' WHERE id = 'watch'"))
            for client, org, scopes in (
                ("c-admin", "admin", "admin audit:read"),
                ("c-council", "council", "audit:read rules:write"),
                ("c-watch", "watch", "audit:read"),
                ("c-gla", "gla", "audit:read authorize"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO oauth_client (client_id, secret_hash, organization_id, name, "
                        "scopes, created_at) VALUES (:c, 'x', :o, :c, :s, :now)"
                    ),
                    {"c": client, "o": org, "s": scopes, "now": now},
                )
        upgrade(url)
        with engine.connect() as conn:
            scopes = dict(conn.execute(text("SELECT client_id, scopes FROM oauth_client")).all())
        engine.dispose()
        assert scopes == {
            "c-admin": "admin audit:read",
            "c-council": "community:read rules:write",
            "c-watch": "audit:read",
            "c-gla": "authorize",
        }
