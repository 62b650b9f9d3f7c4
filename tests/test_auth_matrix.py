"""Authentication and authorization matrices (issue 6 item 6), over every operation of the app.

The operations are read from the app's ``url_map``, so a new endpoint is in the 401 matrix the
day it is added, and the scope table below must name it (``test_the_table_covers_every_operation``)
before the suite passes again:

* every ``/v1`` operation x every bad token (none, malformed, wrong signature, expired, wrong
  audience or issuer, ``alg: none``, a receipt instead of an access token, unknown or disabled
  client) -> 401 in the contract's body, nothing written; the same call with a good token
  succeeds (the control);
* every operation x a token with each single scope -> the operation's success status for the
  scopes the table allows, 403 and nothing written for every other;
* every operation on another organization's or community's object -> no success; and for
  consents and decisions, "not yours" answers exactly like "does not exist" (same status,
  same body), so nobody learns that a person has a consent on file elsewhere.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from api_helpers import CONSENT, SUBJECT, assert_error, json_of, table_counts
from conftest import Seed, Snapshot, seeded
from flask import Flask
from joserfc.jwk import KeySet
from security_helpers import (
    ADMIN_ORG,
    AGREEMENT_DUTY,
    ALL_SCOPES,
    COUNCIL_A,
    COUNCIL_B,
    GOVERNMENT,
    LEGACY_SUBJECT,
    OUTSIDER,
    OVERSEER,
    PROVIDER,
    RESEARCHER,
    access_request_body,
    holdable,
    seed_access_request,
    seed_world,
)

from consent_service.auth.tokens import ACCESS_TOKEN_TYP
from consent_service.container import EXTENSION
from consent_service.core import consent_files
from consent_service.core.keys import SigningKeys, new_signing_key
from consent_service.core.receipts import RECEIPT_TYP
from consent_service.errors import ValidationFailed
from consent_service.services import organizations

ANY_TOKEN = None  # an operation any valid token may call
TERMS = {key: CONSENT[key] for key in ("purposes", "data_categories", "recipients", "evidence")}

# Every rule outside /v1, and why it needs no bearer token. A new one fails the completeness
# test until it is listed here (or is one of the web pages, which use a signed-in session).
PUBLIC = {
    "/oauth/token": "the token endpoint (client authentication)",
    "/.well-known/jwks.json": "public keys",
    "/openapi.json": "the API description",
    "/docs": "API documentation page",
    "/swagger": "API documentation page (redirects to /docs)",
    "/docs/assets/<name>": "the documentation page's scripts and styles",
    "/healthz": "liveness",
    "/readyz": "readiness",
    "/static/<path:filename>": "static files",
    "/": "redirect to the web pages",
    # The person's own view: opened with the access code of their receipt, no token or account
    # (tests/test_person_view.py: every page but the form sends a visitor without a code to it).
    "/me": "the person's access code form",
    "/me/consents": "the person's own view (after their access code)",
    "/me/consents/<consent_id>/withdraw": "the person withdraws a consent (after their access code)",
    "/me/sign-out": "the person closes their page",
}
# Rules outside /v1 behind the bearer check, and the one scope that may call them
# (tests/test_metrics.py: no token 401, a bad token 401, another scope 403).
BEARER_OUTSIDE_V1 = {"/metrics": "metrics:read"}
WEB_PREFIX = "/web/"  # pages for people, behind a signed-in session (tests/test_web*.py)
# The pages one reaches before signing in; the two OpenID Connect ones (404 without an issuer)
# start and finish a sign-in at the provider (tests/test_oidc.py).
WEB_OPEN = {"/web/", "/web/sign-in", "/web/language", "/web/sign-in/oidc", "/web/oidc/callback"}


@dataclass(frozen=True)
class Op:
    """How to call one operation so that it succeeds, and who may."""

    scopes: frozenset[str] | None  # ANY_TOKEN: any valid token
    org: str  # the organization whose client succeeds
    status: int = 200
    body: Callable[[dict[str, Any]], Any] | None = None
    query: dict[str, Any] | None = None
    # The answer to the right scope from the wrong organization or community: None when the
    # operation does not depend on the caller's organization.
    stranger: tuple[str, int, str] | None = None  # (organization, status, error code)
    # Scopes the scope check lets through whose answer for ``org`` is still a refusal (the
    # object's own check: a steward view of a decision, a client of another organization).
    refused: dict[str, tuple[int, str]] | None = None
    # Path parameters other than the shared ones (``Context``), by name -> context key.
    params: dict[str, str] | None = None
    # A body that is not JSON: (media type, bytes), e.g. an agreement's document.
    raw: tuple[str, bytes] | None = None


def scopes(*names: str) -> frozenset[str]:
    return frozenset(names)


NOT_FOUND_FOR_OUTSIDER = (OUTSIDER, 404, "not_found")
NOT_STEWARD = (COUNCIL_B, 403, "forbidden")
STEWARD_READS = scopes("community:read", "rules:write")  # a community's own business, to its stewards


OPERATIONS: dict[tuple[str, str], Op] = {
    ("POST", "/v1/organizations"): Op(
        scopes("admin"), ADMIN_ORG, 201, lambda c: {"id": "new-org", "name": "New", "type": "other"}
    ),
    ("POST", "/v1/clients"): Op(
        scopes("admin", "rules:write"),
        ADMIN_ORG,
        201,
        lambda c: {"organization": PROVIDER, "name": "x", "scopes": ["authorize"]},
        refused={"rules:write": (403, "forbidden")},
    ),  # a steward, for its own only
    ("POST", "/v1/clients/<client_id>/disable"): Op(scopes("admin"), ADMIN_ORG),
    ("POST", "/v1/communities"): Op(
        scopes("admin"), ADMIN_ORG, 201, lambda c: {"id": "nation-c", "name": "C", "stewards": [COUNCIL_A]}
    ),
    ("POST", "/v1/consents"): Op(scopes("consents:write"), PROVIDER, 201, lambda c: CONSENT),
    ("GET", "/v1/consents/<consent_id>"): Op(
        scopes("consents:read", "consents:write", "admin"), PROVIDER, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("GET", "/v1/consents/<consent_id>/history"): Op(
        scopes("consents:read", "consents:write", "admin"), PROVIDER, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("GET", "/v1/consents/<consent_id>/fhir"): Op(
        scopes("consents:read", "consents:write", "admin"), PROVIDER, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("GET", "/v1/consents/<consent_id>/receipt.html"): Op(
        scopes("consents:read", "consents:write"), PROVIDER, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("POST", "/v1/consents/<consent_id>/amend"): Op(
        scopes("consents:write"),
        PROVIDER,
        body=lambda c: {**TERMS, "version": 1},
        stranger=NOT_FOUND_FOR_OUTSIDER,
    ),
    ("POST", "/v1/consents/import"): Op(
        scopes("consents:write"),
        PROVIDER,
        201,
        lambda c: consent_files.fhir_bundle(
            [consent_files.fhir_consent(CONSENT, issuer="urn:consent-service")]
        ),
    ),
    ("GET", "/v1/consents/export"): Op(scopes("consents:read", "consents:write", "admin"), PROVIDER),
    ("POST", "/v1/consents/<consent_id>/access-code"): Op(
        scopes("consents:write"), PROVIDER, 201, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("POST", "/v1/consents/<consent_id>/revoke"): Op(
        scopes("consents:write"),
        PROVIDER,
        body=lambda c: {"reason": "withdrawn"},
        stranger=NOT_FOUND_FOR_OUTSIDER,
    ),
    ("POST", "/v1/authorize"): Op(
        scopes("authorize"),
        GOVERNMENT,
        body=lambda c: {"subject": SUBJECT, "purpose": "service-planning", "data_categories": ["housing"]},
    ),
    ("POST", "/v1/authorize/batch"): Op(
        scopes("authorize"),
        GOVERNMENT,
        body=lambda c: {"subjects": [SUBJECT], "purpose": "service-planning", "data_categories": ["housing"]},
    ),
    ("GET", "/v1/decisions/<decision_id>"): Op(
        scopes("authorize", "audit:read", "community:read", "rules:write"),
        GOVERNMENT,
        stranger=NOT_FOUND_FOR_OUTSIDER,  # gla is no steward: its steward scopes see no decision
        refused={"community:read": (404, "not_found"), "rules:write": (404, "not_found")},
    ),
    ("GET", "/v1/vocabulary"): Op(ANY_TOKEN, GOVERNMENT),
    ("POST", "/v1/receipts/verify"): Op(ANY_TOKEN, GOVERNMENT, body=lambda c: {"receipt": c["receipt"]}),
    ("POST", "/v1/subjects/access-report"): Op(
        scopes("consents:read"),
        PROVIDER,
        body=lambda c: {"subject": SUBJECT},
        stranger=NOT_FOUND_FOR_OUTSIDER,
    ),
    ("POST", "/v1/subjects/rekey"): Op(
        scopes("consents:write"),
        PROVIDER,
        body=lambda c: {"subject": LEGACY_SUBJECT},
        stranger=NOT_FOUND_FOR_OUTSIDER,
    ),
    ("POST", "/v1/subject-systems"): Op(
        scopes("admin"), ADMIN_ORG, 201, lambda c: {"system": "urn:ca-on:health-card", "shared": True}
    ),
    ("GET", "/v1/subject-systems"): Op(ANY_TOKEN, GOVERNMENT),
    ("GET", "/v1/audit/verify"): Op(scopes("audit:read"), OVERSEER),
    ("POST", "/v1/audit/verify"): Op(scopes("audit:read"), OVERSEER, body=lambda c: {"checkpoints": []}),
    ("GET", "/v1/audit/checkpoint"): Op(scopes("audit:read"), OVERSEER),
    ("GET", "/v1/audit/entries"): Op(scopes("audit:read"), OVERSEER),
    ("GET", "/v1/communities/<community_id>"): Op(
        scopes("community:read", "rules:write"), COUNCIL_A, stranger=NOT_STEWARD
    ),
    ("PATCH", "/v1/communities/<community_id>"): Op(
        scopes("rules:write"), COUNCIL_A, body=lambda c: {"show_community_id": True}, stranger=NOT_STEWARD
    ),
    ("GET", "/v1/communities/<community_id>/clients"): Op(
        scopes("community:read", "rules:write"), COUNCIL_A, stranger=NOT_STEWARD
    ),
    ("POST", "/v1/communities/<community_id>/clients/<client_id>/disable"): Op(
        scopes("rules:write"), COUNCIL_A, stranger=NOT_STEWARD, params={"client_id": "council_client_id"}
    ),
    ("POST", "/v1/communities/<community_id>/clients"): Op(
        scopes("rules:write"),
        COUNCIL_A,
        201,
        lambda c: {"name": "council laptop", "scopes": ["community:read"]},
        stranger=NOT_STEWARD,
    ),
    ("GET", "/v1/communities/<community_id>/steward-changes"): Op(
        STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD
    ),
    ("POST", "/v1/communities/<community_id>/steward-changes"): Op(
        scopes("rules:write"),
        COUNCIL_A,
        201,
        lambda c: {"action": "add", "organization": RESEARCHER},
        stranger=NOT_STEWARD,
    ),
    # confirmed by another client of the council than the one that proposed it (seed_world)
    ("POST", "/v1/communities/<community_id>/steward-changes/<change_id>/confirm"): Op(
        scopes("rules:write"), COUNCIL_A, stranger=NOT_STEWARD
    ),
    ("GET", "/v1/communities/<community_id>/memberships"): Op(STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD),
    ("POST", "/v1/communities/<community_id>/memberships/confirm"): Op(
        scopes("rules:write"),
        COUNCIL_A,
        body=lambda c: {"memberships": [c["membership_id"]]},
        stranger=NOT_STEWARD,
    ),
    ("GET", "/v1/consents/<consent_id>/memberships"): Op(
        scopes("consents:read", "consents:write"), PROVIDER, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("POST", "/v1/consents/<consent_id>/memberships/<community_id>/confirm"): Op(
        scopes("consents:write"), PROVIDER, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("POST", "/v1/consents/<consent_id>/memberships/<community_id>/end"): Op(
        scopes("consents:write"), PROVIDER, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("GET", "/v1/communities/<community_id>/rules"): Op(
        scopes("community:read", "rules:write"), COUNCIL_A, stranger=NOT_STEWARD
    ),
    ("POST", "/v1/communities/<community_id>/rules"): Op(
        scopes("rules:write"),
        COUNCIL_A,
        201,
        lambda c: {
            "effect": "deny",
            "purposes": ["commercial"],
            "data_categories": ["*"],
            "requesters": ["*"],
            "reason": "no commercial use",
        },
        stranger=NOT_STEWARD,
    ),
    ("DELETE", "/v1/communities/<community_id>/rules/<rule_id>"): Op(
        scopes("rules:write"), COUNCIL_A, body=lambda c: {"reason": "superseded"}, stranger=NOT_STEWARD
    ),
    ("GET", "/v1/communities/<community_id>/approvals"): Op(STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD),
    ("POST", "/v1/communities/<community_id>/approvals"): Op(
        scopes("rules:write"),
        COUNCIL_A,
        201,
        lambda c: {"requester": RESEARCHER, "purposes": ["research"], "data_categories": ["housing"]},
        stranger=NOT_STEWARD,
    ),
    ("POST", "/v1/communities/<community_id>/approvals/<approval_id>/revoke"): Op(
        scopes("rules:write"), COUNCIL_A, body=lambda c: {"reason": "ended"}, stranger=NOT_STEWARD
    ),
    ("GET", "/v1/communities/<community_id>/agreements"): Op(STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD),
    ("POST", "/v1/communities/<community_id>/agreements"): Op(
        scopes("rules:write"),
        COUNCIL_A,
        201,
        lambda c: {
            "title": "Another agreement",
            "parties": [RESEARCHER],
            "legal_authority": "Council resolution",
            "review_at": "2099-06-01T00:00:00+00:00",
        },
        stranger=NOT_STEWARD,
    ),
    ("GET", "/v1/communities/<community_id>/agreements/<agreement_id>"): Op(
        STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD
    ),
    ("POST", "/v1/communities/<community_id>/agreements/<agreement_id>/renew"): Op(
        scopes("rules:write"),
        COUNCIL_A,
        body=lambda c: {"review_at": "2099-12-01T00:00:00+00:00"},
        stranger=NOT_STEWARD,
    ),
    ("GET", "/v1/communities/<community_id>/agreements/<agreement_id>/document"): Op(
        STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD
    ),
    ("PUT", "/v1/communities/<community_id>/agreements/<agreement_id>/document"): Op(
        scopes("rules:write"), COUNCIL_A, stranger=NOT_STEWARD, raw=("text/plain", b"The agreement, signed.")
    ),
    ("POST", "/v1/communities/<community_id>/agreements/<agreement_id>/duties"): Op(
        scopes("rules:write"), COUNCIL_A, 201, lambda c: AGREEMENT_DUTY, stranger=NOT_STEWARD
    ),
    ("POST", "/v1/communities/<community_id>/agreements/<agreement_id>/duties/<duty_id>/met"): Op(
        scopes("rules:write"), COUNCIL_A, body=lambda c: {"note": "received"}, stranger=NOT_STEWARD
    ),
    ("GET", "/v1/communities/<community_id>/decisions"): Op(STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD),
    ("GET", "/v1/communities/<community_id>/protected-grants"): Op(
        STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD
    ),
    ("GET", "/v1/communities/<community_id>/access-requests"): Op(
        STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD
    ),
    # a requester that was refused asks the community; one told no rule cannot name it (400)
    ("POST", "/v1/access-requests"): Op(
        scopes("authorize"),
        GOVERNMENT,
        201,
        access_request_body,
        stranger=(OUTSIDER, 400, "validation_error"),
    ),
    ("GET", "/v1/access-requests"): Op(scopes("authorize"), GOVERNMENT),  # its own, another's empty
    ("GET", "/v1/access-requests/<request_id>"): Op(
        scopes("authorize", "community:read", "rules:write"),
        GOVERNMENT,
        stranger=NOT_FOUND_FOR_OUTSIDER,  # its steward scopes: gla stewards no community
        refused={"community:read": (404, "not_found"), "rules:write": (404, "not_found")},
    ),
    ("POST", "/v1/access-requests/<request_id>/withdraw"): Op(
        scopes("authorize"), GOVERNMENT, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("POST", "/v1/access-requests/<request_id>/decision"): Op(
        scopes("rules:write"),
        COUNCIL_A,
        body=lambda c: {"decision": "refuse", "note": "not now"},
        stranger=(COUNCIL_B, 404, "not_found"),  # another community's request is none of its business
    ),
    # each organization reads its own list (another organization gets its own, empty)
    ("GET", "/v1/consents/reviews"): Op(scopes("consents:read", "consents:write", "admin"), PROVIDER),
    # Change events: an organization's own webhooks and backlog; a community's backlog to its stewards.
    ("POST", "/v1/webhooks"): Op(
        scopes("webhooks:write"),
        GOVERNMENT,
        201,
        lambda c: {"url": "http://127.0.0.1:9/other", "kinds": ["consent.revoked"]},
    ),
    ("GET", "/v1/webhooks"): Op(scopes("webhooks:write"), GOVERNMENT),
    ("GET", "/v1/webhooks/backlog"): Op(scopes("webhooks:write"), GOVERNMENT),
    ("DELETE", "/v1/webhooks/<webhook_id>"): Op(
        scopes("webhooks:write"), GOVERNMENT, 204, stranger=NOT_FOUND_FOR_OUTSIDER
    ),
    ("GET", "/v1/communities/<community_id>/events/backlog"): Op(
        STEWARD_READS, COUNCIL_A, stranger=NOT_STEWARD
    ),
}


def api_operations(app: Flask) -> list[tuple[str, str]]:
    """Every (method, rule) of the app under /v1."""
    return sorted(
        {
            (method, rule.rule)
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/v1/")
            for method in rule.methods - {"HEAD", "OPTIONS"}
        }
    )


def operation_ids() -> list[Any]:
    return [pytest.param(key, id=f"{key[0]} {key[1]}") for key in OPERATIONS]


# -- a world in which every operation can succeed ------------------------------------------


class Context(dict):
    """Path parameters and values the bodies need, plus tokens by (organization, scopes)."""

    def __init__(self, app: Flask, client: Any, world: Any) -> None:
        super().__init__()
        self.app, self.client, self.world = app, client, world
        self.services = app.extensions[EXTENSION]

    def headers(self, org: str, *scope_names: str) -> dict[str, str]:
        return self.world.headers(org, *scope_names)

    def path(self, rule: str, **overrides: str) -> str:
        values = {**self, **overrides}
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(values[m.group(1)]), rule)

    def call(self, method: str, rule: str, headers: dict[str, str], op: Op | None = None, **overrides: str):
        op = op or OPERATIONS.get((method, rule)) or Op(ANY_TOKEN, GOVERNMENT)
        overrides = {**{name: self[key] for name, key in (op.params or {}).items()}, **overrides}
        kwargs: dict[str, Any] = {"headers": headers}
        if op.raw is not None:
            kwargs["content_type"], kwargs["data"] = op.raw
        elif op.body is not None:
            kwargs["json"] = op.body(self)
        elif method in {"POST", "PUT", "PATCH"}:
            kwargs["json"] = {}
        if op.query:
            kwargs["query_string"] = op.query
        return self.client.open(self.path(rule, **overrides), method=method, **kwargs)


@pytest.fixture(scope="module")
def seeds(request, database_backend) -> Iterator[Callable[[], Seed]]:
    """``seeds()``: the world of ``seed_world`` for this module and backend (its ids in ``built``)."""
    with seeded(
        request,
        database_backend,
        "auth-matrix",
        lambda world: seed_access_request(world, seed_world(world.client, world)),
    ) as current:
        yield current


@pytest.fixture
def seed(seeds) -> Seed:
    return seeds()


@pytest.fixture
def database_start(request) -> Snapshot | None:
    """The tests of the matrix (those using ``ctx``) start from a copy of the seeded world."""
    return request.getfixturevalue("seed").snapshot if "ctx" in request.fixturenames else None


@pytest.fixture
def ctx(app, client, world, seed) -> Context:
    """A world in which every operation can succeed: a copy of the seeded database, its tokens."""
    world.adopt(seed.tokens)
    c = Context(app, client, world)
    c.update(seed.built)
    return c


def assert_success(response, op: Op, label: str) -> None:
    assert response.status_code == op.status, (
        label,
        response.status_code,
        response.get_data(as_text=True)[:300],
    )


# -- the table is complete --------------------------------------------------------------------


def test_the_table_covers_every_operation(app):
    """A new /v1 endpoint must say here which scopes may call it (and how it succeeds)."""
    assert set(api_operations(app)) == set(OPERATIONS)


def test_every_other_rule_is_known_to_be_public(app):
    unknown = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if not rule.rule.startswith(("/v1/", WEB_PREFIX))
        and rule.rule not in PUBLIC
        and rule.rule not in BEARER_OUTSIDE_V1
    ]
    assert unknown == []


def test_every_bad_token_is_401_outside_v1_and_the_right_scope_succeeds(client, world):
    for path, scope in BEARER_OUTSIDE_V1.items():
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer a.b.c"}).status_code == 401
        for other in holdable(ADMIN_ORG):
            status = client.get(path, headers=world.headers(ADMIN_ORG, other)).status_code
            assert status == (200 if other == scope else 403), (path, other, status)


def test_no_web_page_answers_without_a_session(app, client):
    """Each web page, without signing in, sends the visitor away (or refuses): never a 2xx."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(WEB_PREFIX) or rule.rule in WEB_OPEN:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(uuid.uuid4()), rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, data={"x": "1"})
            assert not 200 <= response.status_code < 300, (method, rule.rule, response.status_code)


def test_every_v1_operation_is_behind_the_bearer_check(app):
    """Only ApiBlueprint checks the token before the body is read; a plain Blueprint under /v1 would
    not. (That its client is still active is checked by each use case in its own transaction: the
    disabled-client token of ``test_every_bad_token_is_401_on_every_operation`` holds every route.)"""
    from consent_service.views.common import ApiBlueprint, _token_first

    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            name = rule.endpoint.rsplit(".", 1)[0]
            blueprint = app.blueprints[name]
            assert isinstance(blueprint, ApiBlueprint), rule.rule
            assert _token_first in app.before_request_funcs.get(name, []), rule.rule


def test_a_disabled_client_is_refused_by_authorize_before_anything_is_decided_or_written(app, client, world):
    """Authorize checks the client inside its decision snapshot: 401, no decision, no audit entry."""
    from consent_service.storage.models import AuditEntry, Decision

    world.org("univ", "research")
    client_id, secret = world.credentials("univ", "authorize")
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "authorize"},
        auth=(client_id, secret),
    ).get_json()["access_token"]
    organizations.disable_client(world.services, caller=None, client_id=client_id, now=datetime.now(UTC))
    with world.services.sessions() as session:
        before = (session.query(Decision).count(), session.query(AuditEntry).count())
    subject = {"system": "urn:outreach-org:client", "value": "C-1"}
    asked = (("/v1/authorize", {"subject": subject}), ("/v1/authorize/batch", {"subjects": [subject]}))
    for path, body in asked:
        response = client.post(
            path,
            headers={"Authorization": f"Bearer {token}"},
            json={**body, "purpose": "research", "data_categories": ["health"]},
        )
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "unauthorized"
    with world.services.sessions() as session:
        assert (session.query(Decision).count(), session.query(AuditEntry).count()) == before


# -- every operation x every bad token: 401 ----------------------------------------------------


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class Tokens:
    """Tokens of ``org`` carrying every scope: one good, and one bad of each kind."""

    def __init__(self, ctx: Context, org: str) -> None:
        self.ctx, self.org = ctx, org
        services = ctx.services
        self.keys: SigningKeys = services.keys
        self.settings = services.settings
        self.scopes = holdable(org)
        self.client_id, _ = ctx.world.credentials(org, *self.scopes)
        disabled_id, _ = ctx.world.credentials(org, *self.scopes)
        self.disabled_token = self.sign(self.claims(client_id=disabled_id))
        organizations.disable_client(services, caller=None, client_id=disabled_id, now=datetime.now(UTC))

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.settings["TOKEN_ISSUER"],
            "aud": self.settings["TOKEN_AUDIENCE"],
            "sub": self.client_id,
            "client_id": self.client_id,
            "org": self.org,
            "scope": " ".join(self.scopes),
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
        }
        claims.update(changes)
        return claims

    def sign(
        self, claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYP, keys: SigningKeys | None = None
    ) -> str:
        return (keys or self.keys).sign(claims, typ=typ)

    def good(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sign(self.claims())}"}

    def bad(self) -> dict[str, dict[str, str]]:
        past = int(time.time()) - 60
        other_keys = SigningKeys(KeySet([new_signing_key()]))
        header, _, signature = self.sign(self.claims()).split(".")

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        return {
            "none": {},
            "empty-bearer": {"Authorization": "Bearer "},
            "malformed": bearer("not.a.jwt"),
            "garbage": bearer("x" * 500),
            "basic-scheme": {"Authorization": "Basic " + base64.b64encode(b"cl_x:secret").decode()},
            "wrong-signature": bearer(self.sign(self.claims(), keys=other_keys)),
            "tampered-payload": bearer(f"{header}.{b64url(self.claims(org='admin'))}.{signature}"),
            "expired": bearer(self.sign(self.claims(iat=past - 900, exp=past))),
            "wrong-audience": bearer(self.sign(self.claims(aud="urn:someone-else"))),
            "wrong-issuer": bearer(self.sign(self.claims(iss="urn:evil"))),
            "alg-none": bearer(
                f"{b64url({'alg': 'none', 'typ': ACCESS_TOKEN_TYP})}.{b64url(self.claims())}."
            ),
            "receipt-typ": bearer(self.sign(self.claims(), typ=RECEIPT_TYP)),
            "unknown-client": bearer(self.sign(self.claims(client_id="cl_nobody", sub="cl_nobody"))),
            "disabled-client": bearer(self.disabled_token),
        }


@pytest.mark.parametrize("key", operation_ids())
def test_every_bad_token_is_401_on_every_operation(ctx, key):
    method, rule = key
    op = OPERATIONS[key]
    tokens = Tokens(ctx, op.org)
    before = table_counts(ctx.app)
    for label, headers in tokens.bad().items():
        response = ctx.call(method, rule, headers)
        error = assert_error(response, 401, "unauthorized")
        assert "permit" not in json.dumps(error), label
    assert table_counts(ctx.app) == before
    # The control: the same call with a good token of the same client succeeds.
    assert_success(ctx.call(method, rule, tokens.good()), op, "good token")


def test_every_bad_token_is_401_on_the_bearer_routes_outside_v1(ctx):
    """/metrics: each bad token (a disabled client's too) is a 401; a good one of the same client succeeds."""
    tokens = Tokens(ctx, ADMIN_ORG)
    for path in BEARER_OUTSIDE_V1:
        for label, headers in tokens.bad().items():
            error = assert_error(ctx.call("GET", path, headers), 401, "unauthorized")
            assert "consent_" not in json.dumps(error), label  # no metric in a refusal
        assert ctx.call("GET", path, tokens.good()).status_code == 200


# -- every operation x every single scope -------------------------------------------------------


@pytest.mark.parametrize("key", operation_ids())
def test_each_scope_alone_gets_exactly_what_the_table_says(ctx, key):
    method, rule = key
    op = OPERATIONS[key]
    allowed = set(ALL_SCOPES) if op.scopes is ANY_TOKEN else set(op.scopes)
    refused = op.refused or {}
    unholdable = set(ALL_SCOPES) - set(holdable(op.org))
    for scope in sorted(unholdable):  # no client of op.org can hold it (audit:read): 400, nothing written
        before = table_counts(ctx.app)
        with pytest.raises(ValidationFailed):
            ctx.world.credentials(op.org, scope)
        assert table_counts(ctx.app) == before, scope
    for scope in sorted(set(ALL_SCOPES) - unholdable - allowed):  # refusals first: they must change nothing
        headers = ctx.headers(op.org, scope)
        before = table_counts(ctx.app)
        response = ctx.call(method, rule, headers)
        assert_error(response, 403, "forbidden")
        assert table_counts(ctx.app) == before, scope
    for scope in sorted(set(refused) - unholdable):
        headers = ctx.headers(op.org, scope)
        before = table_counts(ctx.app)
        assert_error(ctx.call(method, rule, headers), *refused[scope])
        assert table_counts(ctx.app) == before, scope
    for scope in sorted(allowed - unholdable - set(refused)):
        response = ctx.call(method, rule, ctx.headers(op.org, scope))
        assert_success(response, op, scope)
        if (
            op.status == 201
            or method == "DELETE"
            or rule.endswith(("/revoke", "/amend", "/disable", "/confirm", "/end"))
        ):
            break  # a write succeeds once; the other allowed scopes were shown by the reads


# -- every operation x the wrong organization or community ----------------------------------------


STRANGER_OPERATIONS = [
    pytest.param(key, id=f"{key[0]} {key[1]}") for key, op in OPERATIONS.items() if op.stranger is not None
]


@pytest.mark.parametrize("key", STRANGER_OPERATIONS)
def test_the_wrong_organization_with_the_right_scopes_gets_nothing(ctx, key):
    method, rule = key
    op = OPERATIONS[key]
    assert op.stranger is not None and op.scopes is not None
    org, status, code = op.stranger
    headers = {scope: ctx.headers(org, scope) for scope in sorted(op.scopes - {"admin", "audit:read"})}
    before = table_counts(ctx.app)
    for scope in headers:  # admin and audit:read see everything, by design
        assert_error(ctx.call(method, rule, headers[scope]), status, code)
    assert table_counts(ctx.app) == before


class TestAcrossCommunities:
    """A steward of Nation B, naming its own community, cannot reach Nation A's rules or approvals."""

    def test_retiring_another_communitys_rule_is_404_and_the_rule_stays(self, ctx):
        headers = ctx.headers(COUNCIL_B, "rules:write")
        ctx.headers(COUNCIL_A, "rules:write")
        before = table_counts(ctx.app)
        response = ctx.call(
            "DELETE", "/v1/communities/<community_id>/rules/<rule_id>", headers, community_id="nation-b"
        )
        assert_error(response, 404, "not_found")
        assert table_counts(ctx.app) == before
        rules = ctx.client.get(
            "/v1/communities/nation-a/rules", headers=ctx.headers(COUNCIL_A, "rules:write")
        )
        assert [r["id"] for r in rules.get_json()["rules"]] == [ctx["rule_id"]]

    def test_revoking_another_communitys_approval_is_404(self, ctx):
        headers = ctx.headers(COUNCIL_B, "rules:write")
        before = table_counts(ctx.app)
        response = ctx.call(
            "POST",
            "/v1/communities/<community_id>/approvals/<approval_id>/revoke",
            headers,
            community_id="nation-b",
        )
        assert_error(response, 404, "not_found")
        assert table_counts(ctx.app) == before

    def test_another_communitys_rule_looks_like_no_rule(self, ctx):
        headers = ctx.headers(COUNCIL_B, "rules:write")
        rule = "/v1/communities/<community_id>/rules/<rule_id>"
        theirs = ctx.call("DELETE", rule, headers, community_id="nation-b")
        missing = ctx.call("DELETE", rule, headers, community_id="nation-b", rule_id=str(uuid.uuid4()))
        assert (theirs.status_code, json_of(theirs)) == (missing.status_code, json_of(missing))


# -- "not yours" is "does not exist" ---------------------------------------------------------------


def private_object_operations(app: Flask) -> list[tuple[str, str]]:
    return [
        (method, rule)
        for method, rule in api_operations(app)
        if rule.startswith(("/v1/consents/<consent_id>", "/v1/decisions/<decision_id>"))
    ]


def test_not_yours_answers_exactly_like_does_not_exist(ctx):
    operations = private_object_operations(ctx.app)
    assert (
        len(operations) >= 8
    )  # consent: read, history, fhir, receipt page, amend, revoke, access code; decision
    for scope in holdable(OUTSIDER):
        ctx.headers(OUTSIDER, scope)
    before = table_counts(ctx.app)
    for method, rule in operations:
        op = OPERATIONS[(method, rule)]
        assert op.scopes is not None
        param = "consent_id" if "<consent_id>" in rule else "decision_id"
        for scope in sorted(op.scopes - {"admin", "audit:read"}):
            headers = ctx.headers(OUTSIDER, scope)
            theirs = ctx.call(method, rule, headers)
            missing = ctx.call(method, rule, headers, **{param: str(uuid.uuid4())})
            label = f"{method} {rule} with {scope}"
            assert theirs.status_code == missing.status_code == 404, label
            assert theirs.get_data() == missing.get_data(), label
            assert theirs.headers.get("Content-Type") == missing.headers.get("Content-Type"), label
    assert table_counts(ctx.app) == before
