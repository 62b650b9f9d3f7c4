"""Use cases of a community's steward changes (``/v1/communities/{id}/steward-changes``): the
community's stewards add and remove steward organizations themselves, two people deciding.

OCAP: after the operator created the community, only its stewards change who its stewards are.
A change is *proposed* by one steward client or signed-in person and applied only when a
*different* client or person of a steward organization *confirms* it before it expires
(``STEWARD_CHANGE_DAYS``, 7 by default). A proposal not confirmed in time cannot be
confirmed and is shown ``expired``; the community's last steward cannot be removed. The
operator's ``admin`` scope is no steward scope: every call here is 403 for it. Every proposal
and confirmation is audited. The use cases return :class:`StewardChangeRecord`, which
``schemas.steward_changes.StewardChangeOut`` dumps (answers and audit payloads).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.wire import AuditTag, ManagementAction, StewardChangeAction
from consent_service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from consent_service.schemas.steward_changes import STEWARD_CHANGE_PAYLOAD
from consent_service.services import codes
from consent_service.services.stewards import begin_change, require_steward
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import communities as store
from consent_service.storage.models import CommunitySteward, StewardChange

PENDING, CONFIRMED, EXPIRED = "pending", "confirmed", "expired"


class OwnProposal(Forbidden):
    """403: the client or person who proposed a change cannot confirm it (two people decide)."""


def expiry_days(services: Services) -> int:
    return int(services.settings.get("STEWARD_CHANGE_DAYS", 7))


@dataclass(frozen=True)
class StewardChangeRecord:
    """A proposed change of the community's stewards as its stewards see it (``StewardChangeOut``)."""

    id: str
    community: str
    action: str
    organization: str
    reason: str | None
    status: str  # pending | confirmed | expired (at the time asked)
    proposed_at: datetime
    proposed_by: str
    proposed_by_client: str
    expires_at: datetime
    confirmed_at: datetime | None
    confirmed_by: str | None
    confirmed_by_client: str | None
    stewards: list[str]  # the community's stewards at the time asked (after a confirmation: the new ones)

    @classmethod
    def of(cls, change: StewardChange, now: datetime, stewards: list[str]) -> StewardChangeRecord:
        if change.confirmed_at is not None:
            status = CONFIRMED
        elif change.expires_at <= now:
            status = EXPIRED
        else:
            status = PENDING
        return cls(
            id=change.id,
            community=change.community_id,
            action=change.action,
            organization=change.organization_id,
            reason=change.reason,
            status=status,
            proposed_at=change.proposed_at,
            proposed_by=change.proposed_by,
            proposed_by_client=change.proposed_by_client,
            expires_at=change.expires_at,
            confirmed_at=change.confirmed_at,
            confirmed_by=change.confirmed_by,
            confirmed_by_client=change.confirmed_by_client,
            stewards=stewards,
        )


@dataclass(frozen=True)
class StewardChangeList:
    """``StewardChangeListOut``: the community's stewards now and its changes, oldest first."""

    community: str
    stewards: list[str]
    changes: list[StewardChangeRecord]


def _check_applicable(action: str, organization: str, stewards: list[str], *, field: str | None) -> None:
    """Whether ``action`` on ``organization`` still makes sense: 400 naming ``field`` at a
    proposal, 409 at a confirmation (``field`` None: the state changed since)."""

    def refuse(message: str) -> None:
        if field is None:
            raise Conflict(message)
        raise ValidationFailed(message, details={field: [message]})

    if action == StewardChangeAction.ADD and organization in stewards:
        refuse(f"{organization} is already a steward of this community.")
    if action == StewardChangeAction.REMOVE:
        if organization not in stewards:
            refuse(f"{organization} is not a steward of this community.")
        if len(stewards) <= 1:
            raise Conflict("The community's last steward cannot be removed: add another steward first.")


def propose_change(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    action: str,
    organization: str,
    reason: str | None,
    now: datetime,
) -> StewardChangeRecord:
    """Propose adding or removing a steward organization; nothing changes until confirmed."""
    action = str(StewardChangeAction(action))
    with services.writing(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.STEWARDS_CHANGE,
        )
        codes.check(session, services.policy, organizations={"organization": [organization]})
        store.lock(session, community_id)  # two identical proposals at once: one is a 409
        stewards = store.stewards(session, community_id)
        _check_applicable(action, organization, stewards, field="organization")
        for other in store.steward_changes(session, community_id):
            if (
                other.confirmed_at is None
                and other.expires_at > now
                and (other.action, other.organization_id) == (action, organization)
            ):
                raise Conflict(f"The same change is already proposed and waiting: {other.id}.")
        change = StewardChange(
            id=str(uuid.uuid4()),
            community_id=community_id,
            action=action,
            organization_id=organization,
            reason=reason,
            proposed_at=now,
            proposed_by=caller.organization,
            proposed_by_client=caller.client_id,
            expires_at=now + timedelta(days=expiry_days(services)),
        )
        store.add(session, change)
        record = StewardChangeRecord.of(change, now, stewards)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.STEWARD_CHANGE_PROPOSED,
            caller=caller,
            object_id=change.id,
            payload=STEWARD_CHANGE_PAYLOAD.dump(record),
        )
        session.commit()
        return record


def list_changes(
    services: Services, *, caller: Caller, community_id: str, status: str | None, now: datetime
) -> StewardChangeList:
    """The community's steward changes, oldest first (``status``: only those in that status)."""
    with services.reading(caller) as session:
        require_steward(
            session, services, caller=caller, community_id=community_id, action=ManagementAction.STEWARDS_LIST
        )
        stewards = store.stewards(session, community_id)
        records = [
            StewardChangeRecord.of(c, now, stewards) for c in store.steward_changes(session, community_id)
        ]
        return StewardChangeList(
            community=community_id,
            stewards=stewards,
            changes=[r for r in records if status is None or r.status == status],
        )


def confirm_change(
    services: Services, *, caller: Caller, community_id: str, change_id: str, now: datetime
) -> StewardChangeRecord:
    """A second steward confirms a proposal: the change is applied at once and audited.

    403 for the client or person who proposed it; 409 when it expired, was confirmed already,
    or no longer applies (its proposer's organization left the stewards, the organization
    became or stopped being a steward meanwhile, or it would remove the last steward).
    """
    with services.writing(caller) as session:
        # Locks the community's row: two confirmations of one community run one after the other.
        begin_change(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.STEWARDS_CHANGE,
        )
        change = store.get_steward_change(session, community_id, change_id)
        if change is None:
            raise NotFound("No such steward change in this community.")
        if change.confirmed_at is not None:
            raise Conflict("This change was confirmed already.")
        if change.expires_at <= now:
            raise Conflict("This change expired without being confirmed: propose it again.")
        if change.proposed_by_client == caller.client_id:
            raise OwnProposal(
                "A change needs two stewards: the client or person who proposed it cannot confirm it."
            )
        stewards = store.stewards(session, community_id)
        if change.proposed_by not in stewards:
            raise Conflict("The organization that proposed this change is no longer a steward.")
        _check_applicable(change.action, change.organization_id, stewards, field=None)
        if change.action == StewardChangeAction.ADD:
            store.add(
                session, CommunitySteward(community_id=community_id, organization_id=change.organization_id)
            )
        else:
            store.remove_steward(session, community_id, change.organization_id)
        bound_rows.changing(session, StewardChange, change.id)
        change.confirmed_at, change.confirmed_by, change.confirmed_by_client = (
            now,
            caller.organization,
            caller.client_id,
        )
        session.flush()
        record = StewardChangeRecord.of(change, now, store.stewards(session, community_id))
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.STEWARD_CHANGE_CONFIRMED,
            caller=caller,
            object_id=change.id,
            payload=STEWARD_CHANGE_PAYLOAD.dump(record),
        )
        session.commit()
        return record
