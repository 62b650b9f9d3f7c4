"""Every state change is an audit entry (contract v1.1 section 7; issue 13).

Each change is made through its real entry point (an API call, a page of the web pages through
Flask's test client, or the ``consent-service`` command) and must add exactly the expected
entries (tag, actor, object), nothing that is a secret, and leave ``audit verify`` passing.

``ROUTES`` has one case per route of the app that is not a GET, read from the app's url_map
(``test_the_table_covers_every_route``): a new route fails the suite until its case says which
entries it adds (or shows that it adds none and writes nothing).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from api_helpers import CONSENT, SUBJECT, assert_ok, engine_of
from flask import Flask
from flask.testing import FlaskClient
from governance_helpers import (
    APPROVAL,
    APPROVAL_RULE,
    COUNCIL_A,
    GOVERNMENT,
    MEMBER,
    MEMBER_CONSENT,
    NATION_A,
    OUTSIDER,
    PROVIDER,
    RESEARCHER,
    Governance,
    seeded_governance,
)
from security_helpers import AGREEMENT_DUTY, legacy_consent
from sqlalchemy import select
from trust_helpers import cli_json, run_cli
from web_helpers import (
    CHEAP_PASSWORDS,
    PASSWORD,
    STEWARD_A,
    WORKER,
    make_people,
    post_form,
    sign_in,
    signed_in,
)

from consent_service import cli
from consent_service.container import EXTENSION, Services
from consent_service.core import consent_files
from consent_service.core.keys import SIGNING_KEYS_FILE, StagedRotation
from consent_service.core.wire import AuditTag
from consent_service.services import audit as audit_log
from consent_service.services import signing_keys as key_rotation
from consent_service.services import users
from consent_service.storage import audit as audit_store
from consent_service.storage import models
from consent_service.storage.models import AuditEntry, UserAccount

Actor = tuple[str | None, str | None]  # (actor_org, actor_client)
Expected = tuple[str, Actor, str | None]  # (tag, actor, object_id)
OPERATOR: Actor = (None, None)  # the command line, and whoever tries to sign in
WRONG = "not the password at all"
AUDIT_TABLES = "audit_"  # the chain and whatever part of it is kept in tables of its own
BOUND_ROWS = "rows"  # the payload key under which an entry binds the rows it wrote (docs/audit.md)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, **CHEAP_PASSWORDS}


# -- the database seen from outside ---------------------------------------------------------


def services_of(app: Flask) -> Services:
    return app.extensions[EXTENSION]  # type: ignore[no-any-return]


def head_seq(app: Flask) -> int:
    with engine_of(app).connect() as conn:
        return int(conn.execute(select(models.AuditHead.seq)).scalar_one())


def entries_after(app: Flask, seq: int) -> list[AuditEntry]:
    with services_of(app).sessions() as session:
        rows = list(session.scalars(select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq)))
        session.expunge_all()
        return rows


def said(entry: AuditEntry) -> dict[str, Any]:
    """What the entry says about the change: its payload without the digests of the rows it binds."""
    return {name: value for name, value in entry.payload.items() if name != BOUND_ROWS}


def summary(entries: list[AuditEntry]) -> list[Expected]:
    return [(e.tag, (e.actor_org, e.actor_client), e.object_id) for e in entries]


def state(app: Flask) -> dict[str, list[str]]:
    """Every row of every table but the audit chain's, as text, per table."""
    with engine_of(app).connect() as conn:
        return {
            table.name: sorted(json.dumps([str(v) for v in row]) for row in conn.execute(select(table)))
            for table in models.metadata.sorted_tables
            if not table.name.startswith(AUDIT_TABLES)
        }


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def assert_verifies(app: Flask) -> None:
    result = audit_log.verify(services_of(app))
    assert result.ok, result.problem


def user_of(app: Flask, email: str) -> UserAccount:
    with services_of(app).sessions() as session:
        row = session.scalars(select(UserAccount).where(UserAccount.email == email)).one()
        session.expunge(row)
        return row


def person(app: Flask, email: str) -> Actor:
    """The actor of what a signed-in person does: their organization and ``user:<id>``."""
    user = user_of(app, email)
    return (user.organization_id, f"user:{user.id}")


def token_client(headers: dict[str, str]) -> str:
    payload = headers["Authorization"].split()[1].split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["client_id"])


# -- one trial of a case ----------------------------------------------------------------------


class Trial:
    """The world a case runs in; ``start()`` marks the moment after which entries are counted."""

    def __init__(self, app: Flask, client: FlaskClient, gov: Governance) -> None:
        self.app, self.client, self.gov, self.world = app, client, gov, gov.world
        self.browsers: dict[str, FlaskClient] = {}
        self.secrets: list[str] = [PASSWORD, WRONG, SUBJECT["value"], MEMBER["value"], OUTSIDER["value"]]
        self.seq = 0
        self.before: dict[str, list[str]] = {}
        self.started = False
        # Set by a test: from start() on, every audit append fails (and is counted).
        self.break_appends: pytest.MonkeyPatch | None = None
        self.appends_tried = 0

    def api(self, org: str, *scopes: str) -> dict[str, str]:
        return self.world.headers(org, *scopes)  # type: ignore[no-any-return]

    def api_actor(self, org: str, *scopes: str) -> Actor:
        return (org, token_client(self.api(org, *scopes)))

    def browser(self, email: str) -> FlaskClient:
        if email not in self.browsers:
            self.browsers[email] = signed_in(self.app.test_client(), email)
        return self.browsers[email]

    def start(self) -> None:
        self.seq, self.before, self.started = head_seq(self.app), state(self.app), True
        if self.break_appends is not None:
            for name in ("append", "append_many", "append_serialized"):
                self.break_appends.setattr(audit_store, name, self._failing_append)

    def _failing_append(self, *args: Any, **kwargs: Any) -> int:
        self.appends_tried += 1
        raise RuntimeError("the audit chain cannot be written")

    def new_entries(self) -> list[AuditEntry]:
        return entries_after(self.app, self.seq)

    def session_cookies(self) -> list[str]:
        return [c.value for b in self.browsers.values() if (c := b.get_cookie("consent_session")) is not None]


governance_seeds, seed, database_start, gov = seeded_governance(
    "audit-coverage", also=lambda governance: make_people(governance.world), settings=CHEAP_PASSWORDS
)


@pytest.fixture
def trial(app: Flask, client: FlaskClient, gov: Governance) -> Trial:
    return Trial(app, client, gov)


Case = Callable[[Trial], list[Expected]]

# -- the API ----------------------------------------------------------------------------------


def token(t: Trial) -> list[Expected]:
    client_id, secret = t.world.credentials(PROVIDER, "consents:read")
    t.secrets.append(secret)
    t.start()
    from conftest import basic_auth

    answer = t.client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic_auth(client_id, secret)
    )
    assert_ok(answer)
    t.secrets.append(answer.get_json()["access_token"])
    return []  # a token is signed, not stored: nothing changes


def verify_with_checkpoints(t: Trial) -> list[Expected]:
    headers = t.api("auditor", "audit:read")
    t.start()
    assert assert_ok(t.client.post("/v1/audit/verify", json={"checkpoints": []}, headers=headers))["ok"]
    return []


def authorize(t: Trial) -> list[Expected]:
    t.gov.consent()
    headers = t.api(RESEARCHER, "authorize")
    t.start()
    answer = assert_ok(
        t.client.post(
            "/v1/authorize",
            headers=headers,
            json={"subject": MEMBER, "purpose": "research", "data_categories": ["health"]},
        )
    )
    return [(f"decision:{answer['decision']}", t.api_actor(RESEARCHER, "authorize"), answer["decision_id"])]


def authorize_batch(t: Trial) -> list[Expected]:
    t.gov.consent()
    headers = t.api(RESEARCHER, "authorize")
    t.start()
    answer = assert_ok(
        t.client.post(
            "/v1/authorize/batch",
            headers=headers,
            json={"subjects": [MEMBER, OUTSIDER], "purpose": "research", "data_categories": ["health"]},
        )
    )
    # One entry for the whole batch, binding every decision row (each row names the batch).
    with services_of(t.app).sessions() as session:
        batch_ids = set(
            session.scalars(
                select(models.Decision.batch_id).where(
                    models.Decision.id.in_([d["decision_id"] for d in answer["decisions"]])
                )
            )
        )
    assert len(batch_ids) == 1
    return [("decision:batch", t.api_actor(RESEARCHER, "authorize"), batch_ids.pop())]


def create_client(t: Trial) -> list[Expected]:
    t.start()
    created = assert_ok(
        t.client.post(
            "/v1/clients",
            headers=t.world.admin(),
            json={"organization": PROVIDER, "name": "intake tablets", "scopes": ["consents:write"]},
        ),
        201,
    )
    t.secrets.append(created["client_secret"])
    return [(AuditTag.CLIENT_CREATED, t.api_actor("admin", "admin"), created["client_id"])]


def disable_client(t: Trial) -> list[Expected]:
    client_id, _ = t.world.credentials(PROVIDER, "consents:write")
    t.start()
    assert_ok(t.client.post(f"/v1/clients/{client_id}/disable", headers=t.world.admin()))
    return [(AuditTag.CLIENT_DISABLED, t.api_actor("admin", "admin"), client_id)]


def create_community(t: Trial) -> list[Expected]:
    t.start()
    assert_ok(
        t.client.post(
            "/v1/communities",
            headers=t.world.admin(),
            json={"id": "nation-c", "name": "Nation C", "stewards": [COUNCIL_A]},
        ),
        201,
    )
    return [(AuditTag.COMMUNITY_CREATED, t.api_actor("admin", "admin"), "nation-c")]


def change_community(t: Trial) -> list[Expected]:
    headers = t.gov.steward()
    t.start()
    body = {"show_community_id": True}
    assert_ok(t.client.patch(f"/v1/communities/{NATION_A}", headers=headers, json=body))
    return [(AuditTag.COMMUNITY_CHANGED, t.api_actor(COUNCIL_A, "rules:write"), NATION_A)]


def disable_community_client(t: Trial) -> list[Expected]:
    headers = t.gov.steward()
    client_id, _ = t.world.credentials(COUNCIL_A, "community:read")
    t.start()
    assert_ok(t.client.post(f"/v1/communities/{NATION_A}/clients/{client_id}/disable", headers=headers))
    return [(AuditTag.CLIENT_DISABLED, t.api_actor(COUNCIL_A, "rules:write"), client_id)]


def create_community_client(t: Trial) -> list[Expected]:
    headers = t.gov.steward()
    t.start()
    created = assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/clients",
            headers=headers,
            json={"name": "council laptop", "scopes": ["community:read"]},
        ),
        201,
    )
    t.secrets.append(created["client_secret"])
    return [(AuditTag.CLIENT_CREATED, t.api_actor(COUNCIL_A, "rules:write"), created["client_id"])]


def propose_steward_change(t: Trial) -> list[Expected]:
    headers = t.gov.steward()
    t.start()
    change = assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/steward-changes",
            headers=headers,
            json={"action": "add", "organization": RESEARCHER},
        ),
        201,
    )
    return [(AuditTag.STEWARD_CHANGE_PROPOSED, t.api_actor(COUNCIL_A, "rules:write"), change["id"])]


def confirm_steward_change(t: Trial) -> list[Expected]:
    change = assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/steward-changes",
            headers=t.gov.steward(),
            json={"action": "add", "organization": RESEARCHER},
        ),
        201,
    )
    second = t.api(COUNCIL_A, "community:read", "rules:write")
    t.start()
    assert_ok(
        t.client.post(f"/v1/communities/{NATION_A}/steward-changes/{change['id']}/confirm", headers=second)
    )
    actor = t.api_actor(COUNCIL_A, "community:read", "rules:write")
    return [(AuditTag.STEWARD_CHANGE_CONFIRMED, actor, change["id"])]


def pending_membership_ids(t: Trial) -> list[str]:
    seen = assert_ok(t.client.get(f"/v1/communities/{NATION_A}/memberships", headers=t.gov.steward()))
    return [m["id"] for m in seen["pending"]]


def confirm_memberships(t: Trial) -> list[Expected]:
    t.gov.consent()
    ids = pending_membership_ids(t)
    headers = t.gov.steward()
    t.start()
    assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/memberships/confirm", headers=headers, json={"memberships": ids}
        )
    )
    return [(AuditTag.MEMBERSHIPS_CONFIRMED, t.api_actor(COUNCIL_A, "rules:write"), NATION_A)]


def person_confirms_membership(t: Trial) -> list[Expected]:
    consent = t.gov.consent()
    t.start()
    assert_ok(
        t.client.post(
            f"/v1/consents/{consent['id']}/memberships/{NATION_A}/confirm", headers=t.gov.recorder()
        )
    )
    return [(AuditTag.MEMBERSHIP_CONFIRMED, t.api_actor(PROVIDER, "consents:write"), consent["id"])]


def person_ends_membership(t: Trial) -> list[Expected]:
    consent = t.gov.consent()
    t.start()
    assert_ok(
        t.client.post(f"/v1/consents/{consent['id']}/memberships/{NATION_A}/end", headers=t.gov.recorder())
    )
    return [(AuditTag.MEMBERSHIP_ENDED, t.api_actor(PROVIDER, "consents:write"), consent["id"])]


def create_organization(t: Trial) -> list[Expected]:
    t.start()
    assert_ok(
        t.client.post(
            "/v1/organizations",
            headers=t.world.admin(),
            json={"id": "shelter-co", "name": "Shelter Co", "type": "service-provider"},
        ),
        201,
    )
    return [(AuditTag.ORGANIZATION_CREATED, t.api_actor("admin", "admin"), "shelter-co")]


def register_webhook(t: Trial) -> list[Expected]:
    headers = t.api(PROVIDER, "webhooks:write")
    t.secrets.append("shared-s3cret")  # a receiver's secret in the URL's query is not audited
    t.start()
    url = "http://127.0.0.1:9/events?token=shared-s3cret"
    hook = assert_ok(
        t.client.post("/v1/webhooks", headers=headers, json={"url": url, "kinds": ["rule.added"]}), 201
    )
    return [(AuditTag.WEBHOOK_REGISTERED, t.api_actor(PROVIDER, "webhooks:write"), hook["id"])]


def delete_webhook(t: Trial) -> list[Expected]:
    headers = t.api(PROVIDER, "webhooks:write")
    body = {"url": "http://127.0.0.1:9/events", "kinds": ["consent.revoked"]}
    hook = assert_ok(t.client.post("/v1/webhooks", headers=headers, json=body), 201)
    t.start()
    assert t.client.delete(f"/v1/webhooks/{hook['id']}", headers=headers).status_code == 204
    return [(AuditTag.WEBHOOK_DELETED, t.api_actor(PROVIDER, "webhooks:write"), hook["id"])]


def grant_approval(t: Trial) -> list[Expected]:
    headers = t.gov.steward()
    t.start()
    approval = assert_ok(
        t.client.post(f"/v1/communities/{NATION_A}/approvals", headers=headers, json=APPROVAL), 201
    )
    return [(AuditTag.APPROVAL_GRANTED, t.api_actor(COUNCIL_A, "rules:write"), approval["id"])]


def _agreement(t: Trial) -> dict[str, Any]:
    return assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/agreements",
            headers=t.gov.steward(),
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


def create_agreement(t: Trial) -> list[Expected]:
    approval = t.gov.approval()  # granted before, placed under the agreement by it
    headers = t.gov.steward()
    t.start()
    agreement = assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/agreements",
            headers=headers,
            json={
                "title": "Health research",
                "parties": [RESEARCHER],
                "legal_authority": "Council resolution",
                "review_at": "2099-01-01T00:00:00+00:00",
                "approvals": [approval["id"]],
                "duties": [AGREEMENT_DUTY],
            },
        ),
        201,
    )
    return [(AuditTag.AGREEMENT_CREATED, t.api_actor(COUNCIL_A, "rules:write"), agreement["id"])]


def renew_agreement(t: Trial) -> list[Expected]:
    agreement = _agreement(t)
    t.start()
    assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/agreements/{agreement['id']}/renew",
            headers=t.gov.steward(),
            json={"review_at": "2099-06-01T00:00:00+00:00"},
        )
    )
    return [(AuditTag.AGREEMENT_RENEWED, t.api_actor(COUNCIL_A, "rules:write"), agreement["id"])]


def attach_agreement_document(t: Trial) -> list[Expected]:
    agreement = _agreement(t)
    t.start()
    assert_ok(
        t.client.put(
            f"/v1/communities/{NATION_A}/agreements/{agreement['id']}/document",
            headers={**t.gov.steward(), "Content-Type": "application/pdf"},
            data=b"%PDF-1.4 signed",
        )
    )
    return [(AuditTag.AGREEMENT_DOCUMENT_ATTACHED, t.api_actor(COUNCIL_A, "rules:write"), agreement["id"])]


def add_duty(t: Trial) -> list[Expected]:
    agreement = _agreement(t)
    t.start()
    duty = assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/agreements/{agreement['id']}/duties",
            headers=t.gov.steward(),
            json=AGREEMENT_DUTY,
        ),
        201,
    )
    return [(AuditTag.DUTY_ADDED, t.api_actor(COUNCIL_A, "rules:write"), duty["id"])]


def mark_duty_met(t: Trial) -> list[Expected]:
    agreement = _agreement(t)
    duty_id = agreement["duties"][0]["id"]
    t.start()
    assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/agreements/{agreement['id']}/duties/{duty_id}/met",
            headers=t.gov.steward(),
            json={"note": "report received"},
        )
    )
    return [(AuditTag.DUTY_MET, t.api_actor(COUNCIL_A, "rules:write"), duty_id)]


def revoke_approval(t: Trial) -> list[Expected]:
    approval = t.gov.approval()
    t.start()
    t.gov.revoke(approval, reason="agreement ended")
    return [(AuditTag.APPROVAL_REVOKED, t.api_actor(COUNCIL_A, "rules:write"), approval["id"])]


def create_rule(t: Trial) -> list[Expected]:
    t.gov.steward()
    t.start()
    rule = t.gov.rule()
    return [(AuditTag.RULE_CREATED, t.api_actor(COUNCIL_A, "rules:write"), rule["id"])]


def retire_rule(t: Trial) -> list[Expected]:
    rule = t.gov.rule()
    t.start()
    t.gov.retire(rule, reason="superseded")
    return [(AuditTag.RULE_RETIRED, t.api_actor(COUNCIL_A, "rules:write"), rule["id"])]


def record_consent(t: Trial) -> list[Expected]:
    t.gov.recorder()
    t.start()
    consent = t.gov.consent()
    return [(AuditTag.CONSENT_RECORDED, t.api_actor(PROVIDER, "consents:write"), consent["id"])]


def import_consents(t: Trial) -> list[Expected]:
    """A file of two consents (one naming a community): an entry per consent, binding its rows
    (consent, version, event, the pending membership, the import row)."""
    t.gov.recorder()
    bundle = consent_files.fhir_bundle(
        consent_files.fhir_consent(body, issuer="urn:consent-service")
        for body in (MEMBER_CONSENT, {**MEMBER_CONSENT, "subject": OUTSIDER, "communities": []})
    )
    t.start()
    report = assert_ok(t.client.post("/v1/consents/import", headers=t.gov.recorder(), json=bundle), 201)
    actor = t.api_actor(PROVIDER, "consents:write")
    return [(AuditTag.CONSENT_RECORDED, actor, consent_id) for consent_id in report["consent_ids"]]


def amend_consent(t: Trial) -> list[Expected]:
    consent = t.gov.consent()
    terms = {k: CONSENT[k] for k in ("purposes", "data_categories", "recipients", "evidence")}
    t.start()
    assert_ok(
        t.client.post(
            f"/v1/consents/{consent['id']}/amend",
            headers=t.gov.recorder(),
            json={**terms, "recipients": [PROVIDER], "version": 1},
        )
    )
    return [(AuditTag.CONSENT_AMENDED, t.api_actor(PROVIDER, "consents:write"), consent["id"])]


def revoke_consent(t: Trial) -> list[Expected]:
    consent = t.gov.consent()
    t.start()
    assert_ok(
        t.client.post(
            f"/v1/consents/{consent['id']}/revoke", headers=t.gov.recorder(), json={"reason": "asked to"}
        )
    )
    return [(AuditTag.CONSENT_REVOKED, t.api_actor(PROVIDER, "consents:write"), consent["id"])]


def new_access_code(t: Trial) -> list[Expected]:
    consent = t.gov.consent()
    t.secrets.append(consent["access_code"])
    t.start()
    made = assert_ok(
        t.client.post(f"/v1/consents/{consent['id']}/access-code", headers=t.gov.recorder()), 201
    )
    t.secrets.append(made["access_code"])
    return [(AuditTag.ACCESS_CODE_ROTATED, t.api_actor(PROVIDER, "consents:write"), consent["id"])]


def verify_receipt(t: Trial) -> list[Expected]:
    receipt = t.gov.consent()["receipt"]
    headers = t.api(RESEARCHER, "authorize")
    t.start()
    answer = t.client.post("/v1/receipts/verify", headers=headers, json={"receipt": receipt})
    assert assert_ok(answer)["valid"]
    return []


def access_report(t: Trial) -> list[Expected]:
    t.gov.consent()
    headers = t.api(PROVIDER, "consents:read")
    t.start()
    assert_ok(t.client.post("/v1/subjects/access-report", headers=headers, json={"subject": MEMBER}))
    return [(AuditTag.SUBJECT_REPORTED, t.api_actor(PROVIDER, "consents:read"), reported(t))]


def reported(t: Trial) -> str:
    """The object of the report's entry: the person's pseudonymous key, never the identifier."""
    [entry] = [e for e in t.new_entries() if e.tag == AuditTag.SUBJECT_REPORTED]
    assert entry.object_id and MEMBER["value"] not in entry.object_id
    return entry.object_id


def register_subject_system(t: Trial) -> list[Expected]:
    headers = t.api("admin", "admin")
    t.start()
    body = {"system": "urn:ca-on:health-card", "shared": True, "case_insensitive": True}
    assert_ok(t.client.post("/v1/subject-systems", headers=headers, json=body), 201)
    return [(AuditTag.SUBJECT_SYSTEM_REGISTERED, t.api_actor("admin", "admin"), None)]


def rekey_subject(t: Trial) -> list[Expected]:
    spelled = {"system": MEMBER["system"], "value": "  " + MEMBER["value"] + " "}
    legacy_consent(t.client, t.world, spelled)
    headers = t.api(PROVIDER, "consents:write")
    t.start()
    assert_ok(t.client.post("/v1/subjects/rekey", headers=headers, json={"subject": spelled}))
    return [(AuditTag.SUBJECT_REKEYED, t.api_actor(PROVIDER, "consents:write"), None)]


# -- the web pages ------------------------------------------------------------------------------


# -- data access requests ---------------------------------------------------------------------


def file_body(rule_id: str) -> dict[str, Any]:
    return {
        "community": NATION_A,
        "rule_id": rule_id,
        "purposes": ["research"],
        "data_categories": ["health"],
        "protocol": "a study",
        "ethics_reference": "REB-7",
        "benefit_plan": "results returned",
        "requested_until": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
    }


def refused_researcher(t: Trial) -> str:
    """The researcher refused under Nation A's require_approval rule: the rule id it was told."""
    t.gov.consent()
    rule = t.gov.rule(base=APPROVAL_RULE)
    t.gov.ask()
    return str(rule["id"])


def filed_request(t: Trial) -> dict[str, Any]:
    response = t.client.post(
        "/v1/access-requests", headers=t.api(RESEARCHER, "authorize"), json=file_body(refused_researcher(t))
    )
    return assert_ok(response, 201)


def file_access_request(t: Trial) -> list[Expected]:
    rule_id = refused_researcher(t)
    headers = t.api(RESEARCHER, "authorize")
    t.start()
    filed = assert_ok(t.client.post("/v1/access-requests", headers=headers, json=file_body(rule_id)), 201)
    return [(AuditTag.ACCESS_REQUEST_FILED, t.api_actor(RESEARCHER, "authorize"), filed["id"])]


def withdraw_access_request(t: Trial) -> list[Expected]:
    filed = filed_request(t)
    t.start()
    withdrawn = t.client.post(
        f"/v1/access-requests/{filed['id']}/withdraw", headers=t.api(RESEARCHER, "authorize")
    )
    assert assert_ok(withdrawn)["status"] == "withdrawn"
    return [(AuditTag.ACCESS_REQUEST_WITHDRAWN, t.api_actor(RESEARCHER, "authorize"), filed["id"])]


def grant_access_request(t: Trial) -> list[Expected]:
    """A grant is two entries in one transaction: the approval it creates, then the decision."""
    filed = filed_request(t)
    headers = t.gov.steward()
    t.start()
    decided = assert_ok(
        t.client.post(
            f"/v1/access-requests/{filed['id']}/decision",
            headers=headers,
            json={"decision": "grant", "note": "council vote"},
        )
    )
    actor = t.api_actor(COUNCIL_A, "rules:write")
    return [
        (AuditTag.APPROVAL_GRANTED, actor, decided["approval"]["id"]),
        (AuditTag.ACCESS_REQUEST_GRANTED, actor, filed["id"]),
    ]


def web_decide_access_request(t: Trial) -> list[Expected]:
    """A steward refuses from the request's page (with its note and confirmation)."""
    filed = filed_request(t)
    browser = t.browser(STEWARD_A)
    t.start()
    path = f"/web/communities/{NATION_A}/access-requests/{filed['id']}/decision"
    done = post_form(browser, path, {"decision": "refuse", "note": "not this year", "confirm": "yes"})
    assert done.status_code == 302
    return [(AuditTag.ACCESS_REQUEST_REFUSED, person(t.app, STEWARD_A), filed["id"])]


def web_mark_duty_met(t: Trial) -> list[Expected]:
    """A steward marks a duty met from the agreements page (with its note and confirmation)."""
    agreement = _agreement(t)
    duty_id = agreement["duties"][0]["id"]
    browser = t.browser(STEWARD_A)
    t.start()
    path = f"/web/communities/{NATION_A}/agreements/{agreement['id']}/duties/{duty_id}/met"
    done = post_form(browser, path, {"note": "tables received", "confirm": "yes"})
    assert done.status_code == 302
    return [(AuditTag.DUTY_MET, person(t.app, STEWARD_A), duty_id)]


def approvals_of(t: Trial, **query: Any) -> list[dict[str, Any]]:
    return assert_ok(
        t.client.get(
            f"/v1/communities/{NATION_A}/approvals",
            headers=t.gov.steward(),  # type: ignore[no-any-return]
            query_string=query,
        )
    )["approvals"]


def steward_changes_of(t: Trial) -> list[dict[str, Any]]:
    listed = t.client.get(f"/v1/communities/{NATION_A}/steward-changes", headers=t.gov.steward())
    return assert_ok(listed)["changes"]  # type: ignore[no-any-return]


def web_propose_steward_change(t: Trial) -> list[Expected]:
    browser = t.browser(STEWARD_A)
    t.gov.steward()  # the token the check reads the changes with
    t.start()
    response = post_form(
        browser, f"/web/communities/{NATION_A}/steward-changes", {"action": "add", "organization": RESEARCHER}
    )
    assert response.status_code == 302
    [change] = steward_changes_of(t)
    return [(AuditTag.STEWARD_CHANGE_PROPOSED, person(t.app, STEWARD_A), change["id"])]


def web_confirm_steward_change(t: Trial) -> list[Expected]:
    browser = t.browser(STEWARD_A)
    change = assert_ok(
        t.client.post(
            f"/v1/communities/{NATION_A}/steward-changes",
            headers=t.gov.steward(),
            json={"action": "add", "organization": RESEARCHER},
        ),
        201,
    )
    t.start()
    response = post_form(browser, f"/web/communities/{NATION_A}/steward-changes/{change['id']}/confirm", {})
    assert response.status_code == 302
    assert [c["status"] for c in steward_changes_of(t)] == ["confirmed"]
    return [(AuditTag.STEWARD_CHANGE_CONFIRMED, person(t.app, STEWARD_A), change["id"])]


def web_confirm_memberships(t: Trial) -> list[Expected]:
    browser = t.browser(STEWARD_A)
    t.gov.consent()
    ids = pending_membership_ids(t)
    t.start()
    response = post_form(browser, f"/web/communities/{NATION_A}/memberships/confirm", {"memberships": ids})
    assert response.status_code == 302
    assert pending_membership_ids(t) == []
    return [(AuditTag.MEMBERSHIPS_CONFIRMED, person(t.app, STEWARD_A), NATION_A)]


def web_disable_community_client(t: Trial) -> list[Expected]:
    browser = t.browser(STEWARD_A)
    client_id, _ = t.world.credentials(COUNCIL_A, "community:read")
    t.gov.steward()
    t.start()
    response = post_form(browser, f"/web/communities/{NATION_A}/clients/{client_id}/disable", {})
    assert response.status_code == 302
    listed = assert_ok(t.client.get(f"/v1/communities/{NATION_A}/clients", headers=t.gov.steward()))
    assert [c["disabled_at"] is not None for c in listed["clients"] if c["client_id"] == client_id] == [True]
    return [(AuditTag.CLIENT_DISABLED, person(t.app, STEWARD_A), client_id)]


def web_grant_approval(t: Trial) -> list[Expected]:
    browser = t.browser(STEWARD_A)
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    t.gov.steward()  # the token the check reads the approvals with
    t.start()
    response = post_form(
        browser,
        f"/web/communities/{NATION_A}/approvals",
        {"requester": RESEARCHER, "purposes": "research", "data_categories": "health", "valid_until": until},
    )
    assert response.status_code == 200 and t.new_entries() == []  # step 1 of 2 writes nothing
    response = post_form(
        browser,
        f"/web/communities/{NATION_A}/approvals",
        {
            "requester": RESEARCHER,
            "purposes": "research",
            "data_categories": "health",
            "valid_until": until,
            "step": "confirm",
            "notes": "Agreement 12",
        },
    )
    assert response.status_code == 302
    [approval] = approvals_of(t)
    return [(AuditTag.APPROVAL_GRANTED, person(t.app, STEWARD_A), approval["id"])]


def web_revoke_approval(t: Trial) -> list[Expected]:
    approval = t.gov.approval()
    browser = t.browser(STEWARD_A)
    t.start()
    response = post_form(
        browser, f"/web/communities/{NATION_A}/approvals/{approval['id']}/revoke", {"reason": "ended"}
    )
    assert response.status_code == 302
    return [(AuditTag.APPROVAL_REVOKED, person(t.app, STEWARD_A), approval["id"])]


def web_retire_rule(t: Trial) -> list[Expected]:
    rule = t.gov.rule()
    browser = t.browser(STEWARD_A)
    t.start()
    response = post_form(
        browser, f"/web/communities/{NATION_A}/rules/{rule['id']}/retire", {"reason": "Agreement signed"}
    )
    assert response.status_code == 302
    return [(AuditTag.RULE_RETIRED, person(t.app, STEWARD_A), rule["id"])]


def web_new_rule(t: Trial) -> list[Expected]:
    browser = t.browser(STEWARD_A)
    form = {
        "effect": "deny",
        "purposes": "research",
        "data_categories": "health",
        "requesters": "*",
        "reason": "No health research",
    }
    path = f"/web/communities/{NATION_A}/rules/new"
    t.gov.steward()  # the token the check reads the rules with
    t.start()
    preview = post_form(browser, path, {**form, "action": "preview"})
    assert t.new_entries() == [] and not changed_tables(t.before, state(t.app))  # a preview changes nothing
    match = re.search(r'name="previewed" value="([0-9a-f]+)"', preview.get_data(as_text=True))
    assert match, preview.get_data(as_text=True)
    saved = post_form(browser, path, {**form, "action": "save", "previewed": match.group(1)})
    assert saved.status_code == 302
    [rule] = assert_ok(t.client.get(f"/v1/communities/{NATION_A}/rules", headers=t.gov.steward()))["rules"]
    return [(AuditTag.RULE_CREATED, person(t.app, STEWARD_A), rule["id"])]


CONSENT_FORM = {
    "system": MEMBER["system"],
    "value": MEMBER["value"],
    "communities": NATION_A,
    "purposes": ["service-delivery"],
    "data_categories": ["housing"],
    "recipients": [PROVIDER],
    "method": "verbal",
    "obtained_by": "Wes",
    "setting": "office",
}


def web_record_consent(t: Trial) -> list[Expected]:
    browser = t.browser(WORKER)
    t.start()
    response = post_form(browser, "/web/intake/consents/new", CONSENT_FORM)
    assert response.status_code == 302, response.get_data(as_text=True)
    consent_id = response.headers["Location"].split("/")[-2]
    return [(AuditTag.CONSENT_RECORDED, person(t.app, WORKER), consent_id)]


def web_withdraw_consent(t: Trial) -> list[Expected]:
    browser = t.browser(WORKER)
    recorded = post_form(browser, "/web/intake/consents/new", CONSENT_FORM)
    consent_id = recorded.headers["Location"].split("/")[-2]
    t.start()
    response = post_form(browser, f"/web/intake/consents/{consent_id}/withdraw", {"reason": "asked to"})
    assert response.status_code == 302
    return [(AuditTag.CONSENT_REVOKED, person(t.app, WORKER), consent_id)]


def web_new_access_code(t: Trial) -> list[Expected]:
    browser = t.browser(WORKER)
    recorded = post_form(browser, "/web/intake/consents/new", CONSENT_FORM)
    consent_id = recorded.headers["Location"].split("/")[-2]
    t.start()
    assert post_form(browser, f"/web/intake/consents/{consent_id}/access-code", {}).status_code == 302
    return [(AuditTag.ACCESS_CODE_ROTATED, person(t.app, WORKER), consent_id)]


# -- the person's own view (/me), with the access code of their receipt ------------------------------


def code_id_of(t: Trial, consent_id: str) -> str:
    with services_of(t.app).sessions() as session:
        return str(
            session.scalars(
                select(models.PersonAccessCode.id).where(models.PersonAccessCode.consent_id == consent_id)
            ).one()
        )


def me_form(browser: FlaskClient, code: str) -> Any:
    page = browser.get("/me", follow_redirects=True).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return browser.post("/me", data={"code": code, "csrf_token": token.group(1)})


def person_sign_in(t: Trial) -> list[Expected]:
    consent = t.gov.consent()
    t.secrets.append(consent["access_code"])
    code_id = code_id_of(t, consent["id"])
    t.start()
    browser = t.app.test_client()
    assert me_form(browser, consent["access_code"]).status_code == 303
    t.browsers["person"] = browser
    return [(AuditTag.ACCESS_CODE_USED, (PROVIDER, f"person-code:{code_id}"), code_id)]


def person_withdraw(t: Trial) -> list[Expected]:
    consent = t.gov.consent()
    t.secrets.append(consent["access_code"])
    code_id = code_id_of(t, consent["id"])
    browser = t.app.test_client()
    assert me_form(browser, consent["access_code"]).status_code == 303
    t.browsers["person"] = browser
    page = browser.get(f"/me/consents/{consent['id']}/withdraw").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    t.start()
    response = browser.post(
        f"/me/consents/{consent['id']}/withdraw", data={"reason": "asked to", "csrf_token": token.group(1)}
    )
    assert response.status_code == 303
    [entry] = t.new_entries()
    assert said(entry)["by"] == "person"
    return [(AuditTag.CONSENT_REVOKED, (PROVIDER, f"person-code:{code_id}"), consent["id"])]


def person_sign_out(t: Trial) -> list[Expected]:
    consent = t.gov.consent()
    t.secrets.append(consent["access_code"])
    browser = t.app.test_client()
    assert me_form(browser, consent["access_code"]).status_code == 303
    t.browsers["person"] = browser
    page = browser.get("/me/consents").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    t.start()
    assert browser.post("/me/sign-out", data={"csrf_token": token.group(1)}).status_code == 303
    assert browser.get("/me/consents").status_code == 302  # closed
    return []  # the session lives only in the cookie: nothing is written


def web_find(t: Trial) -> list[Expected]:
    browser = t.browser(WORKER)
    post_form(browser, "/web/intake/consents/new", CONSENT_FORM)
    t.start()
    assert post_form(browser, "/web/intake/find", MEMBER).status_code == 200
    return [(AuditTag.SUBJECT_REPORTED, person(t.app, WORKER), reported(t))]  # a look is a report


def web_access_report(t: Trial) -> list[Expected]:
    browser = t.browser(WORKER)
    post_form(browser, "/web/intake/consents/new", CONSENT_FORM)
    t.start()
    assert post_form(browser, "/web/intake/access-report", MEMBER).status_code == 200
    return [(AuditTag.SUBJECT_REPORTED, person(t.app, WORKER), reported(t))]


def web_language(t: Trial) -> list[Expected]:
    browser = t.browser(WORKER)
    t.start()
    assert post_form(browser, "/web/language", {"language": "fr"}).status_code == 302
    assert user_of(t.app, WORKER).language == "fr"
    [entry] = t.new_entries()
    assert said(entry) == {"change": "language", "previous_language": "en", "language": "fr"}
    return [(AuditTag.USER_CHANGED, person(t.app, WORKER), user_of(t.app, WORKER).id)]


def web_sign_in(t: Trial) -> list[Expected]:
    browser = t.app.test_client()
    t.start()
    assert sign_in(browser, STEWARD_A).status_code == 302
    t.browsers["fresh"] = browser
    return [(AuditTag.USER_SIGNED_IN, person(t.app, STEWARD_A), user_of(t.app, STEWARD_A).id)]


def web_sign_out(t: Trial) -> list[Expected]:
    browser = t.browser(STEWARD_A)
    t.start()
    assert post_form(browser, "/web/sign-out", {}).status_code == 302
    assert browser.get("/web/").status_code == 302  # signed out
    return [(AuditTag.USER_SIGNED_OUT, person(t.app, STEWARD_A), user_of(t.app, STEWARD_A).id)]


ROUTES: dict[tuple[str, str], Case] = {
    ("POST", "/oauth/token"): token,
    ("POST", "/v1/audit/verify"): verify_with_checkpoints,
    ("POST", "/v1/authorize"): authorize,
    ("POST", "/v1/authorize/batch"): authorize_batch,
    ("POST", "/v1/clients"): create_client,
    ("POST", "/v1/clients/<client_id>/disable"): disable_client,
    ("POST", "/v1/communities"): create_community,
    ("PATCH", "/v1/communities/<community_id>"): change_community,
    ("POST", "/v1/communities/<community_id>/clients/<client_id>/disable"): disable_community_client,
    ("POST", "/v1/communities/<community_id>/clients"): create_community_client,
    ("POST", "/v1/communities/<community_id>/steward-changes"): propose_steward_change,
    ("POST", "/v1/communities/<community_id>/steward-changes/<change_id>/confirm"): confirm_steward_change,
    ("POST", "/v1/communities/<community_id>/memberships/confirm"): confirm_memberships,
    ("POST", "/v1/consents/<consent_id>/memberships/<community_id>/confirm"): person_confirms_membership,
    ("POST", "/v1/consents/<consent_id>/memberships/<community_id>/end"): person_ends_membership,
    ("POST", "/v1/communities/<community_id>/approvals"): grant_approval,
    ("POST", "/v1/communities/<community_id>/agreements"): create_agreement,
    ("POST", "/v1/communities/<community_id>/agreements/<agreement_id>/renew"): renew_agreement,
    ("PUT", "/v1/communities/<community_id>/agreements/<agreement_id>/document"): attach_agreement_document,
    ("POST", "/v1/communities/<community_id>/agreements/<agreement_id>/duties"): add_duty,
    ("POST", "/v1/communities/<community_id>/agreements/<agreement_id>/duties/<duty_id>/met"): mark_duty_met,
    ("POST", "/v1/communities/<community_id>/approvals/<approval_id>/revoke"): revoke_approval,
    ("POST", "/v1/communities/<community_id>/rules"): create_rule,
    ("POST", "/v1/access-requests"): file_access_request,
    ("POST", "/v1/access-requests/<request_id>/withdraw"): withdraw_access_request,
    ("POST", "/v1/access-requests/<request_id>/decision"): grant_access_request,
    ("DELETE", "/v1/communities/<community_id>/rules/<rule_id>"): retire_rule,
    ("POST", "/v1/consents"): record_consent,
    ("POST", "/v1/consents/import"): import_consents,
    ("POST", "/v1/consents/<consent_id>/amend"): amend_consent,
    ("POST", "/v1/consents/<consent_id>/revoke"): revoke_consent,
    ("POST", "/v1/consents/<consent_id>/access-code"): new_access_code,
    ("POST", "/v1/organizations"): create_organization,
    ("POST", "/v1/receipts/verify"): verify_receipt,
    ("POST", "/v1/subjects/access-report"): access_report,
    ("POST", "/v1/subjects/rekey"): rekey_subject,
    ("POST", "/v1/subject-systems"): register_subject_system,
    ("POST", "/v1/webhooks"): register_webhook,
    ("DELETE", "/v1/webhooks/<webhook_id>"): delete_webhook,
    ("POST", "/web/communities/<community_id>/approvals"): web_grant_approval,
    ("POST", "/web/communities/<community_id>/steward-changes"): web_propose_steward_change,
    (
        "POST",
        "/web/communities/<community_id>/steward-changes/<change_id>/confirm",
    ): web_confirm_steward_change,
    ("POST", "/web/communities/<community_id>/memberships/confirm"): web_confirm_memberships,
    ("POST", "/web/communities/<community_id>/clients/<client_id>/disable"): web_disable_community_client,
    (
        "POST",
        "/web/communities/<community_id>/access-requests/<request_id>/decision",
    ): web_decide_access_request,
    (
        "POST",
        "/web/communities/<community_id>/agreements/<agreement_id>/duties/<duty_id>/met",
    ): web_mark_duty_met,
    ("POST", "/web/communities/<community_id>/approvals/<approval_id>/revoke"): web_revoke_approval,
    ("POST", "/web/communities/<community_id>/rules/<rule_id>/retire"): web_retire_rule,
    ("POST", "/web/communities/<community_id>/rules/new"): web_new_rule,
    ("POST", "/web/intake/access-report"): web_access_report,
    ("POST", "/web/intake/consents/<consent_id>/withdraw"): web_withdraw_consent,
    ("POST", "/web/intake/consents/new"): web_record_consent,
    ("POST", "/web/intake/consents/<consent_id>/access-code"): web_new_access_code,
    ("POST", "/me"): person_sign_in,
    ("POST", "/me/consents/<consent_id>/withdraw"): person_withdraw,
    ("POST", "/me/sign-out"): person_sign_out,
    ("POST", "/web/intake/find"): web_find,
    ("POST", "/web/language"): web_language,
    ("POST", "/web/sign-in"): web_sign_in,
    ("POST", "/web/sign-out"): web_sign_out,
}
SAFE = {"GET", "HEAD", "OPTIONS"}
# The routes that only read, though not with GET (a body that must not be in a URL, or a token
# issued without being stored): no entry, and nothing written.
READS = {
    ("POST", "/oauth/token"),
    ("POST", "/v1/audit/verify"),
    ("POST", "/v1/receipts/verify"),
    ("POST", "/me/sign-out"),  # the person's session is only in their cookie
}


def test_the_table_covers_every_route(app: Flask) -> None:
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules() for method in rule.methods - SAFE}
    assert routes == set(ROUTES), (
        f"routes without a case: {sorted(routes - set(ROUTES))}; cases without a route: "
        f"{sorted(set(ROUTES) - routes)}"
    )


@pytest.mark.parametrize("route", [pytest.param(r, id=f"{r[0]} {r[1]}") for r in ROUTES])
def test_each_change_through_a_route_is_exactly_its_audit_entries(
    trial: Trial, route: tuple[str, str]
) -> None:
    expected = ROUTES[route](trial)
    entries = trial.new_entries()
    assert summary(entries) == expected
    assert (expected == []) == (route in READS)
    if not expected:
        assert not changed_tables(trial.before, state(trial.app)), "a route without entries wrote something"
    text = json.dumps([[e.tag, e.object_id, e.payload] for e in entries], ensure_ascii=False)
    for secret in [*trial.secrets, *trial.session_cookies()]:
        assert secret not in text
    assert_verifies(trial.app)


@pytest.mark.parametrize("route", [pytest.param(r, id=f"{r[0]} {r[1]}") for r in ROUTES])
def test_no_route_changes_anything_when_its_entry_cannot_be_written(
    trial: Trial, route: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry is written in the transaction of the change: when the append fails, the change
    is rolled back with it (the answer is an error; no row is left behind)."""
    trial.break_appends = monkeypatch
    with contextlib.suppress(AssertionError, RuntimeError):  # the case's checks of success fail here
        ROUTES[route](trial)
    assert trial.started, "the case failed before it got to the change"
    assert (trial.appends_tried > 0) == (route not in READS)
    assert trial.new_entries() == [] and not changed_tables(trial.before, state(trial.app))
    monkeypatch.undo()
    assert_verifies(trial.app)


# -- signing in: what a failure records, and what it does not write ---------------------------


class TestSignInAttempts:
    def attempt(
        self, t: Trial, email: str, password: str, status: int = 401
    ) -> tuple[list[AuditEntry], set[str]]:
        """Sign in through the form; the new entries (checked for what they must not hold) and the
        tables that changed besides the chain."""
        t.start()
        assert sign_in(t.app.test_client(), email, password).status_code == status
        entries = t.new_entries()
        text = json.dumps([e.payload for e in entries])
        assert password not in text and (email not in text)
        assert_verifies(t.app)
        return entries, changed_tables(t.before, state(t.app))

    def test_a_wrong_password_names_the_account_and_only_counts_the_failure(self, trial: Trial) -> None:
        before = user_of(trial.app, STEWARD_A)
        entries, changed = self.attempt(trial, STEWARD_A, WRONG)
        assert summary(entries) == [(AuditTag.USER_SIGN_IN_FAILED, OPERATOR, before.id)]
        assert said(entries[0]) == {"reason": "wrong-password", "failures": 1}
        assert changed == {"user_account"}
        after = user_of(trial.app, STEWARD_A)
        assert after.failed_sign_ins == 1
        assert {**vars(after), "failed_sign_ins": 0, "_sa_instance_state": None} == {
            **vars(before),
            "_sa_instance_state": None,
        }

    def test_an_unknown_account_is_recorded_without_what_was_typed(self, trial: Trial) -> None:
        # What is typed as an email may be a password in the wrong field, or someone else's address.
        typed = "hunter2-my-real-password@example.org"
        entries, changed = self.attempt(trial, typed, WRONG)
        assert summary(entries) == [(AuditTag.USER_SIGN_IN_FAILED, OPERATOR, None)]
        assert said(entries[0]) == {"reason": "unknown-account"}
        assert changed == set()

    def test_the_lockout_is_its_own_entry_and_attempts_while_locked_change_nothing(
        self, trial: Trial
    ) -> None:
        threshold = services_of(trial.app).settings["WEB_LOCKOUT_THRESHOLD"]
        user_id = user_of(trial.app, STEWARD_A).id
        for _ in range(threshold - 1):
            self.attempt(trial, STEWARD_A, WRONG)
        entries, _ = self.attempt(trial, STEWARD_A, WRONG)
        assert summary(entries) == [
            (AuditTag.USER_SIGN_IN_FAILED, OPERATOR, user_id),
            (AuditTag.USER_LOCKED, OPERATOR, user_id),
        ]
        assert said(entries[1])["failures"] == threshold
        locked_until = user_of(trial.app, STEWARD_A).locked_until
        assert locked_until is not None and said(entries[1])["until"] == locked_until.isoformat()

        for password in (WRONG, PASSWORD):  # even the right password, while locked
            entries, changed = self.attempt(trial, STEWARD_A, password)
            assert summary(entries) == [(AuditTag.USER_SIGN_IN_FAILED, OPERATOR, user_id)]
            assert said(entries[0]) == {"reason": "locked"}
            assert changed == set()

    def test_a_disabled_account_is_named_with_its_reason(self, trial: Trial) -> None:
        users.disable(services_of(trial.app), email=STEWARD_A, now=datetime.now(UTC))
        entries, changed = self.attempt(trial, STEWARD_A, PASSWORD)
        user_id = user_of(trial.app, STEWARD_A).id
        assert summary(entries) == [(AuditTag.USER_SIGN_IN_FAILED, OPERATOR, user_id)]
        assert said(entries[0]) == {"reason": "disabled"}
        assert changed == set()

    def test_a_success_after_failures_is_one_entry_that_clears_the_count(self, trial: Trial) -> None:
        self.attempt(trial, STEWARD_A, WRONG)
        entries, changed = self.attempt(trial, STEWARD_A, PASSWORD, 302)
        assert summary(entries) == [
            (AuditTag.USER_SIGNED_IN, person(trial.app, STEWARD_A), user_of(trial.app, STEWARD_A).id)
        ]
        assert changed == {"user_account"} and user_of(trial.app, STEWARD_A).failed_sign_ins == 0


# -- no change without its entry ---------------------------------------------------------------


def _failing_append(*args: Any, **kwargs: Any) -> int:
    raise RuntimeError("the audit chain cannot be written")


ACCOUNT_CHANGES: dict[str, Callable[[Services, str], Any]] = {
    "sign-in": lambda s, uid: users.sign_in(s, email=STEWARD_A, password=PASSWORD, now=datetime.now(UTC)),
    "failed sign-in": lambda s, uid: users.sign_in(s, email=STEWARD_A, password=WRONG, now=datetime.now(UTC)),
    "sign-out": lambda s, uid: users.sign_out(s, user_id=uid, now=datetime.now(UTC)),
    "language": lambda s, uid: users.set_language(s, user_id=uid, language="fr", now=datetime.now(UTC)),
    "password": lambda s, uid: users.set_password(
        s, email=STEWARD_A, password="another long passphrase", now=datetime.now(UTC)
    ),
    "roles": lambda s, uid: users.set_roles(s, email=STEWARD_A, roles=["intake"], now=datetime.now(UTC)),
    "unlock": lambda s, uid: users.unlock(s, email=STEWARD_A, now=datetime.now(UTC)),
    "disable": lambda s, uid: users.disable(s, email=STEWARD_A, now=datetime.now(UTC)),
    "create": lambda s, uid: users.create_user(
        s,
        caller=None,
        email="new@nation-a.example",
        name="New",
        organization=COUNCIL_A,
        roles=["steward"],
        password=PASSWORD,
        language="en",
        now=datetime.now(UTC),
    ),
}


@pytest.mark.parametrize("change", ACCOUNT_CHANGES)
def test_when_the_entry_cannot_be_written_the_account_does_not_change(
    trial: Trial, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    services = services_of(trial.app)
    with pytest.raises(users.SignInRefused):  # a count of failures the change would clear
        users.sign_in(services, email=STEWARD_A, password=WRONG, now=datetime.now(UTC))
    trial.start()
    monkeypatch.setattr(services, "append_audit", _failing_append)
    with pytest.raises(RuntimeError, match="cannot be written"):
        ACCOUNT_CHANGES[change](services, user_of(trial.app, STEWARD_A).id)
    assert trial.new_entries() == [] and not changed_tables(trial.before, state(trial.app))


def test_choosing_the_language_one_has_changes_nothing_and_records_nothing(trial: Trial) -> None:
    browser = trial.browser(WORKER)
    trial.start()
    assert post_form(browser, "/web/language", {"language": "en"}).status_code == 302
    assert trial.new_entries() == [] and not changed_tables(trial.before, state(trial.app))


def lock(app: Flask, email: str) -> None:
    """Lock the account the way it happens: wrong passwords up to the threshold."""
    services = services_of(app)
    for _ in range(services.settings["WEB_LOCKOUT_THRESHOLD"]):
        with pytest.raises(users.SignInRefused):
            users.sign_in(services, email=email, password=WRONG, now=datetime.now(UTC))
    assert user_of(app, email).locked_until is not None


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli_trial(trial: Trial, monkeypatch: pytest.MonkeyPatch) -> Trial:
    for name, value in CHEAP_PASSWORDS.items():
        monkeypatch.setenv(f"CONSENT_{name}", str(value))
    return trial


class TestCommandLine:
    def run(self, t: Trial, app_config: dict[str, Any], *args: str) -> Any:
        t.start()
        result = run_cli(app_config, *args)
        assert result.exit_code == 0, result.output
        return result

    def test_admin_create_client(self, cli_trial: Trial, app_config: dict[str, Any]) -> None:
        result = self.run(
            cli_trial,
            app_config,
            "admin",
            "create-client",
            "--name",
            "ops",
            "--organization",
            "ops-team",
            "--json",
        )
        created = cli_json(result)
        entries = cli_trial.new_entries()
        assert summary(entries) == [
            (AuditTag.ORGANIZATION_CREATED, OPERATOR, "ops-team"),
            (AuditTag.CLIENT_CREATED, OPERATOR, created["client_id"]),
        ]
        assert created["client_secret"] not in json.dumps([e.payload for e in entries])
        assert_verifies(cli_trial.app)

    def test_consents_import(self, cli_trial: Trial, app_config: dict[str, Any], tmp_path: Path) -> None:
        path = tmp_path / "consents.csv"
        path.write_text(
            "subject_system,subject_value,purposes,data_categories,recipients,communities,"
            "evidence_method,evidence_obtained_by\n"
            f"{MEMBER['system']},{MEMBER['value']},research,housing,{GOVERNMENT},{NATION_A},written,w-1\n",
            encoding="utf-8",
        )
        result = self.run(cli_trial, app_config, "consents", "import", str(path), "--org", PROVIDER, "--json")
        [consent_id] = cli_json(result)["consent_ids"]
        operator = (PROVIDER, "cli")
        assert summary(cli_trial.new_entries()) == [(AuditTag.CONSENT_RECORDED, operator, consent_id)]
        assert_verifies(cli_trial.app)

    def test_consents_export_reads_only(self, cli_trial: Trial, app_config: dict[str, Any]) -> None:
        cli_trial.gov.consent()
        result = self.run(cli_trial, app_config, "consents", "export", "--org", PROVIDER, "--format", "fhir")
        assert json.loads(result.stdout)["resourceType"] == "Bundle"
        assert cli_trial.new_entries() == [] and not changed_tables(cli_trial.before, state(cli_trial.app))

    def test_subject_systems_add(self, cli_trial: Trial, app_config: dict[str, Any]) -> None:
        result = self.run(
            cli_trial,
            app_config,
            "subject-systems",
            "add",
            "urn:ca-on:health-card",
            "--shared",
            "--case-insensitive",
        )
        assert result.exit_code == 0, result.output
        assert summary(cli_trial.new_entries()) == [(AuditTag.SUBJECT_SYSTEM_REGISTERED, OPERATOR, None)]
        assert_verifies(cli_trial.app)

    def test_users_create(self, cli_trial: Trial, app_config: dict[str, Any]) -> None:
        result = self.run(
            cli_trial,
            app_config,
            "users",
            "create",
            "--email",
            "Nia@Nation-A.example",
            "--name",
            "Nia",
            "--organization",
            COUNCIL_A,
            "--role",
            "steward",
            "--password",
            PASSWORD,
            "--json",
        )
        created = cli_json(result)
        entries = cli_trial.new_entries()
        assert summary(entries) == [(AuditTag.USER_CREATED, OPERATOR, created["id"])]
        assert PASSWORD not in json.dumps(said(entries[0]))
        assert_verifies(cli_trial.app)

    @pytest.mark.parametrize(
        ("args", "payload"),
        [
            (["set-password", "--password", "a brand new passphrase"], {"change": "password"}),
            (
                ["set-roles", "--role", "intake", "--role", "steward"],
                {
                    "change": "roles",
                    "previous_roles": ["community:read", "rules:write"],
                    "roles": ["community:read", "consents:read", "consents:write", "rules:write"],
                },
            ),
            (["unlock"], {"change": "unlocked"}),
            (["disable"], {"change": "disabled"}),
        ],
        ids=["set-password", "set-roles", "unlock", "disable"],
    )
    def test_users_changes(
        self, cli_trial: Trial, app_config: dict[str, Any], args: list[str], payload: dict[str, Any]
    ) -> None:
        lock(cli_trial.app, STEWARD_A)  # so that unlocking changes something
        self.run(cli_trial, app_config, "users", args[0], "--email", STEWARD_A, *args[1:])
        entries = cli_trial.new_entries()
        assert summary(entries) == [(AuditTag.USER_CHANGED, OPERATOR, user_of(cli_trial.app, STEWARD_A).id)]
        assert said(entries[0]) == payload
        assert changed_tables(cli_trial.before, state(cli_trial.app)) == {"user_account"}
        assert_verifies(cli_trial.app)

    def test_users_link_provider(self, cli_trial: Trial, app_config: dict[str, Any]) -> None:
        issuer = "https://idp.example/realms/consent"
        result = self.run(
            cli_trial, app_config, "users", "link-provider", STEWARD_A, "--issuer", issuer, "--subject", "s-1"
        )
        assert result.exit_code == 0, result.output
        entries = cli_trial.new_entries()
        assert summary(entries) == [(AuditTag.USER_CHANGED, OPERATOR, user_of(cli_trial.app, STEWARD_A).id)]
        assert said(entries[0]) == {"change": "provider-linked", "issuer": issuer}
        assert changed_tables(cli_trial.before, state(cli_trial.app)) == {"user_account"}
        assert_verifies(cli_trial.app)

    @pytest.mark.parametrize(
        "args",
        [["unlock"], ["set-roles", "--role", "steward"], ["disable"]],
        ids=["unlock", "set-roles", "disable"],
    )
    def test_a_command_that_changes_nothing_records_nothing(
        self, cli_trial: Trial, app_config: dict[str, Any], args: list[str]
    ) -> None:
        if args[0] == "disable":
            users.disable(services_of(cli_trial.app), email=STEWARD_A, now=datetime.now(UTC))
        self.run(cli_trial, app_config, "users", args[0], "--email", STEWARD_A, *args[1:])
        assert cli_trial.new_entries() == [] and not changed_tables(cli_trial.before, state(cli_trial.app))

    def test_a_role_change_takes_effect_on_the_next_page(
        self, cli_trial: Trial, app_config: dict[str, Any]
    ) -> None:
        browser = cli_trial.browser(STEWARD_A)
        assert browser.get("/web/intake/consents/new").status_code == 403
        self.run(cli_trial, app_config, "users", "set-roles", "--email", STEWARD_A, "--role", "intake")
        assert browser.get("/web/intake/consents/new").status_code == 200

    def test_an_unknown_role_is_refused_naming_it_and_nothing_is_written(
        self, cli_trial: Trial, app_config: dict[str, Any]
    ) -> None:
        cli_trial.start()
        result = run_cli(app_config, "users", "set-roles", "--email", STEWARD_A, "--role", "admin")
        assert result.exit_code == 1 and "unknown role: admin" in result.output
        assert cli_trial.new_entries() == [] and not changed_tables(cli_trial.before, state(cli_trial.app))

    def test_access_requests_expire(
        self, cli_trial: Trial, app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each pending request past its deadline is recorded refused, one operator entry each;
        a second run finds nothing to record."""
        filed = filed_request(cli_trial)

        class Later(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return datetime.now(tz) + timedelta(days=31)

        monkeypatch.setattr(cli, "datetime", Later)
        self.run(cli_trial, app_config, "access-requests", "expire")
        [entry] = cli_trial.new_entries()
        assert summary([entry]) == [(AuditTag.ACCESS_REQUEST_EXPIRED, OPERATOR, filed["id"])]
        assert said(entry)["refusal_reason"] == "no decision by deadline"
        self.run(cli_trial, app_config, "access-requests", "expire")
        assert cli_trial.new_entries() == []
        assert_verifies(cli_trial.app)

    def test_the_demo(self, cli_trial: Trial, app_config: dict[str, Any]) -> None:
        """Every row the demo adds comes with its entry (it goes through the same use cases)."""
        counted = {
            "organization": AuditTag.ORGANIZATION_CREATED,
            "oauth_client": AuditTag.CLIENT_CREATED,
            "community": AuditTag.COMMUNITY_CREATED,
            "consent": AuditTag.CONSENT_RECORDED,
            "community_rule": AuditTag.RULE_CREATED,
        }
        self.run(cli_trial, app_config, "demo")
        after = state(cli_trial.app)
        tags = [e.tag for e in cli_trial.new_entries()]
        assert tags
        for table, tag in counted.items():
            assert len(after[table]) - len(cli_trial.before[table]) == tags.count(tag), table
        assert_verifies(cli_trial.app)


class TestKeyRotation:
    @pytest.fixture
    def app_config(self, app_config: dict[str, Any]) -> dict[str, Any]:
        return {**app_config, "SIGNING_KEYS": ""}  # keys generated and kept in the instance folder

    def key_file(self, app_config: dict[str, Any]) -> Path:
        return Path(app_config["INSTANCE_PATH"]) / SIGNING_KEYS_FILE

    def test_a_rotation_is_an_entry_naming_the_new_key_and_those_kept(
        self, trial: Trial, app_config: dict[str, Any]
    ) -> None:
        old_kid = json.loads(self.key_file(app_config).read_text())["keys"][0]["kid"]
        trial.start()
        result = run_cli(app_config, "keys", "rotate")
        assert result.exit_code == 0, result.output
        new_kid = result.stdout.strip()
        entries = trial.new_entries()
        assert summary(entries) == [(AuditTag.KEY_ROTATED, OPERATOR, new_kid)]
        assert said(entries[0]) == {"kept": [old_kid]}
        kids = [k["kid"] for k in json.loads(self.key_file(app_config).read_text())["keys"]]
        assert kids == [new_kid, old_kid]
        assert '"d"' not in json.dumps(said(entries[0]))  # no private key material
        assert_verifies(trial.app)

    def test_no_rotation_without_its_entry(
        self, trial: Trial, app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = self.key_file(app_config).read_text()
        services = services_of(trial.app)
        trial.start()
        monkeypatch.setattr(services, "append_audit", _failing_append)
        with pytest.raises(RuntimeError):
            key_rotation.rotate(services, instance=Path(app_config["INSTANCE_PATH"]), now=datetime.now(UTC))
        assert self.key_file(app_config).read_text() == before and trial.new_entries() == []

    def test_a_failure_after_the_file_is_replaced_puts_the_old_file_back(
        self, trial: Trial, app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = self.key_file(app_config).read_text()
        apply = StagedRotation.apply

        def apply_then_fail(staged: StagedRotation) -> None:
            apply(staged)
            assert self.key_file(app_config).read_text() != before
            raise OSError("the commit did not happen")

        monkeypatch.setattr(StagedRotation, "apply", apply_then_fail)
        trial.start()
        with pytest.raises(OSError, match="commit"):
            key_rotation.rotate(
                services_of(trial.app), instance=Path(app_config["INSTANCE_PATH"]), now=datetime.now(UTC)
            )
        assert self.key_file(app_config).read_text() == before and trial.new_entries() == []

    def test_keys_from_the_configuration_are_not_rotated_in_the_instance_folder(
        self, trial: Trial, app_config: dict[str, Any]
    ) -> None:
        from conftest import SIGNING_KEYS

        trial.start()
        result = run_cli({**app_config, "SIGNING_KEYS": SIGNING_KEYS}, "keys", "rotate")
        assert result.exit_code == 1 and "CONSENT_SIGNING_KEYS" in result.output
        assert trial.new_entries() == []


# -- every command of the command line is accounted for -----------------------------------------

# Each command that changes something, and the test that performs it and finds its entries.
COMMAND_CHANGES: dict[str, Callable[..., None]] = {
    "admin create-client": TestCommandLine.test_admin_create_client,
    "users create": TestCommandLine.test_users_create,
    "users set-password": TestCommandLine.test_users_changes,
    "users set-roles": TestCommandLine.test_users_changes,
    "users unlock": TestCommandLine.test_users_changes,
    "users disable": TestCommandLine.test_users_changes,
    "users link-provider": TestCommandLine.test_users_link_provider,
    "demo": TestCommandLine.test_the_demo,
    "subject-systems add": TestCommandLine.test_subject_systems_add,
    "access-requests expire": TestCommandLine.test_access_requests_expire,
    "consents import": TestCommandLine.test_consents_import,
    "consents export": TestCommandLine.test_consents_export_reads_only,
    "keys rotate": TestKeyRotation.test_a_rotation_is_an_entry_naming_the_new_key_and_those_kept,
}
# Commands that only read (on a database already at the latest migration, ``db upgrade`` too).
COMMAND_READS = [
    ["users", "list"],
    ["subject-systems", "list"],
    ["consents", "reviews"],
    ["audit", "verify"],
    ["audit", "checkpoint"],
    ["admin", "hint"],
    ["db", "upgrade"],
]
COMMANDS_NOT_RUN = {
    "serve": "runs the service: what it changes is what the routes above change",
    # The deliverer writes only the outbox's own bookkeeping (claims, delivery_attempt rows,
    # delivered_at, expiry notices), no state the audit chain binds; the events themselves were
    # written, and audited, with their changes (tests/test_webhooks.py runs it, kill -9 included).
    "events deliver": "delivers change events: outbox bookkeeping only, not audited",
}


def _commands(group: click.Group, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        names |= _commands(command, f"{path} ") if isinstance(command, click.Group) else {path}
    return names


def test_every_command_is_accounted_for() -> None:
    listed = {*COMMAND_CHANGES, *(" ".join(args) for args in COMMAND_READS), *COMMANDS_NOT_RUN}
    assert _commands(cli.main) == listed


@pytest.mark.parametrize("args", COMMAND_READS, ids=[" ".join(args) for args in COMMAND_READS])
def test_a_command_that_reads_records_and_writes_nothing(
    cli_trial: Trial, app_config: dict[str, Any], args: list[str]
) -> None:
    cli_trial.gov.consent()
    cli_trial.start()
    result = run_cli(app_config, *args)
    assert result.exit_code == 0, result.output
    assert cli_trial.new_entries() == [] and not changed_tables(cli_trial.before, state(cli_trial.app))
