"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from consent_service.errors import Unavailable
from consent_service.storage.db import read_snapshot
from consent_service.views.common import services

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process answers. Says nothing about the database (that is /readyz)."""
    return jsonify({"status": "ok"})


@blp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready to decide: the database answers and the schema is migrated."""
    try:
        with read_snapshot(services().sessions) as session:
            session.execute(text("SELECT seq FROM audit_head WHERE id = 1")).one()
    except Exception as exc:
        raise Unavailable("The store cannot be reached; not ready.") from exc
    return jsonify({"status": "ready"})
