"""Change events (issue 15 item 1): webhooks, the outbox written in the change's transaction,
and the deliverer, against a REAL HTTP receiver on loopback that fails (500), times out and
recovers, and verifies every event's JWS against ``/.well-known/jwks.json``.

Also: who is told (only organizations with a permit the change affects, and a webhook for the
kind), what they are told (no identity beyond the consent and their own decisions), URLs that
are refused (400 naming ``url``, nothing written), two deliverers never sending one event
together, and ``kill -9`` of a real ``consent-service events deliver`` mid-run losing nothing and
re-sending nothing acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from api_helpers import CONSENT, SUBJECT, assert_error, assert_ok
from joserfc import jws
from joserfc.jwk import KeySet
from sqlalchemy import func, select
from trust_helpers import cli_env

from consent_service import create_app
from consent_service.container import EXTENSION
from consent_service.core.events import EVENT_TYP, backoff, narrows
from consent_service.services import person
from consent_service.services.events import Deliverer
from consent_service.storage.models import DeliveryAttempt, OutboxEvent, Webhook

ASK = {"subject": SUBJECT, "purpose": "research", "data_categories": ["health"]}
FAST = {
    "EVENTS_TIMEOUT_SECONDS": 0.5,
    "EVENTS_BACKOFF_BASE_SECONDS": 0.02,
    "EVENTS_BACKOFF_MAX_SECONDS": 0.2,
    "EVENTS_LEASE_SECONDS": 1.0,
    "EVENTS_SWEEP_SECONDS": 0.0,
}


@pytest.fixture
def app_config(database_config, tmp_path) -> dict[str, Any]:
    from conftest import config_for

    return {**config_for(database_config, tmp_path), **FAST}


class Receiver:
    """An HTTP receiver on 127.0.0.1: answers each POST as ``script`` says (an int status, or
    "hang" to sleep past the deliverer's timeout), then 200; keeps every body it got."""

    def __init__(self, script: list[Any] | None = None, delay: float = 0.0) -> None:
        self.script = list(script or [])
        self.delay = delay
        self.got: list[dict[str, Any]] = []  # {"token", "answer", "at"}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with receiver.lock:
                    answer = receiver.script.pop(0) if receiver.script else 200
                    receiver.got.append(
                        {
                            "token": body,
                            "answer": answer,
                            "at": time.monotonic(),
                            "type": self.headers["Content-Type"],
                        }
                    )
                if answer == "hang":
                    time.sleep(1.5)
                    answer = 200  # too late: the deliverer gave up waiting
                elif receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(int(answer))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def verified(self, jwks: dict[str, Any]) -> list[dict[str, Any]]:
        """Each body's claims, checked as a receiver would: signature by a key of the JWKS, typ."""
        keys = KeySet.import_key_set(jwks)
        out = []
        for item in self.got:
            compact = jws.deserialize_compact(item["token"], keys)
            assert compact.protected["typ"] == EVENT_TYP
            assert compact.protected["alg"] == "ES256"
            out.append(json.loads(compact.payload))
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def member(client, world) -> dict[str, Any]:
    """A member of Nation A whose consent lets univ do health research; univ asked and was permitted."""
    for org_id, org_type in (
        ("outreach-org", "service-provider"),
        ("univ", "research"),
        ("gla", "government"),
        ("nation-a-council", "community-governance"),
    ):
        world.org(org_id, org_type)
    assert_ok(
        client.post(
            "/v1/communities",
            headers=world.admin(),
            json={"id": "nation-a", "name": "Nation A", "stewards": ["nation-a-council"]},
        ),
        201,
    )
    writer = world.headers("outreach-org", "consents:write")
    consent = assert_ok(
        client.post(
            "/v1/consents",
            headers=writer,
            json={
                **CONSENT,
                "communities": ["nation-a"],
                "purposes": ["research"],
                "data_categories": ["health", "housing"],
                "recipients": ["univ", "gla"],
            },
        ),
        201,
    )
    univ = world.headers("univ", "authorize")
    decision = assert_ok(client.post("/v1/authorize", headers=univ, json=ASK))
    assert decision["decision"] == "permit"
    return {
        "consent": consent,
        "decision_id": decision["decision_id"],
        "writer": writer,
        "steward": world.headers("nation-a-council", "rules:write"),
        "univ": univ,
        "univ_hooks": world.headers("univ", "webhooks:write"),
        "gla_hooks": world.headers("gla", "webhooks:write"),
    }


def register(client, headers, url: str, kinds: list[str]) -> dict[str, Any]:
    return assert_ok(client.post("/v1/webhooks", headers=headers, json={"url": url, "kinds": kinds}), 201)


def outbox(app) -> list[OutboxEvent]:
    with app.extensions[EXTENSION].sessions() as session:
        rows = list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.occurred_at, OutboxEvent.id)))
        session.expunge_all()
        return rows


def attempts_of(app, event_id: str) -> list[DeliveryAttempt]:
    with app.extensions[EXTENSION].sessions() as session:
        rows = list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.event_id == event_id)
                .order_by(DeliveryAttempt.id)
            )
        )
        session.expunge_all()
        return rows


def deliver_until_done(app, *, seconds: float = 15.0) -> Deliverer:
    deliverer = Deliverer(app.extensions[EXTENSION])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        deliverer.round()
        if all(row.delivered_at is not None for row in outbox(app)):
            return deliverer
        time.sleep(0.05)
    raise AssertionError("events still undelivered")


ALL_KINDS = [
    "consent.revoked",
    "consent.expired",
    "consent.narrowed",
    "rule.added",
    "rule.retired",
    "approval.revoked",
    "agreement.lapsed",
]


class TestRevocationReachesTheReceiver:
    def test_fails_times_out_recovers_and_the_event_verifies_against_the_jwks(self, app, client, member):
        receiver = Receiver(script=[500, "hang"])
        try:
            hook = register(client, member["univ_hooks"], receiver.url, ["consent.revoked"])
            register(client, member["gla_hooks"], receiver.url, ["consent.revoked"])  # gla never asked
            consent_id = member["consent"]["id"]
            assert_ok(client.post(f"/v1/consents/{consent_id}/revoke", headers=member["writer"], json={}))

            (event,) = outbox(app)  # written with the revocation, for univ only
            assert (event.organization_id, event.webhook_id, event.kind) == (
                "univ",
                hook["id"],
                "consent.revoked",
            )
            assert event.delivered_at is None

            deliverer = Deliverer(app.extensions[EXTENSION])
            deliverer.round()  # 500
            backlog = assert_ok(client.get("/v1/webhooks/backlog", headers=member["univ_hooks"]))
            assert backlog["total"] == 1
            assert backlog["events"][0]["id"] == event.id and backlog["events"][0]["last_status"] == 500
            assert assert_ok(client.get("/v1/webhooks/backlog", headers=member["gla_hooks"]))["total"] == 0

            deliver_until_done(app)
            (done,) = outbox(app)
            assert done.delivered_at is not None and done.attempts == 3
            statuses = [(a.status, a.error) for a in attempts_of(app, event.id)]
            assert statuses == [(500, None), (None, "timed out"), (200, None)]
            assert assert_ok(client.get("/v1/webhooks/backlog", headers=member["univ_hooks"]))["total"] == 0

            jwks = assert_ok(client.get("/.well-known/jwks.json"))
            claims = receiver.verified(jwks)
            assert len(claims) == 3 and {c["jti"] for c in claims} == {event.id}  # one id on every retry
            assert {item["type"] for item in receiver.got} == {"application/jwt"}
            last = claims[-1]
            assert last["aud"] == "univ" and last["iss"] == app.extensions[EXTENSION].settings["TOKEN_ISSUER"]
            assert last["event"] == {
                "kind": "consent.revoked",
                "consent_id": consent_id,
                "consent_version": 1,
                "decision_ids": [member["decision_id"]],
            }
            # Nothing identifies the person beyond what univ holds: no subject value or key.
            with app.extensions[EXTENSION].sessions() as session:
                from consent_service.storage.models import Consent

                subject_key = session.get(Consent, consent_id).subject_key
            text = json.dumps(claims)
            assert SUBJECT["value"] not in text and subject_key not in text

            # Acknowledged: never sent again.
            deliverer.round()
            assert len(receiver.got) == 3
        finally:
            receiver.close()

    def test_a_forged_event_does_not_verify(self, app, client, member, receiver):
        register(client, member["univ_hooks"], receiver.url, ["consent.revoked"])
        assert_ok(
            client.post(f"/v1/consents/{member['consent']['id']}/revoke", headers=member["writer"], json={})
        )
        deliver_until_done(app)
        token = receiver.got[0]["token"]
        head, payload, signature = token.split(".")
        receiver.got[0]["token"] = f"{head}.{payload[:-2]}AA.{signature}"
        with pytest.raises(Exception):  # noqa: B017 - joserfc's BadSignatureError or a decode error
            receiver.verified(assert_ok(client.get("/.well-known/jwks.json")))

    def test_the_persons_own_withdrawal_is_an_event_too(self, app, client, member, receiver):
        register(client, member["univ_hooks"], receiver.url, ["consent.revoked"])
        services = app.extensions[EXTENSION]
        now = datetime.now(UTC)
        caller = person.sign_in(services, typed=member["consent"]["access_code"], now=now)
        person.withdraw(services, caller=caller, consent_id=member["consent"]["id"], reason=None, now=now)
        (event,) = outbox(app)
        assert (event.organization_id, event.kind) == ("univ", "consent.revoked")
        deliver_until_done(app)
        (claims,) = receiver.verified(assert_ok(client.get("/.well-known/jwks.json")))
        assert claims["event"]["consent_id"] == member["consent"]["id"]


def approval_for_univ(client, steward: dict[str, str]) -> dict[str, Any]:
    """Nation A asks for approval of health research, and grants univ one."""
    rule = {
        "effect": "require_approval",
        "purposes": ["research"],
        "data_categories": ["health"],
        "requesters": ["*"],
        "reason": "ask first",
    }
    assert_ok(client.post("/v1/communities/nation-a/rules", headers=steward, json=rule), 201)
    body = {"requester": "univ", "purposes": ["research"], "data_categories": ["health"]}
    return assert_ok(client.post("/v1/communities/nation-a/approvals", headers=steward, json=body), 201)


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.fixture
def under_agreement(client, member) -> dict[str, Any]:
    """Nation A asks for approval of health research; univ holds one under an agreement (review
    in 30 days) with a duty it owes in 10 days, and was permitted under it."""
    steward = member["steward"]
    approval = approval_for_univ(client, steward)
    agreement = assert_ok(
        client.post(
            "/v1/communities/nation-a/agreements",
            headers=steward,
            json={
                "title": "Health research with the university",
                "parties": ["univ"],
                "legal_authority": "Band Council Resolution 2026-14",
                "review_at": _in(30),
                "approvals": [approval["id"]],
                "duties": [
                    {
                        "kind": "return_results",
                        "description": "Return the tables",
                        "due_at": _in(10),
                        "owed_by": "univ",
                    }
                ],
            },
        ),
        201,
    )
    answer = assert_ok(client.post("/v1/authorize", headers=member["univ"], json=ASK))
    assert answer["decision"] == "permit"
    return {"approval": approval, "agreement": agreement, "duty": agreement["duties"][0]}


class TestAnAgreementLapses:
    """``agreement.lapsed``: found by the deliverer's sweep (a lapse is the clock passing, not a
    request), told once per lapse to each party whose approval it holds."""

    def sweep_at(self, app, days: float) -> int:
        later = datetime.now(UTC) + timedelta(days=days)
        return Deliverer(app.extensions[EXTENSION], clock=lambda: later).sweep_lapsed(later)

    def test_a_review_date_passed_tells_the_party_once_and_again_after_a_renewal_lapses(
        self, app, client, member, under_agreement, receiver
    ):
        register(client, member["univ_hooks"], receiver.url, ["agreement.lapsed"])
        register(client, member["gla_hooks"], receiver.url, ["agreement.lapsed"])  # not a party
        agreement, approval = under_agreement["agreement"], under_agreement["approval"]
        assert self.sweep_at(app, 5) == 0  # nothing lapsed yet
        assert outbox(app) == []
        # Day 31: the duty (day 10) and the review (day 30) have both lapsed, each told once.
        assert self.sweep_at(app, 31) == 2
        assert self.sweep_at(app, 31) == 0
        events = sorted((row.event for row in outbox(app)), key=lambda e: e["cause"])
        assert {row.organization_id for row in outbox(app)} == {"univ"}
        assert events == [
            {
                "kind": "agreement.lapsed",
                "approval_id": approval["id"],
                "agreement_id": agreement["id"],
                "cause": "agreement_review_overdue",
            },
            {
                "kind": "agreement.lapsed",
                "approval_id": approval["id"],
                "agreement_id": agreement["id"],
                "cause": "duty_overdue",
                "duty_id": under_agreement["duty"]["id"],
            },
        ]
        later = datetime.now(UTC) + timedelta(days=31)  # the events are due from their lapse on
        assert Deliverer(app.extensions[EXTENSION], clock=lambda: later).round().delivered == 2
        claims = receiver.verified(assert_ok(client.get("/.well-known/jwks.json")))
        assert sorted(c["event"]["cause"] for c in claims) == ["agreement_review_overdue", "duty_overdue"]
        assert {c["aud"] for c in claims} == {"univ"}

        # Renewed to a new date: when that one passes unrenewed, it is a new lapse, told again.
        renew = f"/v1/communities/nation-a/agreements/{agreement['id']}/renew"
        assert_ok(client.post(renew, headers=member["steward"], json={"review_at": _in(60)}))
        assert self.sweep_at(app, 61) == 1
        assert [row.event["cause"] for row in outbox(app)].count("agreement_review_overdue") == 2

    def test_a_duty_met_in_time_and_an_unrenewed_review_not_yet_due_tell_nothing(
        self, app, client, member, under_agreement, receiver
    ):
        register(client, member["univ_hooks"], receiver.url, ["agreement.lapsed"])
        met = (
            f"/v1/communities/nation-a/agreements/{under_agreement['agreement']['id']}"
            f"/duties/{under_agreement['duty']['id']}/met"
        )
        assert_ok(client.post(met, headers=member["steward"], json={"note": "tables received"}))
        assert self.sweep_at(app, 11) == 0
        assert outbox(app) == []

    def test_a_lapse_another_deliverer_noticed_first_is_left_to_it(
        self, app, client, member, under_agreement, receiver, monkeypatch, caplog
    ):
        """Two deliverers sweeping at once (PostgreSQL: both read before either wrote): the
        one whose notice is refused writes nothing and does not fail, but says so in the log
        (a refusal repeating every round would otherwise hide that no event goes out)."""
        register(client, member["univ_hooks"], receiver.url, ["agreement.lapsed", "consent.expired"])
        assert self.sweep_at(app, 11) == 1  # the first deliverer: the duty's lapse, told once
        from consent_service.storage import events as store
        from consent_service.storage.models import Duty

        with app.extensions[EXTENSION].sessions() as session:
            duty = session.get(Duty, under_agreement["duty"]["id"])
            seen = [(duty.agreement_id, duty.community_id, duty.due_at, duty.id, duty.owed_by)]
        # The second deliverer read before the first wrote: it saw the lapse unnoticed.
        monkeypatch.setattr(store, "duties_overdue_unnoticed", lambda session, **_: seen)
        with caplog.at_level("WARNING", logger="consent_service.services.events"):
            assert self.sweep_at(app, 11) == 0
        assert len(outbox(app)) == 1
        (logged,) = [r for r in caplog.records if r.name == "consent_service.services.events"]
        assert logged.getMessage().startswith("lapse sweep rolled back (")
        assert under_agreement["duty"]["id"] not in logged.getMessage()  # no values of the statement

    def test_the_deliverers_round_sweeps_and_a_revoked_approval_is_not_told(
        self, app, client, member, under_agreement, receiver
    ):
        register(client, member["univ_hooks"], receiver.url, ["agreement.lapsed"])
        revoke = f"/v1/communities/nation-a/approvals/{under_agreement['approval']['id']}/revoke"
        assert_ok(client.post(revoke, headers=member["steward"], json={"reason": "ended"}))
        later = datetime.now(UTC) + timedelta(days=31)
        result = Deliverer(app.extensions[EXTENSION], clock=lambda: later).round()
        assert result.lapsed_found == 2  # both lapses noticed ...
        assert outbox(app) == []  # ... but no approval of univ's is held by them any more


class TestWhoIsTold:
    def test_an_organization_without_a_permit_or_without_a_webhook_is_not(
        self, app, client, member, receiver
    ):
        register(client, member["gla_hooks"], receiver.url, ALL_KINDS)  # gla: a webhook, no permit
        assert_ok(
            client.post(f"/v1/consents/{member['consent']['id']}/revoke", headers=member["writer"], json={})
        )
        assert outbox(app) == []  # univ had the permit but no webhook; gla had no permit

    def test_only_the_kinds_registered(self, app, client, member, receiver):
        register(client, member["univ_hooks"], receiver.url, ["rule.added"])
        assert_ok(
            client.post(f"/v1/consents/{member['consent']['id']}/revoke", headers=member["writer"], json={})
        )
        assert outbox(app) == []

    def test_an_amendment_that_narrows_is_an_event_one_that_widens_is_not(
        self, app, client, member, receiver
    ):
        register(client, member["univ_hooks"], receiver.url, ALL_KINDS)
        consent_id = member["consent"]["id"]
        terms = {
            "purposes": ["research"],
            "data_categories": ["health", "housing", "nationality"],
            "recipients": ["univ", "gla"],
            "communities": ["nation-a"],
            "evidence": CONSENT["evidence"],
        }
        assert_ok(client.post(f"/v1/consents/{consent_id}/amend", headers=member["writer"], json=terms))
        assert outbox(app) == []
        narrower = {**terms, "data_categories": ["housing"]}
        assert_ok(client.post(f"/v1/consents/{consent_id}/amend", headers=member["writer"], json=narrower))
        (event,) = outbox(app)
        assert event.kind == "consent.narrowed"
        assert event.event == {
            "kind": "consent.narrowed",
            "consent_id": consent_id,
            "consent_version": 3,
            "decision_ids": [member["decision_id"]],
        }

    def test_an_expiry_is_found_by_the_sweep_once(self, app, client, world, member, receiver):
        register(client, member["univ_hooks"], receiver.url, ["consent.expired"])
        soon = datetime.now(UTC) + timedelta(seconds=2)
        consent = assert_ok(
            client.post(
                "/v1/consents",
                headers=member["writer"],
                json={
                    **CONSENT,
                    "subject": {"system": SUBJECT["system"], "value": "C-2000"},
                    "purposes": ["research"],
                    "data_categories": ["health"],
                    "recipients": ["univ"],
                    "expires_at": soon.isoformat(),
                },
            ),
            201,
        )
        ask = {**ASK, "subject": {"system": SUBJECT["system"], "value": "C-2000"}}
        decision = assert_ok(client.post("/v1/authorize", headers=member["univ"], json=ask))
        assert decision["decision"] == "permit"
        later = soon + timedelta(seconds=1)
        deliverer = Deliverer(app.extensions[EXTENSION], clock=lambda: later)
        assert deliverer.sweep_expired(later) == 1
        assert deliverer.sweep_expired(later) == 0  # each expiry once
        (event,) = outbox(app)
        assert event.event["consent_id"] == consent["id"] and event.kind == "consent.expired"
        assert event.event["decision_ids"] == [decision["decision_id"]]

    def test_a_new_deny_rule_and_its_retirement_reach_the_permitted_requester(
        self, app, client, member, receiver
    ):
        register(client, member["univ_hooks"], receiver.url, ALL_KINDS)
        register(client, member["gla_hooks"], receiver.url, ALL_KINDS)  # no permit: not told
        rule = assert_ok(
            client.post(
                "/v1/communities/nation-a/rules",
                headers=member["steward"],
                json={
                    "effect": "deny",
                    "purposes": ["research"],
                    "data_categories": ["health"],
                    "requesters": ["*"],
                    "reason": "no health research",
                },
            ),
            201,
        )
        (added,) = outbox(app)
        assert (added.organization_id, added.kind, added.community_id) == ("univ", "rule.added", "nation-a")
        # The community does not show its id: the receiver is not told which community, nor which
        # of its decisions touched a member (that would say who the members are).
        assert added.event == {"kind": "rule.added"}
        # Its stewards see what their change's receivers have not acknowledged.
        backlog = assert_ok(client.get("/v1/communities/nation-a/events/backlog", headers=member["steward"]))
        assert [e["id"] for e in backlog["events"]] == [added.id] and backlog["events"][0][
            "organization"
        ] == "univ"
        assert_ok(
            client.delete(f"/v1/communities/nation-a/rules/{rule['id']}", headers=member["steward"], json={})
        )
        kinds = sorted(row.kind for row in outbox(app))
        assert kinds == ["rule.added", "rule.retired"]
        deliver_until_done(app)
        assert (
            assert_ok(client.get("/v1/communities/nation-a/events/backlog", headers=member["steward"]))[
                "total"
            ]
            == 0
        )
        assert len(receiver.verified(assert_ok(client.get("/.well-known/jwks.json")))) == 2

    def test_a_revoked_approval_reaches_its_requester(self, app, client, member, receiver):
        steward = member["steward"]
        approval = approval_for_univ(client, steward)
        assert (
            assert_ok(client.post("/v1/authorize", headers=member["univ"], json=ASK))["decision"] == "permit"
        )
        register(client, member["univ_hooks"], receiver.url, ["approval.revoked"])
        register(client, member["gla_hooks"], receiver.url, ["approval.revoked"])
        revoke = f"/v1/communities/nation-a/approvals/{approval['id']}/revoke"
        assert_ok(client.post(revoke, headers=steward, json={"reason": "ended"}))
        (event,) = outbox(app)
        assert (event.organization_id, event.kind) == ("univ", "approval.revoked")
        assert event.event == {"kind": "approval.revoked", "approval_id": approval["id"]}
        deliver_until_done(app)
        (claims,) = receiver.verified(assert_ok(client.get("/.well-known/jwks.json")))
        assert claims["event"]["approval_id"] == approval["id"] and claims["aud"] == "univ"

    def test_a_rule_naming_other_requesters_tells_univ_nothing(self, app, client, member, receiver):
        register(client, member["univ_hooks"], receiver.url, ALL_KINDS)
        assert_ok(
            client.post(
                "/v1/communities/nation-a/rules",
                headers=member["steward"],
                json={
                    "effect": "deny",
                    "purposes": ["research"],
                    "data_categories": ["health"],
                    "requesters": ["gla"],
                    "reason": "not gla",
                },
            ),
            201,
        )
        assert outbox(app) == []

    def test_a_community_that_shows_its_id_is_named(self, app, client, world, member, receiver):
        assert_ok(
            client.patch(
                "/v1/communities/nation-a", headers=member["steward"], json={"show_community_id": True}
            )
        )
        register(client, member["univ_hooks"], receiver.url, ["rule.added"])
        body = {
            "effect": "deny",
            "purposes": ["research"],
            "data_categories": ["health"],
            "requesters": ["univ"],
            "reason": "no",
        }
        assert_ok(client.post("/v1/communities/nation-a/rules", headers=member["steward"], json=body), 201)
        (event,) = outbox(app)
        assert event.event == {"kind": "rule.added", "community_id": "nation-a"}


class TestWebhooks:
    def test_register_list_delete(self, app, client, member, receiver):
        hook = register(client, member["univ_hooks"], receiver.url, ["consent.revoked", "consent.revoked"])
        assert hook["kinds"] == ["consent.revoked"]
        listed = assert_ok(client.get("/v1/webhooks", headers=member["univ_hooks"]))["webhooks"]
        assert [h["id"] for h in listed] == [hook["id"]]
        assert assert_ok(client.get("/v1/webhooks", headers=member["gla_hooks"]))["webhooks"] == []
        # Another organization's webhook is "no such webhook".
        assert_error(
            client.delete(f"/v1/webhooks/{hook['id']}", headers=member["gla_hooks"]), 404, "not_found"
        )
        assert client.delete(f"/v1/webhooks/{hook['id']}", headers=member["univ_hooks"]).status_code == 204
        assert assert_ok(client.get("/v1/webhooks", headers=member["univ_hooks"]))["webhooks"] == []
        assert_error(
            client.delete(f"/v1/webhooks/{hook['id']}", headers=member["univ_hooks"]), 404, "not_found"
        )
        # A deleted webhook gets no events.
        assert_ok(
            client.post(f"/v1/consents/{member['consent']['id']}/revoke", headers=member["writer"], json={})
        )
        assert outbox(app) == []

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("http://example.org/hook", "must be https"),
            ("ftp://127.0.0.1/hook", "must be https"),
            ("https://user:pw@example.org/hook", "credentials"),
            ("not a url", "no host"),
        ],
    )
    def test_bad_urls_are_refused_naming_the_field(self, app, client, member, url, why):
        body = assert_error(
            client.post(
                "/v1/webhooks", headers=member["univ_hooks"], json={"url": url, "kinds": ["rule.added"]}
            ),
            400,
            "validation_error",
        )
        assert why in " ".join(body["details"]["url"])
        assert count(app, Webhook) == 0

    def test_unknown_kinds_are_refused(self, app, client, member, receiver):
        body = assert_error(
            client.post(
                "/v1/webhooks", headers=member["univ_hooks"], json={"url": receiver.url, "kinds": ["x"]}
            ),
            400,
            "validation_error",
        )
        assert "kinds" in body["details"]
        assert count(app, Webhook) == 0


def count(app, model) -> int:
    with app.extensions[EXTENSION].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


class TestProductionMode:
    """Without loopback http allowed: https only, and no host resolving to a private address."""

    @pytest.fixture
    def production(self, app_config):
        made = create_app({**app_config, "WEBHOOKS_ALLOW_LOOPBACK_HTTP": False})
        yield made
        made.extensions[EXTENSION].sessions.kw["bind"].dispose()

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("http://127.0.0.1:8000/hook", "must be https"),
            ("https://127.0.0.1/hook", "private, loopback"),
            ("https://localhost/hook", "private, loopback"),
            ("https://10.1.2.3/hook", "private, loopback"),
            ("https://169.254.169.254/latest", "private, loopback"),
            ("https://[::1]/hook", "private, loopback"),
            ("https://[::ffff:192.168.0.1]/hook", "private, loopback"),
            ("https://does-not-exist.invalid/hook", "does not resolve"),
        ],
    )
    def test_private_and_loopback_addresses_are_refused(self, production, member, url, why):
        client = production.test_client()
        body = assert_error(
            client.post(
                "/v1/webhooks", headers=member["univ_hooks"], json={"url": url, "kinds": ["rule.added"]}
            ),
            400,
            "validation_error",
        )
        assert why in " ".join(body["details"]["url"])
        assert count(production, Webhook) == 0

    def test_a_webhook_registered_before_is_not_called_on_a_private_address(
        self, app, production, member, client
    ):
        receiver = Receiver()
        try:
            register(client, member["univ_hooks"], receiver.url, ["consent.revoked"])
            assert_ok(
                client.post(
                    f"/v1/consents/{member['consent']['id']}/revoke", headers=member["writer"], json={}
                )
            )
            Deliverer(production.extensions[EXTENSION]).round()
            assert receiver.got == []
            (event,) = outbox(app)
            assert event.delivered_at is None and "refused" in (event.last_error or "")
        finally:
            receiver.close()


class TestClaims:
    def test_two_deliverers_never_take_the_same_event(self, app, app_config, client, member, receiver):
        register(client, member["univ_hooks"], receiver.url, ["consent.revoked"])
        assert_ok(
            client.post(f"/v1/consents/{member['consent']['id']}/revoke", headers=member["writer"], json={})
        )
        other = create_app(app_config)
        try:
            now = datetime.now(UTC)
            first = Deliverer(app.extensions[EXTENSION]).claim(now)
            second = Deliverer(other.extensions[EXTENSION]).claim(now)
            assert len(first) == 1 and second == []
        finally:
            other.extensions[EXTENSION].sessions.kw["bind"].dispose()

    def test_backoff_grows_and_is_jittered(self):
        import random

        rng = random.Random(7)
        delays = [backoff(n, base=1.0, cap=60.0, rng=rng).total_seconds() for n in range(1, 9)]
        for n, delay in enumerate(delays, start=1):
            step = min(60.0, 2 ** (n - 1))
            assert 0.1 * step <= delay <= step
        assert len(set(delays)) == len(delays)

    def test_narrows(self):
        base = {
            "purposes": ["a"],
            "data_categories": ["x", "y"],
            "recipients": ["o"],
            "communities": [],
            "expires_at": None,
        }
        assert not narrows(base, {**base, "data_categories": ["x", "y", "z"]})
        assert narrows(base, {**base, "data_categories": ["x"]})
        assert narrows(base, {**base, "expires_at": datetime.now(UTC)})
        later = datetime.now(UTC)
        assert not narrows({**base, "expires_at": later}, {**base, "expires_at": later + timedelta(days=1)})


class TestKillNine:
    """A real ``consent-service events deliver`` killed with SIGKILL mid-run: restarted, every
    event arrives, and none that was acknowledged before the kill arrives again."""

    def test_nothing_lost_nothing_acknowledged_sent_twice(self, app, app_config, client, member, tmp_path):
        receiver = Receiver(delay=0.05)
        try:
            for _ in range(10):
                register(client, member["univ_hooks"], receiver.url, ["consent.revoked"])
            writer = member["writer"]
            consent_ids = [member["consent"]["id"]]
            for n in range(2):
                subject = {"system": SUBJECT["system"], "value": f"K-{n}"}
                made = assert_ok(
                    client.post(
                        "/v1/consents",
                        headers=writer,
                        json={
                            **CONSENT,
                            "subject": subject,
                            "purposes": ["research"],
                            "recipients": ["univ"],
                        },
                    ),
                    201,
                )
                asked = assert_ok(
                    client.post("/v1/authorize", headers=member["univ"], json={**ASK, "subject": subject})
                )
                assert asked["decision"] == "permit"
                consent_ids.append(made["id"])
            for consent_id in consent_ids:
                assert_ok(client.post(f"/v1/consents/{consent_id}/revoke", headers=writer, json={}))
            events = {row.id for row in outbox(app)}
            assert len(events) == 30

            env = {
                **os.environ,
                **cli_env(app_config),
                "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                "CONSENT_WEBHOOKS_ALLOW_LOOPBACK_HTTP": "true",
                "CONSENT_EVENTS_TIMEOUT_SECONDS": "1.0",
                "CONSENT_EVENTS_LEASE_SECONDS": "3.0",
                "CONSENT_EVENTS_BATCH": "50",
            }
            command = [
                sys.executable,
                "-c",
                "from consent_service.cli import main; main()",
                "events",
                "deliver",
            ]
            log = tmp_path / "deliver.log"
            with log.open("wb") as out:
                process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=out)
                try:
                    deadline = time.monotonic() + 60
                    while len(receiver.got) < 8 and time.monotonic() < deadline and process.poll() is None:
                        time.sleep(0.01)
                    assert process.poll() is None, log.read_text()
                    os.kill(process.pid, signal.SIGKILL)
                finally:
                    process.wait(timeout=30)
            killed_at = time.monotonic()
            acknowledged = {row.id for row in outbox(app) if row.delivered_at is not None}
            assert 0 < len(acknowledged) < 30  # killed mid-run

            time.sleep(3.2)  # the dead deliverer's lease on the events it had claimed ends
            done = subprocess.run([*command, "--once"], env=env, capture_output=True, timeout=120)
            assert done.returncode == 0, done.stderr.decode()

            rows = outbox(app)
            assert all(row.delivered_at is not None for row in rows)  # nothing lost
            claims = receiver.verified(assert_ok(client.get("/.well-known/jwks.json")))
            received = [c["jti"] for c in claims]
            assert set(received) == events
            after_kill = [
                c["jti"] for c, item in zip(claims, receiver.got, strict=True) if item["at"] > killed_at
            ]
            assert not set(after_kill) & acknowledged  # nothing acknowledged is sent again
            # At most the one event in flight at the kill was received twice.
            assert len(received) - len(set(received)) <= 1
        finally:
            receiver.close()


class TestSameTransaction:
    def test_a_revocation_whose_audit_entry_fails_leaves_no_event(
        self, app, client, member, receiver, monkeypatch
    ):
        """The event is written in the revocation's transaction: no revocation, no event."""
        from consent_service.storage import audit as audit_store

        register(client, member["univ_hooks"], receiver.url, ["consent.revoked"])

        def failing(*args: Any, **kwargs: Any) -> int:
            raise RuntimeError("the audit chain cannot be written")

        monkeypatch.setattr(audit_store, "append", failing)
        consent_id = member["consent"]["id"]
        response = client.post(f"/v1/consents/{consent_id}/revoke", headers=member["writer"], json={})
        assert response.status_code >= 500  # refused: an error, never a half-made change
        monkeypatch.undo()
        assert outbox(app) == []
        assert (
            assert_ok(client.get(f"/v1/consents/{consent_id}", headers=member["writer"]))["status"]
            == "active"
        )


class TestBoundedQuery:
    def test_the_receivers_of_a_consent_event_are_found_by_index(self, app):
        """Finding who received a permit on a consent is an index seek (consent, requester,
        outcome), not a scan of the subject's decisions, however many there are."""
        from sqlalchemy import text

        from consent_service.storage.events import permits_on_consent_query

        query = permits_on_consent_query("c", "r", 100)
        engine = app.extensions[EXTENSION].sessions.kw["bind"]
        with engine.connect() as conn:
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            if engine.dialect.name == "sqlite":
                plan = " ".join(str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
            else:
                conn.execute(text("SET enable_seqscan = off"))
                plan = " ".join(str(row[0]) for row in conn.execute(text(f"EXPLAIN {compiled}")))
        assert "ix_decision_consent_requester" in plan, plan
