"""A world in which every /v1 operation can succeed, for the security tests (issue 6).

One consent of a member of Nation A recorded by outreach-org, a require_approval rule of Nation A
and its approval for univ, a permit decision for gla, and a spare client to disable. Everything
is made through the HTTP API, as a client would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api_helpers import CONSENT, SUBJECT, engine_of
from flask import Flask
from sqlalchemy import text

from consent_service.core.permissions import Scope
from consent_service.storage import models

ALL_SCOPES = tuple(str(scope) for scope in Scope)
PROVIDER, GOVERNMENT, RESEARCHER, OUTSIDER = "outreach-org", "gla", "univ", "home-office"
COUNCIL_A, COUNCIL_B, ADMIN_ORG = "nation-a-council", "nation-b-council", "admin"
OVERSEER = "privacy-commissioner"  # an oversight organization: the only kind, besides admin, with audit:read
NATION_A, NATION_B = "nation-a", "nation-b"
WEBHOOK_URL = "http://127.0.0.1:9/events"  # loopback http: tests allow it (conftest.config_for)

ORGANIZATIONS = (
    (PROVIDER, "service-provider"),
    (GOVERNMENT, "government"),
    (RESEARCHER, "research"),
    (OUTSIDER, "government"),
    (COUNCIL_A, "community-governance"),
    (COUNCIL_B, "community-governance"),
    (OVERSEER, "oversight"),
)


def holdable(org: str, scopes: tuple[str, ...] = ALL_SCOPES) -> tuple[str, ...]:
    """The scopes a client of ``org`` may hold: audit:read only in admin or an oversight
    organization, metrics:read only in admin."""
    return tuple(
        s
        for s in scopes
        if (s != str(Scope.AUDIT_READ) or org in (ADMIN_ORG, OVERSEER))
        and (s != str(Scope.METRICS_READ) or org == ADMIN_ORG)
    )


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == status, body
    return body  # type: ignore[no-any-return]


def seed_world(
    client: Any, world: Any, *, subject: dict[str, str] = SUBJECT, evidence: dict[str, str] | None = None
) -> dict[str, str]:
    """Make the world; returns the ids a path or body may need (named as the url_map names them)."""
    for org_id, org_type in ORGANIZATIONS:
        world.org(org_id, org_type)
    for community, council in ((NATION_A, COUNCIL_A), (NATION_B, COUNCIL_B)):
        _ok(
            client.post(
                "/v1/communities",
                headers=world.admin(),
                json={"id": community, "name": community, "stewards": [council]},
            ),
            201,
        )
    consent = _ok(
        client.post(
            "/v1/consents",
            headers=world.headers(PROVIDER, "consents:write"),
            json={
                **CONSENT,
                "subject": subject,
                "communities": [NATION_A],
                "evidence": evidence or CONSENT["evidence"],
                "recipients": [PROVIDER, GOVERNMENT, RESEARCHER],
            },
        ),
        201,
    )
    steward = world.headers(COUNCIL_A, "rules:write")
    rule = _ok(
        client.post(
            f"/v1/communities/{NATION_A}/rules",
            headers=steward,
            json={
                "effect": "require_approval",
                "purposes": ["research"],
                "data_categories": ["health"],
                "requesters": ["*"],
                "reason": "ask first",
            },
        ),
        201,
    )
    approval = _ok(
        client.post(
            f"/v1/communities/{NATION_A}/approvals",
            headers=steward,
            json={"requester": RESEARCHER, "purposes": ["research"], "data_categories": ["health"]},
        ),
        201,
    )
    decision = _ok(
        client.post(
            "/v1/authorize",
            headers=world.headers(GOVERNMENT, "authorize"),
            json={"subject": subject, "purpose": "service-planning", "data_categories": ["housing"]},
        )
    )
    assert decision["decision"] == "permit", decision
    spare_client, _ = world.credentials(PROVIDER, "authorize")
    legacy_consent(client, world, LEGACY_SUBJECT)
    council_client, _ = world.credentials(COUNCIL_A, "community:read")
    # A steward change waiting for confirmation, proposed by another client of Nation A's
    # council than the one the tests confirm it with (two people decide).
    change = _ok(
        client.post(
            f"/v1/communities/{NATION_A}/steward-changes",
            headers=world.headers(COUNCIL_A, "community:read", "rules:write"),
            json={"action": "add", "organization": COUNCIL_B},
        ),
        201,
    )
    pending = _ok(client.get(f"/v1/communities/{NATION_A}/memberships", headers=steward), 200)["pending"]
    agreement = _ok(
        client.post(
            f"/v1/communities/{NATION_A}/agreements",
            headers=steward,
            json={
                "title": "Health research",
                "parties": [RESEARCHER],
                "legal_authority": "Council resolution",
                "review_at": "2099-01-01T00:00:00+00:00",
                "duties": [AGREEMENT_DUTY],
            },
        ),
        201,
    )
    _ok(
        client.put(
            f"/v1/communities/{NATION_A}/agreements/{agreement['id']}/document",
            headers={**steward, "Content-Type": "text/plain"},
            data=b"The signed agreement.",
        ),
        200,
    )
    webhook = _ok(
        client.post(
            "/v1/webhooks",
            headers=world.headers(GOVERNMENT, "webhooks:write"),
            json={"url": WEBHOOK_URL, "kinds": ["consent.revoked", "rule.added"]},
        ),
        201,
    )
    return {
        "webhook_id": webhook["id"],
        "agreement_id": agreement["id"],
        "duty_id": agreement["duties"][0]["id"],
        "change_id": change["id"],
        "membership_id": pending[0]["id"],
        "council_client_id": council_client,
        "consent_id": consent["id"],
        "receipt": consent["receipt"],
        "community_id": NATION_A,
        "rule_id": rule["id"],
        "approval_id": approval["id"],
        "decision_id": decision["decision_id"],
        "client_id": spare_client,
    }


AGREEMENT_DUTY = {
    "kind": "progress_report",
    "description": "A yearly progress report to the council",
    "due_at": "2098-01-01T00:00:00+00:00",
    "owed_by": RESEARCHER,
}

# A subject as v1 recorded it: under the key of a spelling that is not normalized (a trailing space).
LEGACY_SUBJECT = {"system": SUBJECT["system"], "value": "C-9001 "}


def legacy_consent(
    client: Any, world: Any, spelled: dict[str, str], *, org: str = PROVIDER, **body: Any
) -> dict[str, Any]:
    """A consent of ``spelled`` stored as v1 stored it: keyed by the identifier exactly as sent
    (recorded now, then its rows moved to that key, as a v1-era database holds them)."""
    from datetime import UTC, datetime

    from sqlalchemy import select, update

    from consent_service.core import pseudonyms
    from consent_service.storage import audit_rows

    consent = _ok(
        client.post(
            "/v1/consents",
            headers=world.headers(org, "consents:write"),
            json={**CONSENT, "subject": spelled, **body},
        ),
        201,
    )
    services = world.services
    old = pseudonyms.key_as_given(services.pseudonym_key, **spelled)
    with services.sessions() as session:
        new = session.get(models.Consent, consent["id"]).subject_key
        assert new != old, "the spelling is normalized already"
        # Bound to an audit entry, as `db upgrade` binds a v1-era database's rows: the chain
        # must still verify, so only what the test does afterwards is judged.
        audit_rows.changing(session, models.Consent, consent["id"])
        for community in session.scalars(
            select(models.Membership.community_id).where(models.Membership.subject_key == new)
        ):
            audit_rows.changing(session, models.Membership, new, community)
        session.execute(
            update(models.Consent).where(models.Consent.subject_key == new).values(subject_key=old)
        )
        moved = session.execute(
            update(models.Membership)
            .where(models.Membership.subject_key == new)
            .values(subject_key=old)
            .returning(models.Membership.community_id)
        )
        for community in moved.scalars().all():
            audit_rows.added(session, models.Membership, old, community)
        services.append_audit(
            session,
            at=datetime.now(UTC),
            tag="test:legacy-key",
            caller=None,
            object_id=consent["id"],
            payload={},
        )
        session.commit()
    return consent


def row_counts(app: Flask) -> tuple[int, ...]:
    """The row count of every table, in one statement (cheap enough to take around every request)."""
    tables = models.metadata.sorted_tables
    sql = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{table.name}")' for table in tables)
    with engine_of(app).connect() as conn:
        return tuple(conn.execute(text(sql)).one())


def access_request_body(c: dict[str, Any]) -> dict[str, Any]:
    """A data access request from gla, naming the rule its denial told it (``seed_access_request``)."""
    return {
        "community": NATION_A,
        "rule_id": c["rule_id"],
        "purposes": ["research"],
        "data_categories": ["health"],
        "protocol": "a study",
        "ethics_reference": "REB-1",
        "benefit_plan": "results returned",
        "requested_until": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
    }


def seed_access_request(world: Any, built: dict[str, str]) -> dict[str, str]:
    """The seeded world plus a pending data access request of gla: refused under Nation A's
    require_approval rule about a member whose consent lets it do research (its answer names
    the rule), it asks the community."""
    member = {"system": SUBJECT["system"], "value": "C-5150"}
    consent = world.client.post(
        "/v1/consents",
        headers=world.headers(PROVIDER, "consents:write"),
        json={**CONSENT, "subject": member, "communities": [NATION_A], "purposes": ["research"]},
    )
    assert consent.status_code == 201, consent.get_json()
    answer = world.client.post(
        "/v1/authorize",
        headers=world.headers(GOVERNMENT, "authorize"),
        json={"subject": member, "purpose": "research", "data_categories": ["health"]},
    ).get_json()
    assert built["rule_id"] in [r.get("rule_id") for r in answer["reasons"]], answer
    filed = world.client.post(
        "/v1/access-requests", headers=world.headers(GOVERNMENT, "authorize"), json=access_request_body(built)
    )
    assert filed.status_code == 201, filed.get_json()
    return {**built, "request_id": filed.get_json()["id"]}
