"""Privacy of logs, tables and answers (issue 6 item 8), with planted canaries.

A full scenario (organizations and clients made through the API, consents recorded, amended,
read, exported and revoked, decisions asked and looked up, community rules, approvals and
decision views, the audit log read, receipts checked, and every kind of error) runs with
high-entropy canaries as subject identifiers, evidence notes, client secrets, access tokens,
a mistyped secret and the pseudonymisation key. Then every log line (every logger at DEBUG),
every row of every table and every answer is searched for each canary: raw, URL-encoded,
JSON-escaped, HTML-escaped and base64 (standard and URL-safe, at every alignment), and inside
every JWS/JWT segment and base64 run, decoded.

Where each canary may legitimately be:

* a subject identifier: nowhere stored or logged (the service keeps an HMAC pseudonym); in
  answers only to the organization that recorded the person's consent;
* evidence notes: in the ``consent_version`` table (the evidence of the version that carries
  them) and in answers to the recording organization about that consent; nowhere else (not the
  audit log, not receipts, not decisions, not logs);
* a client secret: only in the one answer that created the client;
* an access token: only in the token endpoint's answer that issued it;
* a mistyped secret and the pseudonymisation key: nowhere.

Each search is shown to fire on a planted hit first (``TestTheSearchFires``).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import secrets
import traceback
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from api_helpers import CONSENT, engine_of
from conftest import basic_auth
from security_helpers import COUNCIL_A, GOVERNMENT, NATION_A, OUTSIDER, PROVIDER, RESEARCHER
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from consent_service import create_app
from consent_service.container import EXTENSION
from consent_service.storage import models

# -- canaries and their encodings ------------------------------------------------------------------


def canary(kind: str) -> str:
    """High entropy, and characters that every encoding changes (space, slash, quotes, <, &, ü)."""
    return f"CANARY {kind} ü/<&>'\"+= {secrets.token_hex(12)}"


def _b64_cores(raw: bytes) -> set[str]:
    """Base64 of ``raw`` as it appears inside any longer base64 text, at each of the 3 alignments."""
    found = set()
    for skip in range(3):
        chunk = raw[skip:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 12:
            found.add(base64.b64encode(chunk).decode())
            found.add(base64.urlsafe_b64encode(chunk).decode())
    return found


def encodings(value: str) -> set[str]:
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        html.escape(value, quote=False),
        repr(value)[1:-1],
    }
    forms |= _b64_cores(value.encode())
    return {form for form in forms if form}


_B64_RUN = re.compile(r"[A-Za-z0-9_\-+/]{16,}={0,2}")


def decoded_views(text: str) -> Iterator[str]:
    """The text itself, URL-unquoted, and every base64/base64url run in it decoded."""
    yield text
    yield urllib.parse.unquote_plus(text)
    for run in _B64_RUN.findall(text):
        for piece in run.split("."):
            padded = piece + "=" * (-len(piece) % 4)
            for decode in (base64.urlsafe_b64decode, base64.b64decode):
                try:
                    yield decode(padded).decode("utf-8", "replace")
                except (ValueError, TypeError):
                    continue


def hits(value: str, text: str) -> bool:
    forms = encodings(value)
    return any(form in view for view in decoded_views(text) for form in forms)


# -- recording everything ---------------------------------------------------------------------------


@dataclass
class Answer:
    caller: str  # the organization that asked ("-" for none)
    method: str
    path: str
    status: int
    headers: dict[str, str]
    text: str


@dataclass
class Recorder:
    client: Any
    answers: list[Answer] = field(default_factory=list)

    def call(self, caller: str, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.open(path, method=method, **kwargs)
        self.answers.append(
            Answer(
                caller,
                method,
                path,
                response.status_code,
                dict(response.headers),
                response.get_data(as_text=True),
            )
        )
        return response


def all_tables_as_text(app) -> dict[str, str]:
    """Every row of every table, each value as text and (for JSON values) as JSON, by table."""
    out: dict[str, list[str]] = {}
    with engine_of(app).connect() as conn:
        for table in models.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    out.setdefault(table.name, []).append(str(value))
                    if isinstance(value, dict | list):
                        out[table.name].append(json.dumps(value, ensure_ascii=False))
                        out[table.name].append(json.dumps(value))
    return {name: "\n".join(values) for name, values in out.items()}


# -- the scenario ---------------------------------------------------------------------------------


@dataclass
class Canaries:
    subject: str = field(default_factory=lambda: canary("subject"))
    other_subject: str = field(default_factory=lambda: canary("subject2"))
    system: str = field(default_factory=lambda: "urn:canary:" + secrets.token_hex(10))
    notes: str = field(default_factory=lambda: canary("notes"))
    amended_notes: str = field(default_factory=lambda: canary("notes2"))
    mistyped_secret: str = field(default_factory=lambda: canary("typo"))
    secret_key: str = field(default_factory=lambda: canary("hmac-key"))
    client_secrets: dict[str, str] = field(default_factory=dict)  # client_id -> secret
    tokens: dict[str, str] = field(default_factory=dict)  # token -> the org it belongs to


def run_scenario(app, rec: Recorder, can: Canaries) -> dict[str, Any]:
    """Everything a deployment does in a day, and everything that goes wrong in one."""
    services = app.extensions[EXTENSION]
    from conftest import World

    bootstrap = World(app, app.test_client()).admin()  # the CLI's admin client
    admin = {"Authorization": bootstrap["Authorization"]}
    for org_id, org_type in (
        (PROVIDER, "service-provider"),
        (GOVERNMENT, "government"),
        (RESEARCHER, "research"),
        (OUTSIDER, "oversight"),  # holds audit:read
        (COUNCIL_A, "community-governance"),
    ):
        rec.call(
            "admin",
            "POST",
            "/v1/organizations",
            headers=admin,
            json={"id": org_id, "name": org_id, "type": org_type},
        )
    headers: dict[str, dict[str, str]] = {}
    scopes = {
        PROVIDER: ["consents:write", "consents:read"],
        GOVERNMENT: ["authorize"],
        RESEARCHER: ["authorize"],
        OUTSIDER: ["audit:read", "authorize", "consents:read"],
        COUNCIL_A: ["rules:write"],
    }
    for org_id, org_scopes in scopes.items():
        made = rec.call(
            "admin",
            "POST",
            "/v1/clients",
            headers=admin,
            json={"organization": org_id, "name": f"{org_id} system", "scopes": org_scopes},
        ).get_json()
        can.client_secrets[made["client_id"]] = made["client_secret"]
        issued = rec.call(
            org_id,
            "POST",
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic_auth(made["client_id"], made["client_secret"]),
        ).get_json()
        can.tokens[issued["access_token"]] = org_id
        headers[org_id] = {"Authorization": f"Bearer {issued['access_token']}"}
        rec.call(
            org_id,
            "POST",
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": made["client_id"],
                "client_secret": can.mistyped_secret,
            },
        )
    rec.call(
        "admin",
        "POST",
        "/v1/communities",
        headers=admin,
        json={"id": NATION_A, "name": "Nation A", "stewards": [COUNCIL_A]},
    )

    rec.call(
        "admin",
        "POST",
        "/v1/subject-systems",
        headers=admin,
        json={"system": can.system, "organization": PROVIDER},
    )
    subject = {"system": can.system, "value": can.subject}
    keyed = {**headers[PROVIDER], "Idempotency-Key": "k1"}
    consent = rec.call(
        PROVIDER,
        "POST",
        "/v1/consents",
        headers=keyed,
        json={
            **CONSENT,
            "subject": subject,
            "communities": [NATION_A],
            "recipients": [PROVIDER, GOVERNMENT, RESEARCHER],
            "purposes": ["service-planning", "research"],
            "evidence": {"method": "verbal", "obtained_by": "worker-17", "notes": can.notes},
        },
    ).get_json()
    cid = consent["id"]
    rec.call(
        PROVIDER,
        "POST",
        "/v1/consents",
        headers=headers[PROVIDER],
        json={
            **CONSENT,
            "subject": {"system": can.system, "value": can.other_subject},
            "evidence": {"method": "written", "obtained_by": "worker-17", "notes": can.notes},
        },
    )
    rec.call(
        PROVIDER,
        "POST",
        f"/v1/consents/{cid}/amend",
        headers=headers[PROVIDER],
        json={
            "purposes": ["service-planning", "research"],
            "data_categories": ["housing", "health"],
            "recipients": [PROVIDER, GOVERNMENT, RESEARCHER],
            "communities": [NATION_A],
            "version": 1,
            "evidence": {"method": "written", "obtained_by": "worker-17", "notes": can.amended_notes},
        },
    )
    steward = headers[COUNCIL_A]
    rule = rec.call(
        COUNCIL_A,
        "POST",
        f"/v1/communities/{NATION_A}/rules",
        headers=steward,
        json={
            "effect": "require_approval",
            "purposes": ["research"],
            "data_categories": ["health"],
            "requesters": ["*"],
            "obligations": {"aggregate_only": True, "min_cell_size": 10},
            "reason": "ask first",
        },
    ).get_json()
    decisions = []
    for org_id, purpose, categories in (
        (GOVERNMENT, "service-planning", ["housing"]),
        (RESEARCHER, "research", ["health"]),
        (OUTSIDER, "service-planning", ["housing"]),
    ):
        answer = rec.call(
            org_id,
            "POST",
            "/v1/authorize",
            headers=headers[org_id],
            json={"subject": subject, "purpose": purpose, "data_categories": categories},
        ).get_json()
        decisions.append((org_id, answer))
    approval = rec.call(
        COUNCIL_A,
        "POST",
        f"/v1/communities/{NATION_A}/approvals",
        headers=steward,
        json={"requester": RESEARCHER, "purposes": ["research"], "data_categories": ["health"]},
    ).get_json()
    rec.call(
        RESEARCHER,
        "POST",
        "/v1/authorize",
        headers=headers[RESEARCHER],
        json={"subject": subject, "purpose": "research", "data_categories": ["health"]},
    )
    rec.call(
        GOVERNMENT,
        "POST",
        "/v1/authorize/batch",
        headers=headers[GOVERNMENT],
        json={
            "subjects": [subject, {"system": can.system, "value": can.other_subject}],
            "purpose": "service-planning",
            "data_categories": ["housing"],
        },
    )
    for org_id, answer in decisions:
        rec.call(org_id, "GET", f"/v1/decisions/{answer['decision_id']}", headers=headers[org_id])
        rec.call(GOVERNMENT, "GET", f"/v1/decisions/{answer['decision_id']}", headers=headers[GOVERNMENT])
        rec.call(
            OUTSIDER,
            "POST",
            "/v1/receipts/verify",
            headers=headers[OUTSIDER],
            json={"receipt": answer["receipt"]},
        )
    rec.call(
        OUTSIDER,
        "POST",
        "/v1/receipts/verify",
        headers=headers[OUTSIDER],
        json={"receipt": consent["receipt"]},
    )
    for path in ("rules", "approvals", "decisions"):
        rec.call(COUNCIL_A, "GET", f"/v1/communities/{NATION_A}/{path}", headers=steward)
    rec.call(OUTSIDER, "GET", "/v1/audit/entries?limit=1000", headers=headers[OUTSIDER])
    rec.call(OUTSIDER, "GET", "/v1/audit/verify", headers=headers[OUTSIDER])
    rec.call(OUTSIDER, "GET", "/v1/audit/checkpoint", headers=headers[OUTSIDER])
    rec.call(GOVERNMENT, "GET", "/v1/vocabulary", headers=headers[GOVERNMENT])
    # The owner reads what it recorded, every way there is.
    for suffix in ("", "/history", "/fhir", "/receipt.html"):
        rec.call(PROVIDER, "GET", f"/v1/consents/{cid}{suffix}", headers=headers[PROVIDER])
    for query in ("", "?format=html"):
        rec.call(
            PROVIDER,
            "POST",
            f"/v1/subjects/access-report{query}",
            headers=headers[PROVIDER],
            json={"subject": subject},
        )
    # Others try to, and fail in every way.
    for suffix in ("", "/history", "/fhir", "/receipt.html"):
        rec.call(OUTSIDER, "GET", f"/v1/consents/{cid}{suffix}", headers=headers[OUTSIDER])
    rec.call(
        OUTSIDER, "POST", "/v1/subjects/access-report", headers=headers[OUTSIDER], json={"subject": subject}
    )
    rec.call(OUTSIDER, "POST", f"/v1/consents/{cid}/revoke", headers=headers[OUTSIDER], json={"reason": "x"})
    rec.call(
        GOVERNMENT,
        "POST",
        "/v1/authorize",
        headers=headers[GOVERNMENT],
        json={
            "subject": {**subject, "value": can.subject + "\n"},
            "purpose": "research",
            "data_categories": ["x"],
        },
    )
    rec.call(
        GOVERNMENT,
        "POST",
        "/v1/authorize",
        headers=headers[GOVERNMENT],
        json={
            "subject": subject,
            "purpose": "no-such-purpose",
            "data_categories": ["health"],
            "note": can.notes,
        },
    )
    rec.call(
        GOVERNMENT,
        "POST",
        "/v1/authorize",
        headers=headers[GOVERNMENT],
        data='{"subject": {"value": "' + can.subject + '"',
        content_type="application/json",
    )
    rec.call(
        PROVIDER,
        "POST",
        "/v1/consents",
        headers={**headers[PROVIDER], "Idempotency-Key": "k1"},
        json={
            **CONSENT,
            "subject": subject,
            "evidence": {"method": "verbal", "obtained_by": "w", "notes": can.notes},
        },
    )
    rec.call(
        "-",
        "POST",
        "/v1/authorize",
        json={"subject": subject, "purpose": "research", "data_categories": ["health"]},
    )
    rec.call(
        "-", "POST", "/v1/authorize", headers={"Authorization": f"Bearer {can.mistyped_secret}"}, json={}
    )
    rec.call(
        "-", "GET", "/v1/consents/" + urllib.parse.quote(can.subject, safe=""), headers=headers[OUTSIDER]
    )
    rec.call(
        PROVIDER,
        "POST",
        "/v1/consents",
        headers=headers[PROVIDER],
        data=json.dumps({"evidence": {"notes": can.notes}, "pad": "x" * app.config["MAX_CONTENT_LENGTH"]}),
        content_type="application/json",
    )
    # The store fails in the middle of a decision: a 503, and whatever the driver said stays inside.
    engine = engine_of(app)

    def fail(conn, cursor, statement, parameters, context, executemany):
        if "consent" in statement.lower():
            raise OperationalError(statement, parameters, Exception("server closed the connection"))

    event.listen(engine, "before_cursor_execute", fail)
    try:
        rec.call(
            GOVERNMENT,
            "POST",
            "/v1/authorize",
            headers=headers[GOVERNMENT],
            json={"subject": subject, "purpose": "service-planning", "data_categories": ["housing"]},
        )
        rec.call(PROVIDER, "POST", f"/v1/consents/{cid}/revoke", headers=headers[PROVIDER], json={})
    finally:
        event.remove(engine, "before_cursor_execute", fail)
    rec.call(
        PROVIDER,
        "POST",
        f"/v1/consents/{cid}/revoke",
        headers={**headers[PROVIDER], "Idempotency-Key": "r"},
        json={"reason": "the person asked"},
    )
    rec.call(
        GOVERNMENT,
        "POST",
        "/v1/authorize",
        headers=headers[GOVERNMENT],
        json={"subject": subject, "purpose": "service-planning", "data_categories": ["housing"]},
    )
    assert services is not None
    return {"consent_id": cid, "rule_id": rule["id"], "approval_id": approval["id"]}


@pytest.fixture
def every_logger_at_debug(caplog) -> Iterator[Any]:
    """Every logger there is (libraries set some above DEBUG themselves) at DEBUG, into caplog."""
    names = [
        "",
        "sqlalchemy",
        "sqlalchemy.engine",
        "sqlalchemy.pool",
        "authlib",
        "werkzeug",
        "flask_limiter",
        "consent_service",
        *list(logging.root.manager.loggerDict),
    ]
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def scenario(app_config, every_logger_at_debug):
    can = Canaries()
    app = create_app({**app_config, "SECRET_KEY": can.secret_key})
    rec = Recorder(app.test_client())
    ids = run_scenario(app, rec, can)
    logs = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} "
        + ("".join(traceback.format_exception(*r.exc_info)) if r.exc_info else "")
        for r in every_logger_at_debug.records
    )
    tables = all_tables_as_text(app)
    yield can, rec, logs, tables, ids
    app.extensions[EXTENSION].sessions.kw["bind"].dispose()


def owner_paths(cid: str) -> set[tuple[str, str]]:
    """The recording organization's own answers about the consent: the only ones with notes in them."""
    return {
        ("POST", "/v1/consents"),
        ("POST", f"/v1/consents/{cid}/amend"),
        ("GET", f"/v1/consents/{cid}"),
        ("GET", f"/v1/consents/{cid}/history"),
        ("GET", f"/v1/consents/{cid}/fhir"),
        ("GET", f"/v1/consents/{cid}/receipt.html"),
        ("POST", "/v1/subjects/access-report"),
        ("POST", "/v1/subjects/access-report?format=html"),
        ("POST", f"/v1/consents/{cid}/revoke"),
    }


class TestCanaries:
    def test_the_scenario_ran(self, scenario):
        can, rec, logs, _, _ = scenario
        statuses = {answer.status for answer in rec.answers}
        assert {200, 201, 400, 401, 403, 404, 409, 413, 503} <= statuses, statuses
        assert len(can.tokens) == 5 and len(can.client_secrets) == 5
        assert any("consent_service" in line for line in logs.splitlines())  # logging was captured
        assert "sqlalchemy.engine" in logs  # and at DEBUG: statements were logged

    def test_no_canary_in_any_log_line(self, scenario):
        can, _, logs, _, _ = scenario
        everything = [
            can.subject,
            can.other_subject,
            can.notes,
            can.amended_notes,
            can.mistyped_secret,
            can.secret_key,
            *can.client_secrets.values(),
            *can.tokens,
        ]
        found = [value[:24] for value in everything if hits(value, logs)]
        assert found == []

    def test_subject_identifiers_secrets_tokens_and_the_key_are_in_no_table(self, scenario):
        can, _, _, tables, _ = scenario
        everything = [
            can.subject,
            can.other_subject,
            can.mistyped_secret,
            can.secret_key,
            *can.client_secrets.values(),
            *can.tokens,
        ]
        found = [
            (name, value[:24]) for name, text in tables.items() for value in everything if hits(value, text)
        ]
        assert found == []

    def test_notes_live_only_in_the_consent_version_table(self, scenario):
        can, _, _, tables, _ = scenario
        for notes in (can.notes, can.amended_notes):
            assert [name for name, text in tables.items() if hits(notes, text)] == ["consent_version"]

    def test_no_answer_to_anyone_but_the_recorder_carries_a_subject_or_notes(self, scenario):
        can, rec, _, _, ids = scenario
        mine = owner_paths(ids["consent_id"])
        leaks = []
        for answer in rec.answers:
            for value in (can.subject, can.other_subject, can.notes, can.amended_notes):
                if hits(value, answer.text) and not (
                    answer.caller == PROVIDER and (answer.method, answer.path) in mine
                ):
                    leaks.append((answer.caller, answer.method, answer.path, answer.status, value[:20]))
        assert leaks == []

    def test_the_recorder_sees_the_notes_of_its_own_consent(self, scenario):
        """The control for the answer search: the notes are where they belong."""
        can, rec, _, _, ids = scenario
        path = f"/v1/consents/{ids['consent_id']}"
        own = [a for a in rec.answers if a.caller == PROVIDER and a.path == path]
        assert own and hits(can.amended_notes, own[-1].text)

    def test_a_secret_is_only_in_the_answer_that_made_it_and_a_token_only_in_its_issue(self, scenario):
        can, rec, _, _, _ = scenario
        for secret in can.client_secrets.values():
            where = [(a.method, a.path) for a in rec.answers if hits(secret, a.text)]
            assert where == [("POST", "/v1/clients")]
        for token in can.tokens:
            where = [(a.method, a.path) for a in rec.answers if hits(token, a.text)]
            assert where == [("POST", "/oauth/token")]
        for value in (can.mistyped_secret, can.secret_key):
            assert [a.path for a in rec.answers if hits(value, a.text)] == []

    def test_no_header_carries_a_canary(self, scenario):
        can, rec, _, _, _ = scenario
        everything = [
            can.subject,
            can.notes,
            can.amended_notes,
            can.secret_key,
            *can.client_secrets.values(),
            *can.tokens,
        ]
        assert [a.path for a in rec.answers for v in everything if hits(v, json.dumps(a.headers))] == []


class TestTheSearchFires:
    """Planted hits, one per encoding and place, so each "0 hits" above means something."""

    @pytest.mark.parametrize(
        "encode",
        [
            lambda v: v,
            lambda v: urllib.parse.quote(v),
            lambda v: urllib.parse.quote_plus(v),
            lambda v: json.dumps({"x": v}),
            lambda v: json.dumps({"x": v}, ensure_ascii=False),
            lambda v: html.escape(v),
            lambda v: base64.b64encode(("pre" + v).encode()).decode(),
            lambda v: base64.urlsafe_b64encode(("ab" + v + "z").encode()).decode().rstrip("="),
            lambda v: "eyJ." + base64.urlsafe_b64encode(json.dumps({"n": v}).encode()).decode() + ".sig",
            lambda v: repr({"notes": v}),
        ],
        ids=["raw", "url", "url-plus", "json", "json-utf8", "html", "b64", "b64url", "jwt", "repr"],
    )
    def test_each_encoding_is_found(self, encode):
        value = canary("control")
        assert hits(value, "some text " + encode(value) + " more")
        assert not hits(canary("other"), "some text " + encode(value) + " more")

    def test_a_logged_token_would_be_found(self, app_config, every_logger_at_debug):
        app = create_app(app_config)
        logging.getLogger("consent_service.test").debug("token=%s", "planted-" + secrets.token_hex(16))
        planted = every_logger_at_debug.records[-1].args[0]
        logs = "\n".join(r.getMessage() for r in every_logger_at_debug.records)
        assert hits(planted, logs)
        app.extensions[EXTENSION].sessions.kw["bind"].dispose()

    def test_a_stored_identifier_would_be_found(self, app, client, world):
        from api_helpers import record_consent, rough_sleeper_orgs

        rough_sleeper_orgs(world)
        value = canary("stored")
        record_consent(
            client,
            world.headers("outreach-org", "consents:write"),
            evidence={"method": "verbal", "obtained_by": "worker-1", "notes": value},
        )
        tables = all_tables_as_text(app)
        assert [name for name, text in tables.items() if hits(value, text)] == ["consent_version"]


class TestLibraryLogs:
    """Without log_hygiene, Authlib and SQLAlchemy would log a token and personal data at DEBUG."""

    def test_authlib_would_log_the_issued_token(self, app, client, world, every_logger_at_debug):
        from consent_service import log_hygiene

        logger = logging.getLogger(log_hygiene.AUTHLIB_ISSUER_LOGGER)
        saved = list(logger.filters)
        for existing in saved:
            logger.removeFilter(existing)
        try:
            client_id, secret = world.credentials("outreach-org", "authorize")
            token = client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers=basic_auth(client_id, secret),
            ).get_json()["access_token"]
        finally:
            for existing in saved:
                logger.addFilter(existing)
        assert hits(token, "\n".join(r.getMessage() for r in every_logger_at_debug.records))

    def test_with_it_the_token_is_withheld(self, app, client, world, every_logger_at_debug):
        client_id, secret = world.credentials("outreach-org", "authorize")
        token = client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic_auth(client_id, secret)
        ).get_json()["access_token"]
        messages = "\n".join(r.getMessage() for r in every_logger_at_debug.records)
        assert "Issue token '[withheld]'" in messages
        assert not hits(token, messages)


# -- error bodies say nothing about the machine ------------------------------------------------------

REVEALING = re.compile(
    r"Traceback|File \"|\.py\b|/work/|/tmp/|/usr/|site-packages|sqlalchemy|psycopg|sqlite|postgres|"
    r"\bSELECT\b|\bINSERT\b|\bUPDATE\b|\bDELETE FROM\b|werkzeug|flask|authlib|marshmallow|webargs|"
    r"Python|gunicorn|\b\d+\.\d+\.\d+\b|0x[0-9a-f]{6,}|Exception|Error\(",
    re.IGNORECASE,
)


def error_kinds(app, client, world, monkeypatch) -> Iterator[tuple[str, Any]]:
    """One answer of every kind of error there is, with the store's own words in the failures."""
    from api_helpers import record_consent, rough_sleeper_orgs

    rough_sleeper_orgs(world)
    writer = world.headers("outreach-org", "consents:write")
    gla = world.headers("gla", "authorize")
    consent = record_consent(client, writer)
    ask = {"subject": {"system": "urn:s", "value": "v"}, "purpose": "research", "data_categories": ["health"]}
    yield "400 validation", client.post("/v1/authorize", headers=gla, json={"purpose": 5})
    yield (
        "400 invalid json",
        client.post("/v1/authorize", headers=gla, data="{", content_type="application/json"),
    )
    yield (
        "400 nested json",
        client.post("/v1/authorize", headers=gla, data="[" * 50_000, content_type="application/json"),
    )
    yield "400 unknown code", client.post("/v1/authorize", headers=gla, json={**ask, "purpose": "nope"})
    yield (
        "400 not json",
        client.post(
            "/v1/authorize", headers=gla, data="x=1", content_type="application/x-www-form-urlencoded"
        ),
    )
    yield "400 oauth grant", client.post("/oauth/token", data={"grant_type": "password"})
    yield "401 no token", client.post("/v1/authorize", json=ask)
    yield "401 bad token", client.post("/v1/authorize", json=ask, headers={"Authorization": "Bearer a.b.c"})
    yield (
        "401 oauth client",
        client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic_auth("cl_x", "nope")
        ),
    )
    yield "403 scope", client.post("/v1/authorize", json=ask, headers=world.headers("gla", "consents:read"))
    yield "404 path", client.get("/v1/nothing-here")
    yield (
        "404 consent",
        client.get(f"/v1/consents/{consent['id']}", headers=world.headers("gla", "consents:read")),
    )
    yield "405 method", client.put("/v1/authorize", headers=gla)
    yield (
        "409 conflict",
        client.post(
            f"/v1/consents/{consent['id']}/amend",
            headers=writer,
            json={
                "purposes": ["service-delivery"],
                "data_categories": ["housing"],
                "recipients": ["gla"],
                "evidence": {"method": "verbal", "obtained_by": "w"},
                "version": 7,
            },
        ),
    )
    yield (
        "413 too large",
        client.post(
            "/v1/authorize",
            headers=gla,
            data="x" * (app.config["MAX_CONTENT_LENGTH"] + 1),
            content_type="application/json",
        ),
    )
    limited = create_app(
        {**app.extensions[EXTENSION].settings, "RATELIMIT_ENABLED": True, "RATELIMIT_DEFAULT": "1 per hour"}
    )
    limited.test_client().get("/v1/vocabulary")
    yield "429 rate limited", limited.test_client().get("/v1/vocabulary")
    limited.extensions[EXTENSION].sessions.kw["bind"].dispose()

    engine = engine_of(app)

    def driver_error(conn, cursor, statement, parameters, context, executemany):
        raise OperationalError(
            statement,
            parameters,
            Exception(
                'psycopg.OperationalError: connection to server at "127.0.0.1", port 5432 failed: '
                f"FATAL: /var/lib/postgresql/16/main {statement}"
            ),
        )

    event.listen(engine, "before_cursor_execute", driver_error)
    try:
        yield "503 store (authorize)", client.post("/v1/authorize", headers=gla, json=ask)
        yield "503 store (consent)", client.post("/v1/consents", headers=writer, json=CONSENT)
        yield "503 store (readyz)", client.get("/readyz")
    finally:
        event.remove(engine, "before_cursor_execute", driver_error)

    from consent_service.views import vocabulary

    def explode() -> Any:
        raise RuntimeError(f"unexpected at {__file__} with SELECT secret FROM t; sqlalchemy 2.0.36")

    monkeypatch.setattr(vocabulary, "caller_with", lambda *scopes: explode())
    yield "500 bug", client.get("/v1/vocabulary", headers=gla)


def test_no_error_body_reveals_a_trace_sql_driver_path_or_version(app, client, world, monkeypatch):
    seen = set()
    for kind, response in error_kinds(app, client, world, monkeypatch):
        seen.add(response.status_code)
        body = response.get_data(as_text=True)
        assert response.status_code >= 400, kind
        assert set(json.loads(body)) == {"error"}, (kind, body)
        assert not REVEALING.search(body), (kind, REVEALING.search(body), body)
        for name in ("Server", "X-Powered-By"):
            assert not REVEALING.search(response.headers.get(name, "")), (kind, name)
    assert seen == {400, 401, 403, 404, 405, 409, 413, 429, 500, 503}


def test_the_revealing_pattern_fires_on_what_it_looks_for():
    planted = [
        "Traceback (most recent call last)",
        'File "/work/main/x.py"',
        "sqlalchemy.exc.OperationalError",
        "(psycopg.errors.QueryCanceled)",
        "SELECT consent.id FROM consent",
        "Werkzeug/3.1.9",
        "Python/3.11.2",
        "sqlite3.OperationalError: database is locked",
    ]
    assert [text for text in planted if not REVEALING.search(text)] == []


# -- security headers on every answer ------------------------------------------------------------------


def test_every_answer_of_the_scenario_has_the_security_headers(scenario):
    _, rec, _, _, _ = scenario
    for answer in rec.answers:
        headers = {name.lower(): value for name, value in answer.headers.items()}
        assert headers.get("x-content-type-options") == "nosniff", answer.path
        assert "no-store" in headers.get("cache-control", ""), answer.path
        if headers.get("content-type", "").startswith("text/html"):
            assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), answer.path


def test_every_route_answers_with_the_security_headers(app, client, world):
    """Every rule of the url_map, signed in or not, found or not: nosniff; no-store but for the
    public keys; a CSP forbidding framing on every HTML page."""
    gla = world.headers("gla", *("authorize", "consents:read"))
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for headers in ({}, gla):
                response = client.open(path, method=method, headers=headers)
                label = (method, rule.rule, response.status_code)
                assert response.headers.get("X-Content-Type-Options") == "nosniff", label
                if rule.rule != "/.well-known/jwks.json":
                    assert "no-store" in response.headers.get("Cache-Control", ""), label
                if response.mimetype == "text/html":
                    csp = response.headers.get("Content-Security-Policy", "")
                    assert "frame-ancestors 'none'" in csp, label
