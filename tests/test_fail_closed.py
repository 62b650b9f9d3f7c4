"""No answer is never a permit: every failure while deciding is a 503 and records nothing."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import contextmanager

import pytest
from conftest import SIGNING_KEYS, World
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from consent_service import create_app
from consent_service.container import EXTENSION
from consent_service.storage.models import AuditEntry, Decision

SUBJECT = {"system": "urn:outreach-org:client", "value": "C-1042"}
REQUEST = {"subject": SUBJECT, "purpose": "service-planning", "data_categories": ["housing"]}


@pytest.fixture
def permitted(client, world):
    """A world in which REQUEST from gla is permitted; returns gla's headers."""
    world.org("gla", "government")
    client.post(
        "/v1/consents",
        headers=world.headers("outreach-org", "consents:write"),
        json={
            "subject": SUBJECT,
            "purposes": ["service-planning"],
            "data_categories": ["housing"],
            "recipients": ["gla"],
            "evidence": {"method": "written", "obtained_by": "worker-1"},
        },
    )
    headers = world.headers("gla", "authorize")
    assert client.post("/v1/authorize", json=REQUEST, headers=headers).get_json()["decision"] == "permit"
    return headers


def _engine(app):
    return app.extensions[EXTENSION].sessions.kw["bind"]


@contextmanager
def failing_statement(app, k: int):
    """Make the k-th SQL statement (1-based) from now on raise a driver error."""
    seen = {"n": 0}

    def before(conn, cursor, statement, parameters, context, executemany):
        seen["n"] += 1
        if seen["n"] == k:
            # What SQLAlchemy raises when the driver loses the server or times out.
            raise OperationalError(statement, parameters, Exception("injected failure"))

    engine = _engine(app)
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _counts(app) -> tuple[int, int]:
    with app.extensions[EXTENSION].sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Decision)),
            session.scalar(select(func.count()).select_from(AuditEntry)),
        )


def _statements_in_one_decision(app, client, headers) -> int:
    with failing_statement(app, 10**9) as seen:
        assert client.post("/v1/authorize", json=REQUEST, headers=headers).status_code == 200
    return seen["n"]


class TestAFailingStatementNeverPermits:
    def test_a_failure_at_any_statement_of_a_decision_is_a_503_and_records_nothing(
        self, app, client, permitted
    ):
        total = _statements_in_one_decision(app, client, permitted)
        assert total >= 4  # token check, consents, memberships, and the writes
        for k in range(1, total + 1):
            before = _counts(app)
            with failing_statement(app, k):
                response = client.post("/v1/authorize", json=REQUEST, headers=permitted)
            assert response.status_code in (503, 401), (k, response.get_json())
            assert response.get_json()["error"]["code"] in ("unavailable", "unauthorized")
            assert "permit" not in response.get_data(as_text=True)
            assert _counts(app) == before, f"statement {k} left a partial record"

    def test_the_service_recovers_by_itself_on_the_next_call(self, app, client, permitted):
        with failing_statement(app, 2):
            assert client.post("/v1/authorize", json=REQUEST, headers=permitted).status_code == 503
        answer = client.post("/v1/authorize", json=REQUEST, headers=permitted).get_json()
        assert answer["decision"] == "permit"

    def test_a_failing_commit_releases_no_answer(self, app, client, permitted):
        def refuse(conn):
            raise RuntimeError("disk full")

        engine = _engine(app)
        event.listen(engine, "commit", refuse)
        try:
            before = _counts(app)
            response = client.post("/v1/authorize", json=REQUEST, headers=permitted)
        finally:
            event.remove(engine, "commit", refuse)
        assert response.status_code == 503
        assert _counts(app) == before


class TestAnUnreachableStore:
    def test_a_dead_database_is_503_for_authorize_and_readyz(self, app_config, tmp_path):
        url = app_config["DATABASE_URL"]
        if url.startswith("sqlite"):
            dead = {"DATABASE_URL": f"sqlite:///{tmp_path}/missing-dir/never/consent.db"}
        else:
            dead = {"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test"}
        app = create_app({**app_config, **dead, "PG_STATEMENT_TIMEOUT_MS": 1000})
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["error"]["code"] == "unavailable"
        response = client.post("/v1/authorize", json=REQUEST, headers={"Authorization": "Bearer x.y.z"})
        assert response.status_code in (401, 503)  # a forged token never reaches the store


class TestSQLiteLocks:
    def test_a_write_lock_held_past_busy_timeout_is_a_503(self, sqlite_template, tmp_path):
        path = tmp_path / "locked.db"
        shutil.copy(sqlite_template, path)
        app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{path}",
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "SECRET_KEY": "s",
                "SIGNING_KEYS": SIGNING_KEYS,
                "RATELIMIT_ENABLED": False,
                "SQLITE_BUSY_TIMEOUT_MS": 200,
            }
        )
        headers = World(app, app.test_client()).headers("gla", "authorize")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            response = app.test_client().post("/v1/authorize", json=REQUEST, headers=headers)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "unavailable"
