"""Individual consent: record, read, amend, revoke. Nothing is overwritten or deleted.

An amendment adds version N+1 and moves the consent's pointer with a compare-and-set, so of
two simultaneous amendments one wins and the other gets 409. Revocation stamps the consent
and adds an event; the terms of every version stay as they were.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from consent_service.container import Services
from consent_service.core import receipts, safeguards
from consent_service.core.caller import Caller
from consent_service.core.deployment import DEFAULT_SETTING
from consent_service.core.wire import AuditTag, ConsentStatus
from consent_service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from consent_service.services import codes
from consent_service.services.idempotency import IdempotencyKey, earlier_result, remember
from consent_service.storage import communities as community_store
from consent_service.storage import consents as store
from consent_service.storage import organizations as organization_store
from consent_service.storage.db import read_snapshot, write
from consent_service.storage.models import Consent, ConsentEvent, ConsentVersion, ProtectedGrant


def _status(consent: Consent, version: ConsentVersion, now: datetime) -> str:
    if consent.status == ConsentStatus.REVOKED:
        return str(ConsentStatus.REVOKED)
    if version.expires_at is not None and version.expires_at <= now:
        return str(ConsentStatus.EXPIRED)
    return str(ConsentStatus.ACTIVE)


def as_dict(consent: Consent, version: ConsentVersion, now: datetime) -> dict[str, Any]:
    return {
        "id": consent.id,
        "version": version.version,
        "status": _status(consent, version, now),
        "recorded_by": consent.recorded_by,
        "subject_pseudonym": consent.subject_key,
        "communities": list(version.communities),
        "purposes": list(version.purposes),
        "data_categories": list(version.data_categories),
        "recipients": list(version.recipients),
        "expires_at": version.expires_at,
        "evidence": dict(version.evidence),
        "created_at": consent.created_at,
        "updated_at": consent.updated_at,
        "revoked_at": consent.revoked_at,
        "revoked_reason": consent.revoked_reason,
        "receipt": version.receipt,
        "receipt_id": version.receipt_id,
    }


def _check_terms(session: Any, services: Services, terms: dict[str, Any], now: datetime) -> None:
    expires_at = terms.get("expires_at")
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed(
            "The consent would already be expired.", details={"expires_at": ["must be in the future"]}
        )
    codes.check(
        session,
        services.policy,
        purposes=terms["purposes"],
        data_categories=terms["data_categories"],
        organizations={"recipients": terms["recipients"]},
        communities=terms["communities"],
    )
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
    purposes, categories = (
        list(dict.fromkeys(terms["purposes"])),
        list(dict.fromkeys(terms["data_categories"])),
    )
    recipients, communities = (
        list(dict.fromkeys(terms["recipients"])),
        list(dict.fromkeys(terms["communities"])),
    )
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
        consent_id=consent.id,
        version=number,
        purposes=purposes,
        data_categories=categories,
        recipients=recipients,
        communities=communities,
        expires_at=terms.get("expires_at"),
        evidence=dict(terms["evidence"]),
        recorded_at=now,
        recorded_by_client=caller.client_id,
        receipt_id=receipt_id,
        receipt=receipts.sign(services.keys, claims),
    )


def _list_protected_grant(session: Any, services: Services, *, version: ConsentVersion, subject_key: str,
                          recorded_by: str) -> None:
    """A version granting a protected purpose (one the deployment allows, or it would have been
    refused) is listed to every community the person belongs to, with no identity."""
    protected = [p for p in version.purposes if p in services.policy.deployment.protected_purposes]
    if not protected:
        return
    communities = [row[0] for row in community_store.memberships_with_versions(session, subject_key)]
    store.add(session, *(ProtectedGrant(
        community_id=community, consent_id=version.consent_id, consent_version=version.version,
        purposes=protected, recipients=list(version.recipients), recorded_by=recorded_by,
        setting=version.evidence.get("setting") or DEFAULT_SETTING, at=version.recorded_at)
        for community in communities))


def _audit_payload(version: ConsentVersion, subject_key: str,
                   protected_purposes: Iterable[str] = ()) -> dict[str, Any]:
    protected_purposes = set(protected_purposes)
    payload = {
        "subject": subject_key,
        "version": version.version,
        "purposes": version.purposes,
        "data_categories": version.data_categories,
        "recipients": version.recipients,
        "communities": version.communities,
        "expires_at": version.expires_at.isoformat() if version.expires_at else None,
        "method": version.evidence.get("method"),
        "setting": version.evidence.get("setting") or DEFAULT_SETTING,
        "receipt_id": version.receipt_id,
    }
    # A protected purpose the deployment allowed: named on its own so oversight (the audit
    # log) sees every such grant.
    if protected := [p for p in version.purposes if p in protected_purposes]:
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
) -> dict[str, Any]:
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
) -> dict[str, Any]:
    with read_snapshot(services.sessions) as session:
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
) -> dict[str, Any]:
    with write(services.sessions) as session:
        earlier = earlier_result(session, caller, idempotency)
        if earlier is not None:
            session.rollback()
            return get(services, caller=caller, consent_id=earlier, now=now)
        ref = services.subject(session, system=subject["system"], value=subject["value"])
        services.subjects.check_may_record(session, organization=caller.organization, ref=ref)
        key = ref.key
        _check_terms(session, services, terms, now)
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
        _list_protected_grant(session, services, version=version, subject_key=key,
                              recorded_by=consent.recorded_by)
        remember(session, caller, idempotency, resource_id=consent.id, status=201, now=now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CONSENT_RECORDED,
            caller=caller,
            object_id=consent.id,
            payload=_audit_payload(version, key, services.policy.deployment.protected_purposes),
        )
        session.commit()
        return as_dict(consent, version, now)


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


def get(services: Services, *, caller: Caller, consent_id: str, now: datetime) -> dict[str, Any]:
    with read_snapshot(services.sessions) as session:
        consent = _owned(session, caller, consent_id)
        version = store.version(session, consent.id, consent.current_version)
        assert version is not None  # the foreign key and current_version guarantee it
        return as_dict(consent, version, now)


def history(services: Services, *, caller: Caller, consent_id: str) -> dict[str, Any]:
    with read_snapshot(services.sessions) as session:
        consent = _owned(session, caller, consent_id)
        return {
            "id": consent.id,
            "versions": [
                {
                    "version": v.version,
                    "purposes": v.purposes,
                    "data_categories": v.data_categories,
                    "recipients": v.recipients,
                    "communities": v.communities,
                    "expires_at": v.expires_at,
                    "evidence": v.evidence,
                    "recorded_at": v.recorded_at,
                    "receipt_id": v.receipt_id,
                }
                for v in store.versions(session, consent.id)
            ],
            "events": [
                {
                    "kind": e.kind,
                    "version": e.version,
                    "at": e.at.isoformat(),
                    "by": e.actor_org,
                    "reason": e.reason,
                }
                for e in store.events(session, consent.id)
            ],
        }


def amend(
    services: Services,
    *,
    caller: Caller,
    consent_id: str,
    terms: dict[str, Any],
    expected_version: int | None,
    now: datetime,
) -> dict[str, Any]:
    with write(services.sessions) as session:
        consent = _changeable(session, caller, consent_id)
        if consent.status != ConsentStatus.ACTIVE:
            raise Conflict("A revoked consent cannot be amended; record a new one.")
        current = consent.current_version
        if expected_version is not None and expected_version != current:
            raise Conflict(
                f"Version {expected_version} is no longer current (it is {current}).",
                details={"current_version": current},
            )
        _check_terms(session, services, terms, now)
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
        _list_protected_grant(session, services, version=version, subject_key=consent.subject_key,
                              recorded_by=consent.recorded_by)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CONSENT_AMENDED,
            caller=caller,
            object_id=consent.id,
            payload=_audit_payload(version, consent.subject_key,
                                   services.policy.deployment.protected_purposes),
        )
        session.commit()
        session.refresh(consent)
        return as_dict(consent, version, now)


def revoke(
    services: Services,
    *,
    caller: Caller,
    consent_id: str,
    reason: str | None,
    now: datetime,
    idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
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
) -> dict[str, Any]:
    with write(services.sessions) as session:
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
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CONSENT_REVOKED,
            caller=caller,
            object_id=consent.id,
            payload={"subject": consent.subject_key, "version": consent.current_version, "reason": reason},
        )
        session.commit()
        session.refresh(consent)
        version = store.version(session, consent.id, consent.current_version)
        assert version is not None
        return as_dict(consent, version, now)
