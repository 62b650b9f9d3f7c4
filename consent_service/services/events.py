"""Change events: written to the outbox inside the change's own transaction, and delivered by
``consent-service events deliver`` (its own process, so a slow receiver never slows a decision).

Who is told: each organization with a live webhook for the event's kind that received a permit
the change affects, read from the decision log —

* a consent revoked, expired, or amended so that it narrows (``core.events.narrows``): the
  organizations that received a permit on that consent (``decision.consent_id``), one index seek
  per registered organization (``ix_decision_consent_requester``), whatever the number of the
  subject's decisions;
* a community rule added or retired, an approval revoked, an agreement lapsed: the
  organizations the change can concern (the rule's requesters, or every registered one for
  ``*``; the approval's requester) that received a permit touching the community's members in
  the last ``EVENTS_PERMIT_LOOKBACK_DAYS``. A lapse happens by the clock, not by a request, so
  the deliverer's sweep finds it (as it finds expired consents): an agreement's review date
  passed unrenewed tells the requester of each approval under it; a duty overdue unmet tells
  the party that owes it, once for each of its approvals in the community (all are held).

An organization with no webhook for the kind is not written an event (it registers first; events
are not kept for organizations that never asked). Each event row is one event for one webhook,
with its own id (the JWS ``jti``), the same on every retry.
"""

from __future__ import annotations

import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core import events as core
from consent_service.core.events import EventKind
from consent_service.core.wire import WILDCARD
from consent_service.storage import communities as community_store
from consent_service.storage import events as store
from consent_service.storage.models import (
    AgreementLapseNotice,
    ConsentExpiryNotice,
    DeliveryAttempt,
    OutboxEvent,
    Webhook,
)

log = logging.getLogger(__name__)

SWEEP_LIMIT = 500  # expired consents turned into events per sweep


def _outbox(
    hook: Webhook, *, kind: EventKind, event: dict[str, Any], community_id: str | None, now: datetime
) -> OutboxEvent:
    return OutboxEvent(
        id=str(uuid.uuid4()),
        webhook_id=hook.id,
        organization_id=hook.organization_id,
        community_id=community_id,
        kind=str(kind),
        event=event,
        occurred_at=now,
        next_attempt_at=now,
    )


def consent_change(session: Session, *, kind: EventKind, consent_id: str, version: int, now: datetime) -> int:
    """Write the events of a consent change (in the change's transaction); how many."""
    assert kind in core.CONSENT_KINDS
    rows: list[OutboxEvent] = []
    permits: dict[str, list[str]] = {}
    for hook in store.subscribed(session, str(kind)):
        org = hook.organization_id
        if org not in permits:
            permits[org] = store.permits_on_consent(session, consent_id, org, core.MAX_DECISION_IDS)
        if permits[org]:
            event = core.consent_event(
                kind=kind, consent_id=consent_id, version=version, decision_ids=permits[org]
            )
            rows.append(_outbox(hook, kind=kind, event=event, community_id=None, now=now))
    store.add(session, *rows)
    return len(rows)


def community_change(
    session: Session,
    services: Services,
    *,
    kind: EventKind,
    community_id: str,
    requesters: Iterable[str],
    now: datetime,
    approval_id: str | None = None,
    lapse: dict[str, str] | None = None,
) -> int:
    """Write the events of a community change (in the change's transaction); how many.
    ``requesters``: the organizations it can concern (``*``: any)."""
    assert kind in core.COMMUNITY_KINDS
    named = set(requesters)
    hooks = store.subscribed(session, str(kind), None if WILDCARD in named else named)
    if not hooks:
        return 0
    community = community_store.get(session, community_id)
    shown = bool(community is not None and community.show_community_id)
    since = now - timedelta(days=int(services.settings["EVENTS_PERMIT_LOOKBACK_DAYS"]))
    concerned: dict[str, bool] = {}
    rows: list[OutboxEvent] = []
    for hook in hooks:
        org = hook.organization_id
        if org not in concerned:
            concerned[org] = store.received_permit_touching(session, community_id, org, since)
        if concerned[org]:
            event = core.community_event(
                kind=kind,
                community_id=community_id,
                community_shown=shown,
                approval_id=approval_id,
                lapse=lapse,
            )
            rows.append(_outbox(hook, kind=kind, event=event, community_id=community_id, now=now))
    store.add(session, *rows)
    return len(rows)


# -- Registration checks -------------------------------------------------------------------


def resolved_addresses(host: str) -> list[str]:
    """Every address ``host`` resolves to (empty if it does not)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def url_refusal(url: str, settings: dict[str, Any]) -> str | None:
    """Why the service will not call ``url`` (None: it will). Outside loopback-allowed mode, a
    host that does not resolve, or resolves to any private, loopback, link-local or reserved
    address, is refused."""
    allow = bool(settings["WEBHOOKS_ALLOW_LOOPBACK_HTTP"])
    try:
        host, loopback = core.check_url_shape(url, allow_loopback_http=allow)
    except core.UnacceptableUrl as exc:
        return str(exc)
    if allow:
        return None
    del loopback
    addresses = resolved_addresses(host)
    if not addresses:
        return "the host does not resolve"
    if any(core.forbidden_address(a) for a in addresses):
        return "the host resolves to a private, loopback, link-local or reserved address"
    return None


# -- Delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: str
    url: str
    organization: str
    event: dict[str, Any]
    occurred_at: datetime
    attempts: int


@dataclass
class Round:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    expired_found: int = 0
    lapsed_found: int = 0


Post = Callable[[str, bytes, dict[str, str], float], int]


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST and return the status; redirects are not followed (a 3xx is not an acknowledgement)."""
    response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    response.close()
    return response.status_code


class Deliverer:
    """One deliverer process: claim due events, POST each as a signed JWS, record the answer."""

    def __init__(
        self,
        services: Services,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        post: Post = http_post,
        rng: random.Random | None = None,
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.clock = clock
        self.post = post
        self.rng = rng or random.Random()
        self._last_sweep: datetime | None = None

    @property
    def timeout(self) -> float:
        return float(self.settings["EVENTS_TIMEOUT_SECONDS"])

    def sweep_expired(self, now: datetime) -> int:
        """Turn consents that expired since the last sweeps into events (each version once)."""
        return self._raced("expiry", self._sweep_expired, now)

    def _sweep_expired(self, now: datetime) -> int:
        since = now - timedelta(days=int(self.settings["EVENTS_EXPIRY_LOOKBACK_DAYS"]))
        with self.services.writing(None) as session:
            found = store.expired_unnoticed(session, now=now, since=since, limit=SWEEP_LIMIT)
            for consent_id, version in found:
                store.add(
                    session, ConsentExpiryNotice(consent_id=consent_id, version=version, noticed_at=now)
                )
                consent_change(
                    session, kind=EventKind.CONSENT_EXPIRED, consent_id=consent_id, version=version, now=now
                )
            session.commit()
        return len(found)

    def sweep_lapsed(self, now: datetime) -> int:
        """Turn agreements that lapsed since the last sweeps into events (each lapse once)."""
        return self._raced("lapse", self._sweep_lapsed, now)

    def _raced(self, name: str, sweep: Callable[[datetime], int], now: datetime) -> int:
        """Run ``sweep``; a notice another deliverer wrote first (PostgreSQL: both read before
        either wrote; its notice's key refused ours) rolls ours back whole: its transaction wrote
        those events, and the next sweep finds whatever is still unnoticed. Logged (without the
        statement's values), so that a refusal that repeats every round, which would mean no such
        event ever goes out, is seen by the operator rather than swallowed."""
        try:
            return sweep(now)
        except IntegrityError as exc:
            log.warning(
                "%s sweep rolled back (%s): another deliverer noticed first, or a fault if this "
                "repeats every round; the next sweep retries",
                name,
                type(exc.orig).__name__ if exc.orig is not None else "IntegrityError",
            )
            return 0

    def _sweep_lapsed(self, now: datetime) -> int:
        since = now - timedelta(days=int(self.settings["EVENTS_EXPIRY_LOOKBACK_DAYS"]))
        found = 0
        with self.services.writing(None) as session:
            for agreement_id, community_id, review_at in store.reviews_lapsed_unnoticed(
                session, now=now, since=since, limit=SWEEP_LIMIT
            ):
                store.add(
                    session, AgreementLapseNotice(agreement_id=agreement_id, due_at=review_at, noticed_at=now)
                )
                held = store.approvals_held(session, community_id, agreement_id=agreement_id)
                self._lapsed(session, community_id, held, core.lapse_detail(agreement_id=agreement_id), now)
                found += 1
            for agreement_id, community_id, due_at, duty_id, owed_by in store.duties_overdue_unnoticed(
                session, now=now, since=since, limit=SWEEP_LIMIT
            ):
                store.add(
                    session,
                    AgreementLapseNotice(
                        agreement_id=agreement_id, due_at=due_at, duty_id=duty_id, noticed_at=now
                    ),
                )
                held = store.approvals_held(session, community_id, requester=owed_by)
                detail = core.lapse_detail(agreement_id=agreement_id, duty_id=duty_id)
                self._lapsed(session, community_id, held, detail, now)
                found += 1
            session.commit()
        return found

    def _lapsed(
        self,
        session: Session,
        community_id: str,
        held: list[tuple[str, str]],
        detail: dict[str, str],
        now: datetime,
    ) -> None:
        for approval_id, requester in held:
            community_change(
                session,
                self.services,
                kind=EventKind.AGREEMENT_LAPSED,
                community_id=community_id,
                requesters=[requester],
                now=now,
                approval_id=approval_id,
                lapse=detail,
            )

    def claim(self, now: datetime) -> list[Claimed]:
        # The lease outlasts one POST (connect and read timeouts) with room to record the answer.
        seconds = max(float(self.settings["EVENTS_LEASE_SECONDS"]), 2 * self.timeout + 1)
        lease = now + timedelta(seconds=seconds)
        with self.services.writing(None) as session:
            rows = store.claim_due(
                session, now=now, lease_until=lease, limit=int(self.settings["EVENTS_BATCH"])
            )
            urls = {
                w.id: w.url for w in (store.webhook(session, r.webhook_id) for r in rows) if w is not None
            }
            claimed = [
                Claimed(
                    id=r.id,
                    url=urls[r.webhook_id],
                    organization=r.organization_id,
                    event=dict(r.event),
                    occurred_at=r.occurred_at,
                    attempts=r.attempts,
                )
                for r in rows
            ]
            session.commit()
        return claimed

    def send(self, item: Claimed) -> tuple[int | None, str | None]:
        """(status, error) of one POST; nothing is sent to a URL refused now."""
        refusal = url_refusal(item.url, self.settings)
        if refusal is not None:
            return None, f"refused: {refusal}"
        sent_at = self.clock()
        token = self.services.keys.sign(
            core.claims(
                issuer=self.settings["TOKEN_ISSUER"],
                event_id=item.id,
                receiver=item.organization,
                occurred_at=item.occurred_at,
                sent_at=sent_at,
                event=item.event,
            ),
            typ=core.EVENT_TYP,
        )
        headers = {
            "Content-Type": "application/jwt",
            "User-Agent": "consent-service-events/1",
            "Consent-Event-Id": item.id,
        }
        try:
            return self.post(item.url, token.encode("ascii"), headers, self.timeout), None
        except requests.Timeout:
            return None, "timed out"
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}"

    def record(self, item: Claimed, status: int | None, error: str | None, started: float) -> bool:
        now = self.clock()
        ok = status is not None and 200 <= status < 300
        with self.services.writing(None) as session:
            store.record_attempt(
                session,
                DeliveryAttempt(
                    event_id=item.id,
                    at=now,
                    status=status,
                    error=error,
                    duration_ms=int((time.monotonic() - started) * 1000),
                ),
            )
            if ok:
                assert status is not None
                store.acknowledged(session, item.id, at=now, status=status)
            else:
                delay = core.backoff(
                    item.attempts,
                    base=float(self.settings["EVENTS_BACKOFF_BASE_SECONDS"]),
                    cap=float(self.settings["EVENTS_BACKOFF_MAX_SECONDS"]),
                    rng=self.rng,
                )
                store.failed(
                    session, item.id, retry_at=now + delay, status=status, error=error or f"HTTP {status}"
                )
            session.commit()
        return ok

    def round(self) -> Round:
        """One round: a sweep if due, then one batch of due events."""
        result = Round()
        now = self.clock()
        interval = timedelta(seconds=float(self.settings["EVENTS_SWEEP_SECONDS"]))
        if self._last_sweep is None or now - self._last_sweep >= interval:
            result.expired_found = self.sweep_expired(now)
            result.lapsed_found = self.sweep_lapsed(now)
            self._last_sweep = now
        for item in self.claim(now):
            result.claimed += 1
            started = time.monotonic()
            status, error = self.send(item)
            if self.record(item, status, error, started):
                result.delivered += 1
            else:
                result.failed += 1
                log.info(
                    "event %s to %s not acknowledged: %s",
                    item.id,
                    urlsplit(item.url).hostname,
                    error or status,
                )
        return result

    def run(self, *, once: bool, on_round: Callable[[Round], None] | None = None) -> None:
        """Deliver until stopped; ``once``: until no event is due now."""
        while True:
            result = self.round()
            if on_round is not None:
                on_round(result)
            if result.claimed == 0:
                if once:
                    return
                time.sleep(float(self.settings["EVENTS_POLL_SECONDS"]))
