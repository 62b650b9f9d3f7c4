"""Use cases of a community's data sharing agreements and the duties they carry
(``/v1/communities/{id}/agreements``): record, list, renew, attach the document, add a duty,
mark it met.

An agreement is the record behind approvals: its parties, the legal authority, the signed
document (kept in the database, its SHA-256 in the audit chain) and the date by which the
community reviews it. Past that date, unrenewed, its approvals stop permitting
(``agreement_review_overdue``); a party's duty unmet past its due date holds every approval the
community gave that party (``duty_overdue``) until a steward marks it met. This is the
benefit-sharing loop: a community's approval comes with what it is owed, and the service
enforces it. Only the community's stewards manage agreements; every change bumps the
community's policy version with its audit entry (``stewards.begin_change``).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.wire import AuditTag, ManagementAction
from consent_service.errors import Conflict, NotFound, TooLarge, UnsupportedMediaType, ValidationFailed
from consent_service.schemas.agreements import (
    AGREEMENT_CREATED_PAYLOAD,
    AGREEMENT_RENEWED_PAYLOAD,
    DOCUMENT_PAYLOAD,
    DUTY_PAYLOAD,
)
from consent_service.services import codes
from consent_service.services.stewards import begin_change, require_steward
from consent_service.storage import agreements as store
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import communities as community_store
from consent_service.storage.models import Agreement, AgreementDocument, Approval, Duty


@dataclass(frozen=True)
class DutyRecord:
    id: str
    agreement_id: str
    kind: str
    description: str
    owed_by: str
    due_at: datetime
    status: str  # "pending", "overdue" (at the time asked) or "met"
    met_at: datetime | None
    met_by: str | None
    met_note: str | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, duty: Duty, now: datetime) -> DutyRecord:
        status = "met" if duty.met_at is not None else "overdue" if duty.due_at <= now else "pending"
        return cls(
            id=duty.id,
            agreement_id=duty.agreement_id,
            kind=duty.kind,
            description=duty.description,
            owed_by=duty.owed_by,
            due_at=duty.due_at,
            status=status,
            met_at=duty.met_at,
            met_by=duty.met_by,
            met_note=duty.met_note,
            created_at=duty.created_at,
            created_by=duty.created_by,
        )


@dataclass(frozen=True)
class DocumentRecord:
    sha256: str
    name: str | None
    media_type: str
    size: int


@dataclass(frozen=True)
class AgreementRecord:
    id: str
    community: str
    title: str
    parties: list[str]
    legal_authority: str
    review_at: datetime
    status: str  # "in_force" or "review_overdue" (its approvals do not permit)
    review_due_soon: bool
    document: DocumentRecord | None
    approvals: list[str]
    duties: list[DutyRecord]
    created_at: datetime
    created_by: str
    renewed_at: datetime | None
    renewed_by: str | None


@dataclass(frozen=True)
class AgreementList:
    agreements: list[AgreementRecord]


@dataclass(frozen=True)
class Document:
    """An agreement's document as it was uploaded."""

    content: bytes
    media_type: str
    name: str | None
    sha256: str


def _record(
    agreement: Agreement, approvals: list[str], duties: list[Duty], now: datetime, remind_days: int
) -> AgreementRecord:
    document = None
    if agreement.document_sha256 is not None:
        document = DocumentRecord(
            sha256=agreement.document_sha256,
            name=agreement.document_name,
            media_type=agreement.document_media_type or "",
            size=agreement.document_size or 0,
        )
    return AgreementRecord(
        id=agreement.id,
        community=agreement.community_id,
        title=agreement.title,
        parties=list(agreement.parties),
        legal_authority=agreement.legal_authority,
        review_at=agreement.review_at,
        status="review_overdue" if agreement.review_at <= now else "in_force",
        review_due_soon=agreement.review_at <= now + timedelta(days=remind_days),
        document=document,
        approvals=approvals,
        duties=[DutyRecord.of(duty, now) for duty in duties],
        created_at=agreement.created_at,
        created_by=agreement.created_by,
        renewed_at=agreement.renewed_at,
        renewed_by=agreement.renewed_by,
    )


def _records(
    services: Services, session: Session, agreements: list[Agreement], now: datetime
) -> list[AgreementRecord]:
    ids = [agreement.id for agreement in agreements]
    approvals, duties = store.approvals_of(session, ids), store.duties_of(session, ids)
    remind = services.settings["AGREEMENT_REMIND_DAYS"]
    return [_record(a, approvals.get(a.id, []), duties.get(a.id, []), now, remind) for a in agreements]


def _future(value: datetime, now: datetime, field: str) -> None:
    if value <= now:
        raise ValidationFailed(
            f"The {field.replace('_', ' ')} must be in the future.",
            details={field: ["must be in the future"]},
        )


def _agreement(session: Session, community_id: str, agreement_id: str) -> Agreement:
    agreement = store.get(session, community_id, agreement_id)
    if agreement is None:
        raise NotFound("No such agreement in this community.")
    return agreement


def _new_duty(caller: Caller, agreement: Agreement, terms: dict[str, Any], now: datetime) -> Duty:
    return Duty(
        id=str(uuid.uuid4()),
        agreement_id=agreement.id,
        community_id=agreement.community_id,
        owed_by=terms["owed_by"],
        kind=terms["kind"],
        description=terms["description"],
        due_at=terms["due_at"],
        created_at=now,
        created_by=caller.organization,
    )


def _check_duties(duties: list[dict[str, Any]], parties: list[str], now: datetime, field: str) -> None:
    problems = []
    for index, duty in enumerate(duties):
        if duty["due_at"] <= now:
            problems.append(f"{index}: due_at must be in the future")
        if duty["owed_by"] not in parties:
            problems.append(f"{index}: owed_by must be one of the agreement's parties")
    if problems:
        raise ValidationFailed("A duty cannot be recorded as given.", details={field: problems})


def create_agreement(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    title: str,
    parties: list[str],
    legal_authority: str,
    review_at: datetime,
    approvals: list[str],
    duties: list[dict[str, Any]],
    now: datetime,
) -> AgreementRecord:
    """Record an agreement, the approvals granted under it and the duties it carries, at once."""
    parties, approvals = list(dict.fromkeys(parties)), list(dict.fromkeys(approvals))
    with services.writing(caller) as session:
        begin_change(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.AGREEMENTS_CREATE,
        )
        _future(review_at, now, "review_at")
        codes.check(session, services.policy, organizations={"parties": parties})
        _check_duties(duties, parties, now, "duties")
        covered = _approvals_to_cover(session, community_id, approvals, parties)
        agreement = Agreement(
            id=str(uuid.uuid4()),
            community_id=community_id,
            title=title,
            parties=parties,
            legal_authority=legal_authority,
            review_at=review_at,
            created_at=now,
            created_by=caller.organization,
            created_by_client=caller.client_id,
        )
        community_store.add(session, agreement)
        rows = [_new_duty(caller, agreement, terms, now) for terms in duties]
        if rows:
            community_store.add(session, *rows)
        for approval in covered:
            bound_rows.changing(session, Approval, approval.id)
            approval.agreement_id = agreement.id
        session.flush()
        (record,) = _records(services, session, [agreement], now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.AGREEMENT_CREATED,
            caller=caller,
            object_id=agreement.id,
            payload=AGREEMENT_CREATED_PAYLOAD.dump(record),
        )
        session.commit()
        return record


def _approvals_to_cover(
    session: Session, community_id: str, ids: list[str], parties: list[str]
) -> list[Approval]:
    """The community's approvals named, each unrevoked, of a party, and under no agreement yet."""
    found: list[Approval] = []
    unknown, problems = [], []
    for approval_id in ids:
        approval = community_store.get_approval(session, community_id, approval_id)
        if approval is None:
            unknown.append(f"no such approval in this community: {approval_id}")
        elif approval.revoked_at is not None:
            problems.append(f"{approval_id}: the approval is revoked")
        elif approval.requester not in parties:
            problems.append(f"{approval_id}: its requester {approval.requester} is not a party")
        else:
            found.append(approval)
    if unknown or problems:
        raise ValidationFailed(
            "An approval cannot be placed under this agreement.", details={"approvals": unknown + problems}
        )
    already = [approval.id for approval in found if approval.agreement_id is not None]
    if already:
        raise Conflict(
            "An approval is already granted under another agreement.", details={"approvals": already}
        )
    return found


def list_agreements(
    services: Services, *, caller: Caller, community_id: str, review_due_within: int | None, now: datetime
) -> AgreementList:
    """The community's agreements, soonest review first; ``review_due_within``: only those whose
    review date falls within that many days (or has passed): the community's reminder list."""
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.AGREEMENTS_LIST,
        )
        rows = store.of_community(session, community_id)
        if review_due_within is not None:
            horizon = now + timedelta(days=review_due_within)
            rows = [row for row in rows if row.review_at <= horizon]
        return AgreementList(agreements=_records(services, session, rows, now))


def get_agreement(
    services: Services, *, caller: Caller, community_id: str, agreement_id: str, now: datetime
) -> AgreementRecord:
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.AGREEMENTS_LIST,
        )
        (record,) = _records(services, session, [_agreement(session, community_id, agreement_id)], now)
        return record


def renew_agreement(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    agreement_id: str,
    review_at: datetime,
    now: datetime,
) -> AgreementRecord:
    """The community reviewed the agreement: its next review date; its approvals permit again."""
    with services.writing(caller) as session:
        begin_change(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.AGREEMENTS_CHANGE,
        )
        agreement = _agreement(session, community_id, agreement_id)
        _future(review_at, now, "review_at")
        bound_rows.changing(session, Agreement, agreement.id)
        agreement.review_at, agreement.renewed_at, agreement.renewed_by = review_at, now, caller.organization
        session.flush()
        (record,) = _records(services, session, [agreement], now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.AGREEMENT_RENEWED,
            caller=caller,
            object_id=agreement.id,
            payload=AGREEMENT_RENEWED_PAYLOAD.dump(record),
        )
        session.commit()
        return record


def accepted_media_types(services: Services) -> list[str]:
    return [
        kind.strip().lower() for kind in services.settings["AGREEMENT_MEDIA_TYPES"].split(",") if kind.strip()
    ]


def attach_document(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    agreement_id: str,
    content: bytes,
    media_type: str,
    name: str | None,
    now: datetime,
) -> AgreementRecord:
    """Keep the agreement's document (replacing an earlier one); its SHA-256 goes in the audit entry."""
    with services.writing(caller) as session:
        begin_change(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.AGREEMENTS_CHANGE,
        )
        agreement = _agreement(session, community_id, agreement_id)
        limit = services.settings["AGREEMENT_MAX_BYTES"]
        if len(content) > limit:
            raise TooLarge(
                f"The document is larger than {limit} bytes.",
                details={"document": [f"at most {limit} bytes"]},
            )
        if not content:
            raise ValidationFailed("The document is empty.", details={"document": ["must not be empty"]})
        kind = media_type.split(";", 1)[0].strip().lower()
        if kind not in accepted_media_types(services):
            raise UnsupportedMediaType(
                f"Documents of type {kind or '(none)'} are not accepted here.",
                details={"Content-Type": [f"must be one of: {', '.join(accepted_media_types(services))}"]},
            )
        digest = hashlib.sha256(content).hexdigest()
        stored = store.document(session, agreement.id)
        if stored is None:
            community_store.add(session, AgreementDocument(agreement_id=agreement.id, content=content))
        else:
            bound_rows.changing(session, AgreementDocument, agreement.id)
            stored.content = content
        bound_rows.changing(session, Agreement, agreement.id)
        agreement.document_sha256, agreement.document_name = digest, name
        agreement.document_media_type, agreement.document_size = kind, len(content)
        session.flush()
        (record,) = _records(services, session, [agreement], now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.AGREEMENT_DOCUMENT_ATTACHED,
            caller=caller,
            object_id=agreement.id,
            payload=DOCUMENT_PAYLOAD.dump(record.document),
        )
        session.commit()
        return record


def read_document(services: Services, *, caller: Caller, community_id: str, agreement_id: str) -> Document:
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.AGREEMENTS_LIST,
        )
        agreement = _agreement(session, community_id, agreement_id)
        stored = store.document(session, agreement.id)
        if stored is None or agreement.document_sha256 is None:
            raise NotFound("This agreement has no document yet.")
        return Document(
            content=stored.content,
            media_type=agreement.document_media_type or "application/octet-stream",
            name=agreement.document_name,
            sha256=agreement.document_sha256,
        )


def add_duty(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    agreement_id: str,
    terms: dict[str, Any],
    now: datetime,
) -> DutyRecord:
    with services.writing(caller) as session:
        begin_change(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.AGREEMENTS_CHANGE,
        )
        agreement = _agreement(session, community_id, agreement_id)
        _check_duties([terms], list(agreement.parties), now, "duty")
        duty = _new_duty(caller, agreement, terms, now)
        community_store.add(session, duty)
        record = DutyRecord.of(duty, now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.DUTY_ADDED,
            caller=caller,
            object_id=duty.id,
            payload=DUTY_PAYLOAD.dump(record),
        )
        session.commit()
        return record


def mark_duty_met(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    agreement_id: str,
    duty_id: str,
    note: str | None,
    now: datetime,
) -> DutyRecord:
    """The community received what was owed: the duty no longer holds the party's approvals."""
    with services.writing(caller) as session:
        begin_change(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.AGREEMENTS_CHANGE,
        )
        agreement = _agreement(session, community_id, agreement_id)
        duty = store.get_duty(session, agreement.id, duty_id)
        if duty is None:
            raise NotFound("No such duty in this agreement.")
        if duty.met_at is not None:
            raise Conflict("The duty is already marked met.")
        bound_rows.changing(session, Duty, duty.id)
        duty.met_at, duty.met_by, duty.met_note = now, caller.organization, note
        session.flush()
        record = DutyRecord.of(duty, now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.DUTY_MET,
            caller=caller,
            object_id=duty.id,
            payload=DUTY_PAYLOAD.dump(record),
        )
        session.commit()
        return record
