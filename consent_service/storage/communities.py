"""Communities, stewards, memberships, collective rules and approvals."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from .models import Approval, Community, CommunityRule, CommunitySteward, Membership


def get(session: Session, community_id: str) -> Community | None:
    return session.get(Community, community_id)


def existing(session: Session, ids: Iterable[str]) -> set[str]:
    wanted = set(ids)
    if not wanted:
        return set()
    return set(session.scalars(select(Community.id).where(Community.id.in_(wanted))))


def add(session: Session, *rows: object) -> None:
    session.add_all(rows)
    session.flush()


def stewards(session: Session, community_id: str) -> list[str]:
    return list(
        session.scalars(
            select(CommunitySteward.organization_id)
            .where(CommunitySteward.community_id == community_id)
            .order_by(CommunitySteward.organization_id)
        )
    )


def bump_policy_version(session: Session, community_id: str) -> None:
    """Every change to a community's rules or approvals bumps its version in the same transaction."""
    session.execute(
        update(Community)
        .where(Community.id == community_id)
        .values(policy_version=Community.policy_version + 1)
    )


def record_memberships(
    session: Session, *, subject_key: str, communities: Iterable[str], consent_id: str, at: datetime
) -> None:
    """Add the memberships the subject does not have yet; existing ones are kept as they are."""
    wanted = set(communities)
    if not wanted:
        return
    have = set(
        session.scalars(
            select(Membership.community_id).where(
                Membership.subject_key == subject_key, Membership.community_id.in_(wanted)
            )
        )
    )
    session.add_all(
        Membership(subject_key=subject_key, community_id=cid, consent_id=consent_id, created_at=at)
        for cid in sorted(wanted - have)
    )
    session.flush()


def memberships_with_versions(session: Session, subject_key: str) -> Sequence[Row]:
    """(community_id, policy_version) of every community the subject belongs to: one indexed query."""
    return session.execute(
        select(Community.id, Community.policy_version)
        .join(Membership, Membership.community_id == Community.id)
        .where(Membership.subject_key == subject_key)
        .order_by(Community.id)
    ).all()


def active_rules(session: Session, community_id: str) -> list[CommunityRule]:
    return list(
        session.scalars(
            select(CommunityRule)
            .where(CommunityRule.community_id == community_id, CommunityRule.retired_at.is_(None))
            .order_by(CommunityRule.created_at, CommunityRule.id)
        )
    )


def rules(session: Session, community_id: str, *, include_retired: bool) -> list[CommunityRule]:
    query = select(CommunityRule).where(CommunityRule.community_id == community_id)
    if not include_retired:
        query = query.where(CommunityRule.retired_at.is_(None))
    return list(session.scalars(query.order_by(CommunityRule.created_at, CommunityRule.id)))


def get_rule(session: Session, community_id: str, rule_id: str) -> CommunityRule | None:
    rule = session.get(CommunityRule, rule_id)
    return rule if rule is not None and rule.community_id == community_id else None


def approvals_for(session: Session, *, communities: Sequence[str], requester: str) -> list[Approval]:
    """The requester's unrevoked approvals from these communities (expiry is the engine's to judge)."""
    if not communities:
        return []
    return list(
        session.scalars(
            select(Approval).where(
                Approval.community_id.in_(communities),
                Approval.requester == requester,
                Approval.revoked_at.is_(None),
            )
        )
    )


def approvals(session: Session, community_id: str, *, include_revoked: bool) -> list[Approval]:
    query = select(Approval).where(Approval.community_id == community_id)
    if not include_revoked:
        query = query.where(Approval.revoked_at.is_(None))
    return list(session.scalars(query.order_by(Approval.created_at, Approval.id)))


def get_approval(session: Session, community_id: str, approval_id: str) -> Approval | None:
    approval = session.get(Approval, approval_id)
    return approval if approval is not None and approval.community_id == community_id else None
