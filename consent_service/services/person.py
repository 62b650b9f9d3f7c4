"""The person's own view (``/me``): with the access code their receipt carries, and nothing else,
the person reads their consents and every request for their data, and withdraws a consent.

What a code opens (docs/security.md, "The person's own view"): exactly what the organization
that issued it may show the person in its access report (``services.subjects``), no more:

* the consents *that organization* recorded of the person (every version and event);
* every decision about the person, whoever asked, with the answer and why (where the reason is
  another organization's consent, its id is withheld, as in the report); under a subject system
  not registered to that organization, only from its first consent of the person on;
* withdrawing one of *that organization's* consents, recorded as done by the person.

A code left behind at one intake desk therefore opens nothing another organization recorded:
the person sees their consents elsewhere with the codes those receipts carry. Every code of
the person at one organization opens the same view; a worker's new code (:func:`rotate`)
retires all of them, and the sessions they opened end at their next request (the caller's
re-check, ``container.require_active``).

Every sign-in with a code is an audit entry (``access_code:used``); wrong codes cannot be tied
to anyone, so they are counted per hour, all addresses together, with an entry at the 1st,
10th, 100th ... of each hour (``access_code:refused``); the per-address and global rate limits
of the form (``web.person``) bound them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent_service.container import PERSON_CODE_PREFIX, Services
from consent_service.core import access_codes as codes
from consent_service.core.caller import Caller, Via
from consent_service.core.events import EventKind
from consent_service.core.wire import AuditTag, ConsentStatus
from consent_service.errors import Conflict, Forbidden, NotFound
from consent_service.schemas.consents import consent_revoked_audit
from consent_service.services import access_codes, events
from consent_service.services import consents as consent_cases
from consent_service.services.subjects import ReportContents, contents_of
from consent_service.storage import consents as consent_store
from consent_service.storage import person as store
from consent_service.storage import subjects as subject_store
from consent_service.storage.models import ConsentEvent, PersonAccessCode


class CodeRefused(Exception):
    """No current code is this one (or it is not a code at all): the page says only that."""


def caller_of(code_id: str, organization: str) -> Caller:
    """The person signed in with the code ``code_id``: no scopes; the use cases below check what
    they may reach (their own consents at ``organization``)."""
    return Caller(
        organization=organization,
        client_id=f"{PERSON_CODE_PREFIX}{code_id}",
        scopes=frozenset(),
        via=Via.SUBJECT,
    )


def code_id(caller: Caller) -> str:
    if caller.via is not Via.SUBJECT:
        raise Forbidden("Only the person, signed in with their access code, uses their own view.")
    return caller.client_id.removeprefix(PERSON_CODE_PREFIX)


def sign_in(services: Services, *, typed: str, now: datetime) -> Caller:
    """The person whose current code this is; else ``CodeRefused`` (counted, see the module).

    A code that was never issued, one that was replaced and text that cannot be a code are
    refused alike, so the answer says nothing about which codes exist.
    """
    code = codes.normalize(typed)
    with services.writing(None) as session:
        row = store.by_hash(session, codes.digest(services.access_code_key, code)) if code else None
        if row is None or row.retired_at is not None:
            hour = now.replace(minute=0, second=0, microsecond=0)
            failures = store.count_failure(session, hour)
            if _is_power_of_ten(failures):
                services.append_audit(
                    session,
                    at=now,
                    tag=AuditTag.ACCESS_CODES_REFUSED,
                    caller=None,
                    object_id=None,
                    payload={"hour": hour.isoformat(), "failures": failures},
                )
            session.commit()
            raise CodeRefused
        caller = caller_of(row.id, row.organization_id)
        services.append_audit(
            session, at=now, tag=AuditTag.ACCESS_CODE_USED, caller=caller, object_id=row.id, payload={}
        )
        session.commit()
        return caller


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1


def is_current(services: Services, *, caller: Caller) -> bool:
    """Whether the code the person signed in with still works (not replaced since)."""
    with services.reading(None) as session:
        return store.is_current(session, code_id(caller))


@dataclass(frozen=True)
class PersonView:
    """What the person's page shows: the organization that issued the code and its report."""

    organization: str
    generated_at: datetime
    contents: ReportContents


def _scope(session: Any, caller: Caller) -> tuple[PersonAccessCode, list[str]]:
    """The code (checked current by the caller's re-check) and every key the person is found by."""
    row = store.get(session, code_id(caller))
    if row is None or row.organization_id != caller.organization:  # not reached: require_active
        raise NotFound("No such access code.")
    keys = list(dict.fromkeys([row.subject_key, *subject_store.old_keys(session, row.subject_key)]))
    return row, keys


def _own_consents(session: Any, keys: list[str], organization: str) -> list[Any]:
    found = {c.id: c for k in keys for c in consent_store.for_subject(session, k, recorded_by=organization)}
    return sorted(found.values(), key=lambda c: (c.created_at, c.id))


def view(services: Services, *, caller: Caller, now: datetime) -> PersonView:
    """The person's consents at the code's organization and every decision about them (module)."""
    with services.reading(caller) as session:
        row, keys = _scope(session, caller)
        own = _own_consents(session, keys, row.organization_id)
        first = min((c.created_at for c in own), default=row.created_at)
        contents = contents_of(
            services,
            session,
            keys=keys,
            organization=row.organization_id,
            own_ids=[c.id for c in own],
            since=None if row.whole_history else first,
            now=now,
        )
        organization = row.organization_id
    return PersonView(organization=organization, generated_at=now, contents=contents)


def consent(
    services: Services, *, caller: Caller, consent_id: str, now: datetime
) -> consent_cases.ConsentState:
    """One of the person's consents at the code's organization; any other is 404."""
    with services.reading(caller) as session:
        found = _theirs(session, caller, consent_id)
        version = consent_store.version(session, found.id, found.current_version)
        assert version is not None
        return consent_cases.ConsentState.of(found, version, now)


def _theirs(session: Any, caller: Caller, consent_id: str) -> Any:
    row, keys = _scope(session, caller)
    found = consent_store.get(session, consent_id)
    if found is None or found.recorded_by != row.organization_id or found.subject_key not in keys:
        raise NotFound("No such consent.")
    return found


def withdraw(
    services: Services, *, caller: Caller, consent_id: str, reason: str | None, now: datetime
) -> consent_cases.ConsentState:
    """The person withdraws one of their consents: a revocation like a worker's, recorded as
    theirs (the event's and the entry's actor is ``person-code:<id>``; the payload says ``by``)."""
    with services.writing(caller) as session:
        found = _theirs(session, caller, consent_id)
        if not consent_store.mark_revoked(session, consent_id=found.id, at=now, reason=reason):
            raise Conflict("The consent is already withdrawn.")
        consent_store.add(
            session,
            ConsentEvent(
                consent_id=found.id,
                kind="revoked",
                version=found.current_version,
                at=now,
                actor_org=caller.organization,
                actor_client=caller.client_id,
                reason=reason,
            ),
        )
        version = consent_store.version(session, found.id, found.current_version)
        assert version is not None
        events.consent_change(  # the organizations that were given the data are told
            session, kind=EventKind.CONSENT_REVOKED, consent_id=found.id, version=version.version, now=now
        )
        session.refresh(found)
        state = consent_cases.ConsentState.of(found, version, now)
        assert state.status == ConsentStatus.REVOKED
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CONSENT_REVOKED,
            caller=caller,
            object_id=found.id,
            payload={**consent_revoked_audit.dump(state), "reason": reason, "by": "person"},
        )
        session.commit()
        return state


@dataclass(frozen=True)
class NewAccessCode:
    """A worker's new code for the person (``AccessCodeOut``); the bare code, shown once."""

    consent_id: str
    access_code: str
    created_at: datetime
    codes_replaced: int


def rotate(services: Services, *, caller: Caller, consent_id: str, now: datetime) -> NewAccessCode:
    """A new code for the person of this consent, for the organization that recorded it; every
    earlier code of the person there stops working (their open sessions too). 404 for another
    organization's consent, exactly as for one that does not exist."""
    with services.writing(caller) as session:
        found = consent_store.get(session, consent_id)
        if found is None or (found.recorded_by != caller.organization and not caller.is_admin):
            raise NotFound("No such consent.")
        if found.recorded_by != caller.organization:
            raise Forbidden("Admin may read another organization's consent but not give its person a code.")
        earlier = store.latest(session, subject_key=found.subject_key, organization=found.recorded_by)
        retired = store.retire_all(
            session, subject_key=found.subject_key, organization=found.recorded_by, at=now
        )
        code = access_codes.issue(
            services,
            session,
            subject_key=found.subject_key,
            organization=found.recorded_by,
            consent_id=found.id,
            whole_history=earlier.whole_history if earlier is not None else False,
            created_by=caller.client_id,
            now=now,
        )
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.ACCESS_CODE_ROTATED,
            caller=caller,
            object_id=found.id,
            payload={"codes_replaced": len(retired)},
        )
        session.commit()
    return NewAccessCode(consent_id=found.id, access_code=code, created_at=now, codes_replaced=len(retired))
