"""Helpers shared by the trust-and-transparency tests (audit, receipts, reports, FHIR)."""

from __future__ import annotations

import copy
import json
from typing import Any

from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy.engine import Engine

from consent_service import cli
from consent_service.container import EXTENSION

SUBJECT = {"system": "urn:outreach-org:client", "value": "C-1042"}
CONSENT = {
    "subject": SUBJECT,
    "purposes": ["service-delivery", "service-planning"],
    "data_categories": ["nationality", "health", "housing"],
    "recipients": ["outreach-org", "gla"],
    "evidence": {"method": "verbal", "obtained_by": "worker-17", "notes": "interpreter present"},
}


def consent_body(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(CONSENT)
    body.update(changes)
    return body


def engine_of(app: Flask) -> Engine:
    return app.extensions[EXTENSION].sessions.kw["bind"]  # type: ignore[no-any-return]


def cli_env(app_config: dict[str, Any]) -> dict[str, str]:
    """The environment the ``consent-service`` command builds the same app from."""
    return {
        "CONSENT_DATABASE_URL": app_config["DATABASE_URL"],
        "CONSENT_DB_SCHEMA": app_config.get("DB_SCHEMA", ""),
        "CONSENT_SECRET_KEY": app_config["SECRET_KEY"],
        "CONSENT_SIGNING_KEYS": app_config["SIGNING_KEYS"],
        "CONSENT_INSTANCE_PATH": app_config["INSTANCE_PATH"],
    }


def run_cli(app_config: dict[str, Any], *args: str) -> Result:
    """Run ``consent-service ARGS`` as a deployment would: the app is built from the environment.

    The apps the command builds are disposed of afterwards (their pooled connections would
    otherwise be closed by the garbage collector, which the suite treats as an error).
    """
    built: list[Flask] = []
    original = cli._app

    def tracked() -> Flask:
        app = original()
        built.append(app)
        return app

    cli._app = tracked
    try:
        return CliRunner().invoke(cli.main, list(args), env=cli_env(app_config), catch_exceptions=False)
    finally:
        cli._app = original
        for app in built:
            engine_of(app).dispose()


def cli_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def add_community(
    client: Any,
    world: Any,
    community: str = "nation-a",
    steward: str = "nation-a-council",
    *,
    show_community_id: bool = False,
) -> str:
    world.org(steward, "community-governance")
    response = client.post(
        "/v1/communities",
        json={
            "id": community,
            "name": community.title(),
            "stewards": [steward],
            "show_community_id": show_community_id,
        },
        headers=world.admin(),
    )
    assert response.status_code == 201, response.get_json()
    return community


def add_rule(
    app: Flask,
    *,
    community: str,
    effect: str = "deny",
    purposes: list[str],
    data_categories: list[str],
    requesters: list[str] | None = None,
    reason: str = "Not approved by the community",
) -> str:
    """A community rule written straight to the store (as the rules API would), bumping the version
    and recording the change in the audit chain as the API does (so the database still verifies)."""
    import uuid
    from datetime import UTC, datetime

    from consent_service.storage import communities as community_store
    from consent_service.storage.models import CommunityRule

    rule_id = str(uuid.uuid4())
    services = app.extensions[EXTENSION]
    with services.sessions() as session:
        community_store.add(
            session,
            CommunityRule(
                id=rule_id,
                community_id=community,
                effect=effect,
                purposes=purposes,
                data_categories=data_categories,
                requesters=requesters or ["*"],
                obligations={},
                labels=[],
                reason=reason,
                created_at=datetime.now(UTC),
                created_by="nation-a-council",
                created_by_client="test",
            ),
        )
        community_store.bump_policy_version(session, community)
        services.append_audit(
            session,
            at=datetime.now(UTC),
            tag="rule:created",
            caller=None,
            object_id=rule_id,
            payload={"community": community},
        )
        session.commit()
    return rule_id
