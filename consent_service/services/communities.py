"""Use cases of the community itself (``/v1/communities/{id}``): create it, read and change its
settings, and what it may see: the decisions about its members and the protected grants.

OCAP: the service's administrators create communities and name their stewards but cannot
change a community's governance; only its stewards read and change it
(``stewards.require_steward``). Its rules and approvals are ``services.rules`` and
``services.approvals``. The use cases return the frozen dataclasses below, which
``schemas.communities`` dumps (answers and audit payloads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.wire import AuditTag, ManagementAction, ReasonCode
from consent_service.errors import Conflict
from consent_service.schemas.communities import COMMUNITY_CHANGED_PAYLOAD, COMMUNITY_CREATED_PAYLOAD
from consent_service.services import codes
from consent_service.services.stewards import begin_change, require_steward
from consent_service.storage import communities as store
from consent_service.storage import decisions as decision_store
from consent_service.storage.models import Community, CommunitySteward, Decision, ProtectedGrant


@dataclass(frozen=True)
class CommunityRecord:
    """A community and its settings (``CommunityOut``)."""

    id: str
    name: str
    stewards: list[str]
    policy_version: int
    show_community_id: bool
    review_days: int
    created_at: datetime

    @classmethod
    def of(cls, community: Community, stewards: list[str]) -> CommunityRecord:
        return cls(
            id=community.id,
            name=community.name,
            stewards=stewards,
            policy_version=community.policy_version,
            show_community_id=community.show_community_id,
            review_days=community.review_days,
            created_at=community.created_at,
        )


def create_community(
    services: Services,
    *,
    caller: Caller | None,
    id: str,
    name: str,
    stewards: list[str],
    now: datetime,
    show_community_id: bool = False,
) -> CommunityRecord:
    """``show_community_id``: whether answers to requesters a member's consent names carry the
    community's id (core/disclosure.py); by default they do not."""
    stewards = sorted(set(stewards))
    with services.writing(caller) as session:
        if store.get(session, id) is not None:
            raise Conflict(f"Community {id} already exists.")
        codes.check(session, services.policy, organizations={"stewards": stewards})
        community = Community(
            id=id, name=name, policy_version=1, created_at=now, show_community_id=show_community_id
        )
        store.add(session, community)
        store.add(session, *(CommunitySteward(community_id=id, organization_id=org) for org in stewards))
        record = CommunityRecord.of(community, stewards)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.COMMUNITY_CREATED,
            caller=caller,
            object_id=id,
            payload=COMMUNITY_CREATED_PAYLOAD.dump(record),
        )
        session.commit()
        return record


def get_community(services: Services, *, caller: Caller, community_id: str) -> CommunityRecord:
    """The community and its settings, for its stewards."""
    with services.reading(caller) as session:
        require_steward(
            session, services, caller=caller, community_id=community_id, action=ManagementAction.RULES_LIST
        )
        community = store.get(session, community_id)
        assert community is not None
        return CommunityRecord.of(community, store.stewards(session, community_id))


def change_settings(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    now: datetime,
    show_community_id: bool | None = None,
    review_days: int | None = None,
) -> CommunityRecord:
    """A steward changes whether answers name the community, or the days it gives itself to
    decide a data access request. Bumps the policy version (the next decision anywhere reads
    the new setting in its snapshot) and is audited (each setting changed, and what it was)."""
    with services.writing(caller) as session:
        begin_change(
            session, services, caller=caller, community_id=community_id, action=ManagementAction.RULES_CREATE
        )
        community = store.get(session, community_id)
        assert community is not None
        payload: dict[str, Any] = {}
        if show_community_id is not None:
            payload["was"], community.show_community_id = community.show_community_id, show_community_id
        if review_days is not None:
            payload["review_days_was"], community.review_days = community.review_days, review_days
        session.flush()
        session.refresh(community)  # the version bump above was a Core UPDATE
        record = CommunityRecord.of(community, store.stewards(session, community_id))
        if show_community_id is not None:
            payload |= COMMUNITY_CHANGED_PAYLOAD.dump(record)
        if review_days is not None:
            payload["review_days"] = review_days
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.COMMUNITY_CHANGED,
            caller=caller,
            object_id=community_id,
            payload=payload,
        )
        session.commit()
        return record


# -- what a community sees ----------------------------------------------------------------------

_OWN_CONSENT = "An individual consent covers this use."
_OTHER_COMMUNITY = "A rule of another community applies."


@dataclass(frozen=True)
class CommunityDecision:
    """A decision that touched a member, as the community sees it (``CommunityDecisionOut``):
    never a subject identifier, pseudonym or consent id; another community's rules only as codes.

    ``reasons`` and ``obligations`` are the recorded items, filtered (``seen_by``).
    """

    id: str
    at: datetime
    requester: str
    purpose: str
    data_categories: list[str]
    decision: str
    reasons: list[dict[str, Any]]
    obligations: list[dict[str, Any]]


def _reason_as_seen_by(community_id: str, reason: Mapping[str, Any]) -> dict[str, Any]:
    """A decision's reason without what would identify the person or expose another community.

    A consent id is a handle on one person's record (it links their decisions together),
    so it is dropped along with the message that names it; another community's rule is
    reduced to its code, since its ids and wording are that community's business.
    """
    code = reason.get("code")
    if code == ReasonCode.CONSENT:
        return {"code": code, "message": _OWN_CONSENT}
    if reason.get("community") not in (None, community_id):
        return {"code": code, "message": _OTHER_COMMUNITY}
    return {key: value for key, value in reason.items() if key != "consent_id"}


def decision_as_seen_by(community_id: str, decision: Decision) -> CommunityDecision:
    """The decision as community ``community_id`` may see it (also what a steward's
    ``GET /v1/decisions/{id}`` shows)."""
    return CommunityDecision(
        id=decision.id,
        at=decision.at,
        requester=decision.requester,
        purpose=decision.purpose,
        data_categories=list(decision.data_categories),
        decision=decision.outcome,
        reasons=[_reason_as_seen_by(community_id, reason) for reason in decision.reasons],
        obligations=[dict(item) for item in decision.obligations if item.get("community") == community_id],
    )


@dataclass(frozen=True)
class DecisionCounts:
    by_requester: dict[str, int]
    by_purpose: dict[str, int]
    by_outcome: dict[str, int]


@dataclass(frozen=True)
class CommunityDecisions:
    """Decisions about members in [since, until), newest first, and counts over the whole range
    (``CommunityDecisionsOut``)."""

    community: str
    since: datetime | None
    until: datetime | None
    total: int
    counts: DecisionCounts
    decisions: list[CommunityDecision]


def community_decisions(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> CommunityDecisions:
    """Every decision that touched a member, newest first, and counts over the whole time range.

    Never a subject identifier, pseudonym or consent id: the community sees how its members'
    data is used, not who the members are. ``counts`` cover every decision in
    [since, until), not only the ``limit`` returned.
    """
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.DECISIONS_LIST,
        )
        rows = decision_store.for_community(session, community_id, since=since, until=until, limit=limit)
        counts = decision_store.community_counts(session, community_id, since=since, until=until)
        return CommunityDecisions(
            community=community_id,
            since=since,
            until=until,
            total=sum(counts["outcome"].values()),
            counts=DecisionCounts(
                by_requester=counts["requester"], by_purpose=counts["purpose"], by_outcome=counts["outcome"]
            ),
            decisions=[decision_as_seen_by(community_id, row) for row in rows],
        )


@dataclass(frozen=True)
class ProtectedGrantRecord:
    """A member's consent granting a protected purpose (``ProtectedGrantOut``): when, by which
    organization, where, for what and to whom; never its consent id or pseudonym."""

    at: datetime
    purposes: list[str]
    recipients: list[str]
    recorded_by: str
    setting: str

    @classmethod
    def of(cls, row: ProtectedGrant) -> ProtectedGrantRecord:
        return cls(
            at=row.at,
            purposes=list(row.purposes),
            recipients=list(row.recipients),
            recorded_by=row.recorded_by,
            setting=row.setting,
        )


@dataclass(frozen=True)
class ProtectedGrants:
    """``ProtectedGrantsOut``."""

    community: str
    grants: list[ProtectedGrantRecord]


def protected_grants(services: Services, *, caller: Caller, community_id: str) -> ProtectedGrants:
    """Consents granting a protected purpose (where the deployment allows one) to members of the
    community, newest first."""
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.DECISIONS_LIST,
        )
        return ProtectedGrants(
            community=community_id,
            grants=[ProtectedGrantRecord.of(row) for row in store.protected_grants(session, community_id)],
        )
