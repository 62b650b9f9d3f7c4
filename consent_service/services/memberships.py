"""Use cases of memberships: a community confirms the people named its members, and a person
confirms or ends their own membership.

* A membership named at intake starts ``pending``. Pending and confirmed memberships apply the
  community's rules alike (deny and require_approval: the safe side; ``storage.bulk`` reads
  both); the difference shows in reads only.
* A community's stewards see their pending memberships under each membership's own pseudonym
  (a random id, never the person's subject key or anything the recording organization holds)
  and confirm them in bulk (``/v1/communities/{id}/memberships``).
* The person confirms or ends a membership through the organization that recorded their consent
  (``/v1/consents/{id}/memberships/{community}/confirm|end``): that organization knows the
  person, and sees the membership's status but never the community's pseudonym for it.
* An ended membership stays (stamped, audited); from then on no decision reads it, so the
  community's rules stop applying to that person. The community is told how many memberships
  ended and when, never whose. Confirming an ended membership through the recording
  organization is the person rejoining: a new pseudonym, so the community cannot link it to
  the old one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.wire import AuditTag, ManagementAction, MembershipStatus
from consent_service.errors import Conflict, NotFound, ValidationFailed
from consent_service.services.stewards import require_steward
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import communities as store
from consent_service.storage import consents as consent_store
from consent_service.storage.models import Consent, Membership

NOTICE_DAYS = 30  # endings counted separately over this many days
MAX_PENDING_LISTED = 1000
VIA_COMMUNITY, VIA_PERSON = "community", "person"


@dataclass(frozen=True)
class PendingMembership:
    """A membership waiting for the community, as its stewards see it: its pseudonym and the
    day it was named (not the time: the moment of an intake could point at a person)."""

    id: str
    named_on: date


@dataclass(frozen=True)
class MembershipCounts:
    pending: int
    confirmed: int
    ended: int


@dataclass(frozen=True)
class CommunityMemberships:
    """``CommunityMembershipsOut``: counts, the pending memberships, and endings as numbers only."""

    community: str
    counts: MembershipCounts
    ended_last_days: int  # memberships ended in the last ``notice_days`` days
    notice_days: int
    last_ended_on: date | None
    pending: list[PendingMembership]


@dataclass(frozen=True)
class ConfirmedMemberships:
    """``MembershipsConfirmedOut``: which of the ids sent were confirmed now, which were already."""

    community: str
    confirmed: list[str]
    already_confirmed: list[str]


@dataclass(frozen=True)
class MembershipRecord:
    """A person's membership as the organization that recorded their consent sees it
    (``MembershipOut``): never the community's pseudonym for it."""

    community: str
    status: str
    since: datetime
    confirmed_at: datetime | None
    confirmed_via: str | None
    ended_at: datetime | None

    @classmethod
    def of(cls, row: Membership) -> MembershipRecord:
        return cls(
            community=row.community_id,
            status=store.status_of(row),
            since=row.created_at,
            confirmed_at=row.confirmed_at,
            confirmed_via=row.confirmed_via,
            ended_at=row.ended_at,
        )


@dataclass(frozen=True)
class ConsentMemberships:
    """``ConsentMembershipsOut``: the memberships of the communities the consent named."""

    consent_id: str
    memberships: list[MembershipRecord]


# -- the community ---------------------------------------------------------------------------


def community_memberships(
    services: Services, *, caller: Caller, community_id: str, now: datetime
) -> CommunityMemberships:
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.MEMBERSHIPS_LIST,
        )
        counts = store.membership_counts(session, community_id)
        endings = store.endings(session, community_id)
        recent = now - timedelta(days=NOTICE_DAYS)
        return CommunityMemberships(
            community=community_id,
            counts=MembershipCounts(**counts),
            ended_last_days=sum(1 for at in endings if at >= recent),
            notice_days=NOTICE_DAYS,
            last_ended_on=endings[0].date() if endings else None,
            pending=[
                PendingMembership(id=row.id, named_on=row.created_at.date())
                for row in store.pending_memberships(session, community_id, limit=MAX_PENDING_LISTED)
                if row.id is not None
            ],
        )


def confirm_memberships(
    services: Services, *, caller: Caller, community_id: str, memberships: list[str], now: datetime
) -> ConfirmedMemberships:
    """A steward confirms pending memberships by their pseudonyms, all or none: an id that is
    not a pending or confirmed membership of this community is a 400 naming it, nothing written."""
    wanted = list(dict.fromkeys(memberships))
    with services.writing(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.MEMBERSHIPS_CONFIRM,
        )
        found = {row.id: row for row in store.memberships_by_id(session, community_id, wanted)}
        unknown = [i for i in wanted if i not in found or store.status_of(found[i]) == MembershipStatus.ENDED]
        if unknown:
            raise ValidationFailed(
                "Some ids are not memberships of this community waiting for confirmation; "
                "nothing was confirmed.",
                details={
                    "memberships": [f"not a pending membership of this community: {i}" for i in unknown]
                },
            )
        already = [i for i in wanted if store.status_of(found[i]) == MembershipStatus.CONFIRMED]
        confirming = [i for i in wanted if i not in already]
        for i in confirming:
            row = found[i]
            bound_rows.changing(session, Membership, row.subject_key, row.community_id)
            session.refresh(row)
            if store.status_of(row) != MembershipStatus.PENDING:  # changed meanwhile
                raise Conflict("A membership changed while it was being confirmed: try again.")
            row.status, row.confirmed_at, row.confirmed_by, row.confirmed_via = (
                str(MembershipStatus.CONFIRMED),
                now,
                caller.organization,
                VIA_COMMUNITY,
            )
        result = ConfirmedMemberships(community=community_id, confirmed=confirming, already_confirmed=already)
        if confirming:
            session.flush()
            services.append_audit(
                session,
                at=now,
                tag=AuditTag.MEMBERSHIPS_CONFIRMED,
                caller=caller,
                object_id=community_id,
                payload={"community": community_id, "memberships": confirming, "via": VIA_COMMUNITY},
            )
            session.commit()
        return result


# -- the person, through the organization that recorded their consent ----------------------------


def _recorded(session: Session, caller: Caller, consent_id: str) -> Consent:
    """The consent if the caller's organization recorded it; anyone else: 404, exactly as for a
    consent that does not exist (the admin organization too: this speaks for the person)."""
    consent = consent_store.get(session, consent_id)
    if consent is None or consent.recorded_by != caller.organization:
        raise NotFound("No such consent.")
    return consent


def _named(session: Session, consent: Consent) -> list[str]:
    """The communities any version of the consent named, in the order first named."""
    named: dict[str, None] = {}
    for version in consent_store.versions(session, consent.id):
        named.update(dict.fromkeys(version.communities))
    return list(named)


def _membership(session: Session, consent: Consent, community_id: str) -> Membership:
    """The person's membership of a community the consent named (locked: it is about to change)."""
    row = store.membership(session, consent.subject_key, community_id)
    if community_id not in _named(session, consent) or row is None:
        raise NotFound("This consent names no membership of that community.")
    bound_rows.changing(session, Membership, row.subject_key, row.community_id)
    session.refresh(row)
    return row


def consent_memberships(services: Services, *, caller: Caller, consent_id: str) -> ConsentMemberships:
    with services.reading(caller) as session:
        consent = _recorded(session, caller, consent_id)
        rows = [store.membership(session, consent.subject_key, c) for c in _named(session, consent)]
        return ConsentMemberships(
            consent_id=consent.id, memberships=[MembershipRecord.of(r) for r in rows if r is not None]
        )


def confirm_by_person(
    services: Services, *, caller: Caller, consent_id: str, community_id: str, now: datetime
) -> MembershipRecord:
    """The person confirms their membership (pending → confirmed), or rejoins after ending it
    (a new pseudonym). 409 if it is confirmed already."""
    with services.writing(caller) as session:
        consent = _recorded(session, caller, consent_id)
        row = _membership(session, consent, community_id)
        was = store.status_of(row)
        if was == MembershipStatus.CONFIRMED:
            raise Conflict("The membership is confirmed already.")
        if was == MembershipStatus.ENDED:
            row.id, row.ended_at = str(uuid.uuid4()), None
        row.status, row.confirmed_at, row.confirmed_by, row.confirmed_via = (
            str(MembershipStatus.CONFIRMED),
            now,
            caller.organization,
            VIA_PERSON,
        )
        session.flush()
        record = MembershipRecord.of(row)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.MEMBERSHIP_CONFIRMED,
            caller=caller,
            object_id=consent.id,
            payload={"community": community_id, "was": was, "via": VIA_PERSON},
        )
        session.commit()
        return record


def end_by_person(
    services: Services, *, caller: Caller, consent_id: str, community_id: str, now: datetime
) -> MembershipRecord:
    """The person ends their membership: from now on the community's rules no longer apply to
    them. Data already shared is not recalled. 409 if it has ended already."""
    with services.writing(caller) as session:
        consent = _recorded(session, caller, consent_id)
        row = _membership(session, consent, community_id)
        was = store.status_of(row)
        if was == MembershipStatus.ENDED:
            raise Conflict("The membership has ended already.")
        row.status, row.ended_at = str(MembershipStatus.ENDED), now
        session.flush()
        record = MembershipRecord.of(row)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.MEMBERSHIP_ENDED,
            caller=caller,
            object_id=consent.id,
            payload={"community": community_id, "was": was, "via": VIA_PERSON},
        )
        session.commit()
        return record
