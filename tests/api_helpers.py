"""Small factories and assertions shared by the API tests (the fixtures live in conftest.py).

Bodies start from the contract's examples (the rough-sleeper case) and are changed with
keyword overrides, so each test states only what it is about.
"""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from consent_service.container import EXTENSION
from consent_service.storage import models

SUBJECT = {"system": "urn:outreach-org:client", "value": "C-1042"}
EVIDENCE = {"method": "verbal", "obtained_by": "worker-17", "notes": "interpreter present"}

CONSENT = {
    "subject": SUBJECT,
    "purposes": ["service-delivery", "service-planning"],
    "data_categories": ["nationality", "health", "housing"],
    "recipients": ["outreach-org", "gla"],
    "evidence": EVIDENCE,
}

# What policies/deployment.toml attaches to every permit, and to nationality outside service delivery.
DEFAULT_OBLIGATIONS = [
    {"code": "no_onward_disclosure", "source": "deployment"},
    {"code": "purpose_limited", "source": "deployment"},
]
NATIONALITY_AGGREGATE = {
    "code": "aggregate_only",
    "min_cell_size": 10,
    "source": "deployment",
    "category": "nationality",
}

_MISSING = object()

ORGANIZATIONS = {"outreach-org": "service-provider", "gla": "government", "home-office": "government"}


def rough_sleeper_orgs(world: Any) -> None:
    """The organizations of the contract's example (the recipients of :data:`CONSENT`)."""
    for org_id, org_type in ORGANIZATIONS.items():
        world.org(org_id, org_type)


def body_with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with top-level fields replaced; ``drop`` removes them."""
    body = copy.deepcopy(base)
    for name, value in changes.items():
        if value is _MISSING:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def without(*names: str) -> dict[str, Any]:
    """Keyword changes for :func:`body_with` that remove ``names``."""
    return dict.fromkeys(names, _MISSING)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def in_days(days: float) -> str:
    return iso(datetime.now(UTC) + timedelta(days=days))


# -- answers -----------------------------------------------------------------------------------


def json_of(response: TestResponse) -> Any:
    return json.loads(response.get_data(as_text=True))


def assert_error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """The answer has ``status`` and exactly the contract's error body with ``code``."""
    body = json_of(response)
    assert response.status_code == status, body
    assert response.mimetype == "application/json"
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], dict), body
    return error


def assert_ok(response: TestResponse, status: int = 200) -> dict[str, Any]:
    body = json_of(response)
    assert response.status_code == status, body
    return body  # type: ignore[no-any-return]


# -- calls -------------------------------------------------------------------------------------


def record_consent(client: FlaskClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    return assert_ok(client.post("/v1/consents", json=body_with(CONSENT, **changes), headers=headers), 201)


def ask(
    client: FlaskClient,
    headers: dict[str, str],
    purpose: str,
    *categories: str,
    subject: dict[str, str] = SUBJECT,
) -> dict[str, Any]:
    """POST /v1/authorize; the answer must be a 200 decision."""
    response = client.post(
        "/v1/authorize",
        headers=headers,
        json={"subject": subject, "purpose": purpose, "data_categories": list(categories)},
    )
    return assert_ok(response)


# -- the database, seen from outside the service --------------------------------------------


def engine_of(app: Flask) -> Any:
    return app.extensions[EXTENSION].sessions.kw["bind"]


def table_counts(app: Flask) -> dict[str, int]:
    """Row count of every table of the schema, in one statement (taken around many requests)."""
    tables = models.metadata.sorted_tables
    counts = [select(func.count()).select_from(table).scalar_subquery() for table in tables]
    with engine_of(app).connect() as conn:
        return dict(zip([table.name for table in tables], conn.execute(select(*counts)).one(), strict=True))


def all_rows_as_text(app: Flask) -> str:
    """Every row of every table, rendered as text (to search for what must never be stored)."""
    parts: list[str] = []
    with engine_of(app).connect() as conn:
        for table in models.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(f"{table.name}: {json.dumps([str(v) for v in row], ensure_ascii=False)}")
    return "\n".join(parts)


def audit_head(app: Flask) -> tuple[Any, ...]:
    """The audit chain's head (its length and last hash): any audited write moves it."""
    with engine_of(app).connect() as conn:
        return tuple(conn.execute(select(models.AuditHead.seq, models.AuditHead.hash)).one())


@contextmanager
def unchanged_tables(app: Flask) -> Iterator[None]:
    """Assert that the block writes no row to any table (nor moves the audit chain's head)."""
    before = table_counts(app), audit_head(app)
    yield
    assert (table_counts(app), audit_head(app)) == before


class Clock:
    """The service's clock (``now`` in every view module), moved by tests that need time to pass."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from consent_service import views

        self.offset = timedelta()
        for info in pkgutil.iter_modules(views.__path__):
            module = importlib.import_module(f"{views.__name__}.{info.name}")
            if callable(getattr(module, "now", None)):
                monkeypatch.setattr(module, "now", self.now)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta
