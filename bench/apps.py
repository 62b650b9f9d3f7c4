"""The two floors the service is measured against, as WSGI apps.

* ``floor``: a no-op Flask JSON endpoint. What any Flask app under these gunicorn settings
  costs per request: the ceiling of every other figure.
* ``storage``: the storage work an authorize call cannot avoid: parse the JSON body, one
  indexed SELECT (the subject's consents by ``subject_key``) and one INSERT committed, through
  the SQLModel ORM with the service's own engine settings (``make_engine``: WAL,
  ``synchronous=FULL``, ``BEGIN IMMEDIATE``, busy timeout; PostgreSQL pool, timeouts,
  search_path) and the service's transaction helpers. ``storage-core`` is the same work in
  SQLAlchemy Core statements, to show what the ORM costs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy import insert, select

from consent_service import config as service_config
from consent_service.core import pseudonyms
from consent_service.storage.db import make_engine, read_snapshot, session_factory, write
from consent_service.storage.models import Consent, Decision


def floor_app() -> Flask:
    app = Flask("bench_floor")

    @app.post("/v1/authorize")
    def noop() -> Any:
        return jsonify({"decision": "deny", "decision_id": "", "reasons": [], "obligations": []})

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    return app


def storage_app(*, core: bool = False, config: dict[str, Any] | None = None) -> Flask:
    settings = service_config.load(config)
    engine = make_engine(
        settings["DATABASE_URL"],
        busy_timeout_ms=settings["SQLITE_BUSY_TIMEOUT_MS"],
        statement_timeout_ms=settings["PG_STATEMENT_TIMEOUT_MS"],
        pool_size=settings["DB_POOL_SIZE"],
        schema=settings["DB_SCHEMA"],
    )
    sessions = session_factory(engine)
    key = pseudonyms.derive_key(settings["SECRET_KEY"].encode("utf-8"), "subject")
    app = Flask("bench_storage")
    decisions = Decision.__table__

    @app.post("/v1/authorize")
    def select_and_insert() -> Any:
        body = request.get_json()
        subject = pseudonyms.subject_key(
            key, system=body["subject"]["system"], value=body["subject"]["value"]
        )
        now = datetime.now(UTC)
        values = {
            "id": str(uuid.uuid4()),
            "at": now,
            "requester": "bench-univ",
            "client_id": "bench",
            "subject_key": subject,
            "purpose": body["purpose"],
            "data_categories": body["data_categories"],
            "outcome": "deny",
            "reasons": [],
            "obligations": [],
            "consent_id": None,
            "consent_version": None,
            "rule_ids": [],
            "policy_versions": {},
        }
        with read_snapshot(sessions) as session:
            found = session.execute(select(Consent.id).where(Consent.subject_key == subject)).all()
        with write(sessions) as session:
            if core:
                session.execute(insert(decisions).values(values))
            else:
                session.add(Decision(**values))
            session.commit()
        return jsonify({"consents": len(found)})

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    return app


def make(kind: str) -> Flask:
    if kind == "floor":
        return floor_app()
    if kind == "storage":
        return storage_app()
    if kind == "storage-core":
        return storage_app(core=True)
    if kind == "service":
        from consent_service import create_app

        return create_app()
    raise ValueError(f"unknown app {kind!r}")
