"""Use cases of a community's approvals (``/v1/communities/{id}/approvals``): grant, list, revoke.

An approval (a data sharing agreement) satisfies the community's matching
``require_approval`` rules for one requester. Only the community's stewards manage them
(``stewards.require_steward``); every change bumps the community's ``policy_version`` in the
same transaction as the change and its audit entry (``stewards.begin_change``). The use cases
return :class:`ApprovalRecord`, which ``schemas.communities.ApprovalOut`` dumps (answers and
audit payloads).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.events import EventKind
from consent_service.core.wire import AuditTag, ManagementAction
from consent_service.errors import Conflict, NotFound, ValidationFailed
from consent_service.schemas.communities import APPROVAL_GRANTED_PAYLOAD, APPROVAL_REVOKED_PAYLOAD
from consent_service.services import codes, events
from consent_service.services.stewards import begin_change, require_steward
from consent_service.storage import agreements as agreement_store
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import communities as store
from consent_service.storage.models import Approval


@dataclass(frozen=True)
class ApprovalRecord:
    """An approval as its community's stewards see it (``ApprovalOut``).

    Every field but ``community`` and ``status`` is the stored column of the same name
    (:meth:`of` copies them by name), so a new column shows here by adding its line.
    """

    id: str
    community: str
    requester: str
    status: str  # "active", "expired" (at the time asked) or "revoked"
    purposes: list[str]
    data_categories: list[str]
    expires_at: datetime | None
    notes: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None
    revoked_reason: str | None
    access_request_id: str | None  # the data access request it was granted on, if any
    agreement_id: str | None  # the data sharing agreement it is granted under, if any

    @classmethod
    def of(cls, approval: Approval, now: datetime) -> ApprovalRecord:
        if approval.revoked_at is not None:
            status = "revoked"
        elif approval.expires_at is not None and approval.expires_at <= now:
            status = "expired"
        else:
            status = "active"
        columns = {f.name: getattr(approval, f.name) for f in fields(cls) if f.name not in _DERIVED}
        return cls(community=approval.community_id, status=status, **columns)


_DERIVED = frozenset({"community", "status"})


@dataclass(frozen=True)
class ApprovalList:
    """A community's approvals, oldest first (``ApprovalListOut``)."""

    approvals: list[ApprovalRecord]


def create_approval(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    requester: str,
    purposes: list[str],
    data_categories: list[str],
    expires_at: datetime | None,
    notes: str | None,
    now: datetime,
    agreement_id: str | None = None,
) -> ApprovalRecord:
    """Record the community's approval for one requester; it satisfies matching require_approval
    rules. Under an agreement (of the community, the requester one of its parties), it permits only
    while the agreement is not past its review date and the requester owes no overdue duty."""
    with services.writing(caller) as session:
        begin_change(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.APPROVALS_CREATE,
        )
        record = add_approval(
            session,
            services,
            caller=caller,
            community_id=community_id,
            requester=requester,
            purposes=purposes,
            data_categories=data_categories,
            expires_at=expires_at,
            notes=notes,
            now=now,
            agreement_id=agreement_id,
        )
        session.commit()
        return record


def add_approval(
    session: Session,
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    requester: str,
    purposes: list[str],
    data_categories: list[str],
    expires_at: datetime | None,
    notes: str | None,
    now: datetime,
    access_request_id: str | None = None,
    agreement_id: str | None = None,
) -> ApprovalRecord:
    """The create path inside the caller's unit of work, after ``begin_change`` (checked steward,
    policy version bumped): checks the terms, adds the approval and its audit entry. A granted
    data access request (services/access_requests.py) comes through here too, naming itself."""
    purposes, data_categories = list(dict.fromkeys(purposes)), list(dict.fromkeys(data_categories))
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed(
            "The approval would already be expired.", details={"expires_at": ["must be in the future"]}
        )
    codes.check(
        session,
        services.policy,
        purposes=purposes,
        data_categories=data_categories,
        organizations={"requester": [requester]},
    )
    if agreement_id is not None:
        agreement = agreement_store.get(session, community_id, agreement_id)
        if agreement is None:
            raise ValidationFailed(
                "No such agreement in this community.",
                details={"agreement_id": ["no such agreement in this community"]},
            )
        if requester not in agreement.parties:
            raise ValidationFailed(
                "The requester is not a party to the agreement.",
                details={"agreement_id": [f"{requester} is not one of its parties"]},
            )
    approval = Approval(
        id=str(uuid.uuid4()),
        community_id=community_id,
        requester=requester,
        purposes=purposes,
        data_categories=data_categories,
        expires_at=expires_at,
        notes=notes,
        created_at=now,
        created_by=caller.organization,
        created_by_client=caller.client_id,
        access_request_id=access_request_id,
        agreement_id=agreement_id,
    )
    store.add(session, approval)
    record = ApprovalRecord.of(approval, now)
    payload = APPROVAL_GRANTED_PAYLOAD.dump(record)
    if access_request_id is not None:
        payload["access_request"] = access_request_id
    services.append_audit(
        session,
        at=now,
        tag=AuditTag.APPROVAL_GRANTED,
        caller=caller,
        object_id=approval.id,
        payload=payload,
    )
    return record


def list_approvals(
    services: Services, *, caller: Caller, community_id: str, include_revoked: bool, now: datetime
) -> ApprovalList:
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.APPROVALS_LIST,
        )
        rows = store.approvals(session, community_id, include_revoked=include_revoked)
        return ApprovalList(approvals=[ApprovalRecord.of(approval, now) for approval in rows])


def revoke_approval(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    approval_id: str,
    reason: str | None,
    now: datetime,
) -> ApprovalRecord:
    """Withdraw an approval from the next decision on; it stays in the history, stamped."""
    with services.writing(caller) as session:
        begin_change(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.APPROVALS_REVOKE,
        )
        approval = store.get_approval(session, community_id, approval_id)
        if approval is None:
            raise NotFound("No such approval in this community.")
        if approval.revoked_at is not None:
            raise Conflict("The approval is already revoked.")
        bound_rows.changing(session, Approval, approval.id)
        approval.revoked_at, approval.revoked_by, approval.revoked_reason = now, caller.organization, reason
        session.flush()
        events.community_change(
            session,
            services,
            kind=EventKind.APPROVAL_REVOKED,
            community_id=community_id,
            requesters=[approval.requester],
            now=now,
            approval_id=approval.id,
        )
        record = ApprovalRecord.of(approval, now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.APPROVAL_REVOKED,
            caller=caller,
            object_id=approval.id,
            payload=APPROVAL_REVOKED_PAYLOAD.dump(record),
        )
        session.commit()
        return record
