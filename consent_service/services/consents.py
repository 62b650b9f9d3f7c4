"""Individual consent: record, read, amend, revoke. Nothing is overwritten or deleted.

An amendment adds version N+1 and moves the consent's pointer with a compare-and-set, so of
two simultaneous amendments one wins and the other gets 409. Revocation stamps the consent
and adds an event; the terms of every version stay as they were.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from consent_service.container import Services
from consent_service.core import receipts, safeguards
from consent_service.core.caller import Caller
from consent_service.core.deployment import DEFAULT_SETTING
from consent_service.core.events import EventKind, narrows
from consent_service.core.wire import AuditTag, ConsentStatus
from consent_service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from consent_service.schemas.consents import consent_recorded_audit, consent_revoked_audit
from consent_service.services import access_codes, codes, events
from consent_service.services.idempotency import IdempotencyKey, earlier_result, remember
from consent_service.storage import communities as community_store
from consent_service.storage import consents as store
from consent_service.storage import organizations as organization_store
from consent_service.storage.db import detached
from consent_service.storage.models import Consent, ConsentEvent, ConsentVersion, ProtectedGrant


def status_of(consent: Consent, version: ConsentVersion, now: datetime) -> ConsentStatus:
    """Revoked, expired at ``now``, or active: expiry is read, never stored."""
    if consent.status == ConsentStatus.REVOKED:
        return ConsentStatus.REVOKED
    if version.expires_at is not None and version.expires_at <= now:
        return ConsentStatus.EXPIRED
    return ConsentStatus.ACTIVE


@dataclass(frozen=True)
class ConsentState:
    """A consent with the version whose terms are shown (its current one, except where an earlier
    version was asked for) and its status at the time of asking.

    The rows' fields read through (``state.id``, ``state.purposes``, ``state.revoked_at``), so a
    column added to ``Consent`` or ``ConsentVersion`` reaches the output schema (which names it)
    and the pages without being copied here; ``version`` is the terms' version number.
    """

    consent: Consent
    terms: ConsentVersion
    status: ConsentStatus
    # Only in the answer that recorded the consent: the person's access code (services.person),
    # shown this once and never again (only its keyed hash is kept).
    access_code: str | None = None

    @classmethod
    def of(cls, consent: Consent, terms: ConsentVersion, now: datetime) -> ConsentState:
        """Made inside the snapshot; the rows are copied out of it."""
        return cls(consent=detached(consent), terms=detached(terms), status=status_of(consent, terms, now))

    def __getattr__(self, name: str) -> Any:
        # Called only for names that are not fields: the terms first (``version``), then the consent.
        if name.startswith("_"):  # copy/pickle probe dunders before the fields exist
            raise AttributeError(name)
        for row in (self.terms, self.consent):
            if name in type(row).model_fields:
                return getattr(row, name)
        raise AttributeError(name)


@dataclass(frozen=True)
class ConsentHistory:
    """Every version of a consent and every event (recorded, amended, revoked), oldest first."""

    id: str
    versions: tuple[ConsentVersion, ...]
    events: tuple[ConsentEvent, ...]


def check_terms(
    session: Any,
    services: Services,
    terms: dict[str, Any],
    now: datetime,
    *,
    checked_codes: set[Any] | None = None,
) -> None:
    """The checks of a consent's terms before anything is written (also every imported row's).

    ``checked_codes``: code lists already found known in this transaction (an import's rows
    share them), not looked up again.
    """
    expires_at = terms.get("expires_at")
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed(
            "The consent would already be expired.", details={"expires_at": ["must be in the future"]}
        )
    lists = tuple(tuple(terms[name]) for name in ("purposes", "data_categories", "recipients", "communities"))
    if checked_codes is None or lists not in checked_codes:
        codes.check(
            session,
            services.policy,
            purposes=terms["purposes"],
            data_categories=terms["data_categories"],
            organizations={"recipients": terms["recipients"]},
            communities=terms["communities"],
        )
        if checked_codes is not None:
            checked_codes.add(lists)
    # The deployment policy: a known setting, no protected purpose, nothing a crisis setting
    # may not grant (policies/deployment.toml); refused before anything is written.
    safeguards.check(services.policy.deployment, purposes=terms["purposes"], evidence=terms["evidence"])


def _new_version(
    services: Services,
    session: Any,
    *,
    consent: Consent,
    number: int,
    terms: dict[str, Any],
    caller: Caller,
    now: datetime,
) -> ConsentVersion:
    org = organization_store.get_organization(session, consent.recorded_by)
    receipt_id = str(uuid.uuid4())
    # The terms as loaded (schemas.consents.ConsentTermsIn) become the version's columns; each
    # list keeps its first occurrences only, in order.
    terms = {
        name: list(dict.fromkeys(value)) if isinstance(value, list) else value
        for name, value in terms.items()
    }
    purposes, categories = terms["purposes"], terms["data_categories"]
    recipients, communities = terms["recipients"], terms["communities"]
    claims = receipts.receipt_claims(
        issuer=services.settings["TOKEN_ISSUER"],
        receipt_id=receipt_id,
        consent_id=consent.id,
        version=number,
        issued_at=now,
        consent_recorded_at=now,
        controller={"id": consent.recorded_by, "name": org.name if org else consent.recorded_by},
        subject_pseudonym=consent.subject_key,
        purposes=purposes,
        data_categories=categories,
        recipients=recipients,
        communities=communities,
        expires_at=terms.get("expires_at"),
        method=terms["evidence"]["method"],
    )
    return ConsentVersion(
        **{**terms, "evidence": dict(terms["evidence"])},
        consent_id=consent.id,
        version=number,
        recorded_at=now,
        recorded_by_client=caller.client_id,
        receipt_id=receipt_id,
        receipt=receipts.sign(services.keys, claims),
    )


def _list_protected_grant(
    session: Any, services: Services, *, version: ConsentVersion, subject_key: str, recorded_by: str
) -> None:
    """A version granting a protected purpose (one the deployment allows, or it would have been
    refused) is listed to every community the person belongs to, with no identity."""
    protected = [p for p in version.purposes if p in services.policy.deployment.protected_purposes]
    if not protected:
        return
    communities = [row[0] for row in community_store.memberships_with_versions(session, subject_key)]
    store.add(
        session,
        *(
            ProtectedGrant(
                community_id=community,
                consent_id=version.consent_id,
                consent_version=version.version,
                purposes=protected,
                recipients=list(version.recipients),
                recorded_by=recorded_by,
                setting=version.evidence.get("setting") or DEFAULT_SETTING,
                at=version.recorded_at,
            )
            for community in communities
        ),
    )


def _audit_payload(state: ConsentState, protected_purposes: Iterable[str] = ()) -> dict[str, Any]:
    payload: dict[str, Any] = consent_recorded_audit.dump(state)
    # A protected purpose the deployment allowed: named on its own so oversight (the audit
    # log) sees every such grant.
    if protected := [p for p in state.terms.purposes if p in set(protected_purposes)]:
        payload["protected_purposes"] = protected
    return payload


def record(
    services: Services,
    *,
    caller: Caller,
    subject: dict[str, str],
    terms: dict[str, Any],
    now: datetime,
    idempotency: IdempotencyKey | None = None,
) -> ConsentState:
    """Record a new consent; with an ``Idempotency-Key`` a retry returns the same consent."""
    try:
        return _record(
            services, caller=caller, subject=subject, terms=terms, now=now, idempotency=idempotency
        )
    except IntegrityError:
        if idempotency is None:
            raise
        # A concurrent request with the same key committed first: answer with its consent.
        return _replay(services, caller=caller, idempotency=idempotency, now=now)


def _replay(
    services: Services, *, caller: Caller, idempotency: IdempotencyKey, now: datetime
) -> ConsentState:
    with services.reading(caller) as session:
        earlier = earlier_result(session, caller, idempotency)
    if earlier is None:
        raise Conflict("The request conflicted with a concurrent one; retry it.")
    return get(services, caller=caller, consent_id=earlier, now=now)


def _record(
    services: Services,
    *,
    caller: Caller,
    subject: dict[str, str],
    terms: dict[str, Any],
    now: datetime,
    idempotency: IdempotencyKey | None,
) -> ConsentState:
    with services.writing(caller) as session:
        earlier = earlier_result(session, caller, idempotency)
        if earlier is not None:
            session.rollback()
            return get(services, caller=caller, consent_id=earlier, now=now)
        ref = services.subject(session, system=subject["system"], value=subject["value"])
        services.subjects.check_may_record(session, organization=caller.organization, ref=ref)
        key = ref.key
        check_terms(session, services, terms, now)
        consent = Consent(
            id=str(uuid.uuid4()),
            subject_key=key,
            recorded_by=caller.organization,
            status=str(ConsentStatus.ACTIVE),
            current_version=1,
            created_at=now,
            updated_at=now,
        )
        store.add(session, consent)
        version = _new_version(
            services, session, consent=consent, number=1, terms=terms, caller=caller, now=now
        )
        store.add(
            session,
            version,
            ConsentEvent(
                consent_id=consent.id,
                kind="recorded",
                version=1,
                at=now,
                actor_org=caller.organization,
                actor_client=caller.client_id,
            ),
        )
        community_store.record_memberships(
            session, subject_key=key, communities=version.communities, consent_id=consent.id, at=now
        )
        _list_protected_grant(
            session, services, version=version, subject_key=key, recorded_by=consent.recorded_by
        )
        remember(session, caller, idempotency, resource_id=consent.id, status=201, now=now)
        registered = services.subjects.system(session, ref.system)
        code = access_codes.issue(
            services,
            session,
            subject_key=key,
            organization=caller.organization,
            consent_id=consent.id,
            whole_history=registered is not None and registered.organization == caller.organization,
            created_by=caller.client_id,
            now=now,
        )
        state = ConsentState.of(consent, version, now)
        services.append_audit(  # binds the code's row (its hash), never the code
            session,
            at=now,
            tag=AuditTag.CONSENT_RECORDED,
            caller=caller,
            object_id=consent.id,
            payload=_audit_payload(state, services.policy.deployment.protected_purposes),
        )
        session.commit()
        return replace(state, access_code=code)


def _owned(session: Any, caller: Caller, consent_id: str) -> Consent:
    """The consent if the caller's organization recorded it (or the caller is admin); else 404.

    "Not yours" answers exactly like "does not exist", so nobody learns that a person has a
    consent on file with another organization.
    """
    consent = store.get(session, consent_id)
    if consent is None or (consent.recorded_by != caller.organization and not caller.is_admin):
        raise NotFound("No such consent.")
    return consent


def _changeable(session: Any, caller: Caller, consent_id: str) -> Consent:
    """The consent if the caller's organization recorded it. Admin reads every consent but
    changes none of another organization's (403: a new version would be stamped and signed in
    that organization's name); anyone else gets 404, as for a consent that does not exist."""
    consent = _owned(session, caller, consent_id)
    if consent.recorded_by != caller.organization:
        raise Forbidden("Admin may read another organization's consent but not amend or revoke it.")
    return consent


def get(services: Services, *, caller: Caller, consent_id: str, now: datetime) -> ConsentState:
    with services.reading(caller) as session:
        consent = _owned(session, caller, consent_id)
        version = store.version(session, consent.id, consent.current_version)
        assert version is not None  # the foreign key and current_version guarantee it
        return ConsentState.of(consent, version, now)


def history(services: Services, *, caller: Caller, consent_id: str) -> ConsentHistory:
    with services.reading(caller) as session:
        consent = _owned(session, caller, consent_id)
        return ConsentHistory(
            id=consent.id,
            versions=tuple(detached(v) for v in store.versions(session, consent.id)),
            events=tuple(detached(e) for e in store.events(session, consent.id)),
        )


def amend(
    services: Services,
    *,
    caller: Caller,
    consent_id: str,
    terms: dict[str, Any],
    expected_version: int | None,
    now: datetime,
) -> ConsentState:
    with services.writing(caller) as session:
        consent = _changeable(session, caller, consent_id)
        if consent.status != ConsentStatus.ACTIVE:
            raise Conflict("A revoked consent cannot be amended; record a new one.")
        current = consent.current_version
        if expected_version is not None and expected_version != current:
            raise Conflict(
                f"Version {expected_version} is no longer current (it is {current}).",
                details={"current_version": current},
            )
        check_terms(session, services, terms, now)
        before = store.version(session, consent.id, current)
        assert before is not None
        if not store.advance_version(session, consent_id=consent.id, expected=current, at=now):
            raise Conflict("The consent was changed by someone else at the same time; read it and retry.")
        version = _new_version(
            services, session, consent=consent, number=current + 1, terms=terms, caller=caller, now=now
        )
        store.add(
            session,
            version,
            ConsentEvent(
                consent_id=consent.id,
                kind="amended",
                version=current + 1,
                at=now,
                actor_org=caller.organization,
                actor_client=caller.client_id,
            ),
        )
        community_store.record_memberships(
            session,
            subject_key=consent.subject_key,
            communities=version.communities,
            consent_id=consent.id,
            at=now,
        )
        _list_protected_grant(
            session,
            services,
            version=version,
            subject_key=consent.subject_key,
            recorded_by=consent.recorded_by,
        )
        if narrows(before.model_dump(), version.model_dump()):  # change events (services/events.py)
            events.consent_change(
                session, kind=EventKind.CONSENT_NARROWED, consent_id=consent.id, version=current + 1, now=now
            )
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CONSENT_AMENDED,
            caller=caller,
            object_id=consent.id,
            payload=_audit_payload(
                ConsentState.of(consent, version, now), services.policy.deployment.protected_purposes
            ),
        )
        session.commit()
        session.refresh(consent)
        return ConsentState.of(consent, version, now)


def revoke(
    services: Services,
    *,
    caller: Caller,
    consent_id: str,
    reason: str | None,
    now: datetime,
    idempotency: IdempotencyKey | None = None,
) -> ConsentState:
    """Revoke; with an ``Idempotency-Key`` a retry of the same revocation answers 200, not 409."""
    try:
        return _revoke(
            services, caller=caller, consent_id=consent_id, reason=reason, now=now, idempotency=idempotency
        )
    except IntegrityError:
        if idempotency is None:
            raise
        return _replay(services, caller=caller, idempotency=idempotency, now=now)


def _revoke(
    services: Services,
    *,
    caller: Caller,
    consent_id: str,
    reason: str | None,
    now: datetime,
    idempotency: IdempotencyKey | None,
) -> ConsentState:
    with services.writing(caller) as session:
        consent = _changeable(session, caller, consent_id)
        if earlier_result(session, caller, idempotency) is not None:
            session.rollback()
            return get(services, caller=caller, consent_id=consent.id, now=now)
        if not store.mark_revoked(session, consent_id=consent.id, at=now, reason=reason):
            raise Conflict("The consent is already revoked.")
        store.add(
            session,
            ConsentEvent(
                consent_id=consent.id,
                kind="revoked",
                version=consent.current_version,
                at=now,
                actor_org=caller.organization,
                actor_client=caller.client_id,
                reason=reason,
            ),
        )
        remember(session, caller, idempotency, resource_id=consent.id, status=200, now=now)
        version = store.version(session, consent.id, consent.current_version)
        assert version is not None
        events.consent_change(
            session, kind=EventKind.CONSENT_REVOKED, consent_id=consent.id, version=version.version, now=now
        )
        revoked = consent_revoked_audit.dump(ConsentState.of(consent, version, now))
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CONSENT_REVOKED,
            caller=caller,
            object_id=consent.id,
            payload={**revoked, "reason": reason},
        )
        session.commit()
        session.refresh(consent)
        return ConsentState.of(consent, version, now)
