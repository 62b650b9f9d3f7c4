"""Change events (pure): their kinds, what a receiver is told, whether an amendment narrows a
consent, which webhook URLs are acceptable, and when to try a failed delivery again.

An event is written to the outbox (``storage/events.py``) in the transaction of the change and
POSTed later by ``consent-service events deliver`` as a compact JWS of type
:data:`EVENT_TYP`, signed with the service's signing keys (the keys of
``/.well-known/jwks.json``).

What a receiver is told never identifies the person beyond what it already holds: a consent
event names the consent (its id was in the permits' reasons) and the receiver's own permit
decisions on it; a community event names no decision and no person (a list of the receiver's
decisions that touched a community's members would tell it which of its subjects are members),
and the community only where the community shows its id in answers.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

EVENT_TYP = "consent-event+jwt"
MAX_URL_LENGTH = 2000
MAX_DECISION_IDS = 100  # the newest permits of the receiver an event lists
MAX_WEBHOOKS_PER_ORGANIZATION = 10


class EventKind(StrEnum):
    CONSENT_REVOKED = "consent.revoked"
    CONSENT_EXPIRED = "consent.expired"
    CONSENT_NARROWED = "consent.narrowed"
    RULE_ADDED = "rule.added"
    RULE_RETIRED = "rule.retired"
    APPROVAL_REVOKED = "approval.revoked"
    # An agreement's review date passed unrenewed, or a duty under it went overdue unmet: the
    # approvals it holds no longer permit (found by the deliverer's sweep, told once each).
    AGREEMENT_LAPSED = "agreement.lapsed"


class LapseCause(StrEnum):
    """Why an agreement lapsed: the words of the reason code its held approvals now answer with."""

    REVIEW_OVERDUE = "agreement_review_overdue"
    DUTY_OVERDUE = "duty_overdue"


CONSENT_KINDS = frozenset({EventKind.CONSENT_REVOKED, EventKind.CONSENT_EXPIRED, EventKind.CONSENT_NARROWED})
COMMUNITY_KINDS = frozenset(
    {EventKind.RULE_ADDED, EventKind.RULE_RETIRED, EventKind.APPROVAL_REVOKED, EventKind.AGREEMENT_LAPSED}
)


class UnacceptableUrl(ValueError):
    """A webhook URL the service will not call (the message says why)."""


def narrows(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether the new terms take away something the old ones granted: a purpose, a data
    category, a recipient or a community dropped, or an earlier (or newly set) expiry.
    A code replaced by a broader one counts as dropped (a spurious event, never a missed one)."""
    for name in ("purposes", "data_categories", "recipients", "communities"):
        if set(old[name]) - set(new[name]):
            return True
    before, after = old.get("expires_at"), new.get("expires_at")
    return after is not None and (before is None or after < before)


def consent_event(
    *, kind: EventKind, consent_id: str, version: int, decision_ids: Iterable[str]
) -> dict[str, Any]:
    """The ``event`` of a consent change, for one receiver (its own permits on the consent)."""
    return {
        "kind": str(kind),
        "consent_id": consent_id,
        "consent_version": version,
        "decision_ids": sorted(decision_ids)[:MAX_DECISION_IDS],
    }


def community_event(
    *,
    kind: EventKind,
    community_id: str,
    community_shown: bool,
    approval_id: str | None = None,
    lapse: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``event`` of a community change: the community only if it shows its id. ``lapse``
    (``agreement.lapsed``): the agreement, the cause, and the overdue duty if that is the cause,
    all the receiver's own (it is a party; it owes the duty)."""
    event: dict[str, Any] = {"kind": str(kind)}
    if community_shown:
        event["community_id"] = community_id
    if approval_id is not None:
        event["approval_id"] = approval_id  # the receiver's own agreement with the community
    if lapse is not None:
        event.update(lapse)
    return event


def lapse_detail(*, agreement_id: str, duty_id: str = "") -> dict[str, str]:
    """What an ``agreement.lapsed`` event says of the lapse (``duty_id`` empty: the review date)."""
    if not duty_id:
        return {"agreement_id": agreement_id, "cause": str(LapseCause.REVIEW_OVERDUE)}
    return {"agreement_id": agreement_id, "cause": str(LapseCause.DUTY_OVERDUE), "duty_id": duty_id}


def claims(
    *,
    issuer: str,
    event_id: str,
    receiver: str,
    occurred_at: datetime,
    sent_at: datetime,
    event: dict[str, Any],
) -> dict[str, Any]:
    """The JWS claims: ``jti`` is the event's id (the same on every retry: de-duplicate on it)."""
    return {
        "iss": issuer,
        "aud": receiver,
        "jti": event_id,
        "iat": int(sent_at.timestamp()),
        "occurred_at": occurred_at.isoformat(),
        "event": event,
    }


def backoff(attempts: int, *, base: float, cap: float, rng: random.Random | None = None) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones: exponential, full jitter,
    at least a tenth of the exponential step (so retries never bunch at zero)."""
    step = min(cap, base * (2 ** max(0, attempts - 1)))
    jitter = (rng or random).uniform(0.1, 1.0)
    return timedelta(seconds=step * jitter)


def check_url_shape(url: str, *, allow_loopback_http: bool) -> tuple[str, bool]:
    """(host, is_loopback_http) of an acceptable URL, else :class:`UnacceptableUrl`.

    https only; http only for a loopback host when the deployment allows it. No credentials in
    the URL, no fragment.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnacceptableUrl(f"longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnacceptableUrl("not a valid URL") from exc
    del port
    host = parts.hostname or ""
    if not host:
        raise UnacceptableUrl("no host")
    if parts.username is not None or parts.password is not None:
        raise UnacceptableUrl("must not carry credentials")
    if parts.fragment:
        raise UnacceptableUrl("must not have a fragment")
    if parts.scheme == "https":
        return host, False
    if parts.scheme == "http" and allow_loopback_http and is_loopback_name(host):
        return host, True
    if parts.scheme == "http" and allow_loopback_http:
        raise UnacceptableUrl("must be https (http only for a loopback host)")
    raise UnacceptableUrl("must be https")


def is_loopback_name(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def forbidden_address(address: str) -> bool:
    """An address a webhook must not reach in production: private, loopback, link-local,
    multicast, reserved or unspecified (IPv4-mapped IPv6 judged as the IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )
