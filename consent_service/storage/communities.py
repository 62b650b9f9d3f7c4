"""Communities, stewards, memberships, collective rules and approvals."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from consent_service.storage import audit_rows
from consent_service.storage.models import (
    Approval,
    Community,
    CommunityRule,
    CommunitySteward,
    Membership,
    ProtectedGrant,
    StewardChange,
)

PENDING, CONFIRMED, ENDED = "pending", "confirmed", "ended"  # a membership's status


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
    audit_rows.added_rows(session, *rows)


def lock(session: Session, community_id: str) -> None:
    """Hold the community's row until the commit (PostgreSQL; SQLite's writer holds the whole
    database already): two changes of one community's stewards run one after the other."""
    session.execute(select(Community.id).where(Community.id == community_id).with_for_update())


def stewards(session: Session, community_id: str) -> list[str]:
    return list(
        session.scalars(
            select(CommunitySteward.organization_id)
            .where(CommunitySteward.community_id == community_id)
            .order_by(CommunitySteward.organization_id)
        )
    )


def bump_policy_version(session: Session, community_id: str) -> int:
    """Every change to a community's rules or approvals bumps its version in the same transaction.

    Returns the new version, which a rule change stamps on the rule it adds or retires.
    """
    audit_rows.changing(session, Community, community_id)
    return int(
        session.execute(
            update(Community)
            .where(Community.id == community_id)
            .values(policy_version=Community.policy_version + 1)
            .returning(Community.policy_version)
        ).scalar_one()
    )


def record_memberships(
    session: Session, *, subject_key: str, communities: Iterable[str], consent_id: str, at: datetime
) -> None:
    """Add the memberships the subject does not have yet, each ``pending`` under a new pseudonym;
    existing ones are kept as they are (an ended one too: only the person rejoins)."""
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
    new = [
        Membership(
            subject_key=subject_key,
            community_id=cid,
            consent_id=consent_id,
            created_at=at,
            id=str(uuid.uuid4()),
            status=PENDING,
        )
        for cid in sorted(wanted - have)
    ]
    session.add_all(new)
    session.flush()
    audit_rows.added_rows(session, *new)


def status_of(membership: Membership) -> str:
    """pending | confirmed | ended; a row from before memberships were confirmed (NULL) is confirmed."""
    if membership.ended_at is not None:
        return ENDED
    return membership.status or CONFIRMED


def membership(session: Session, subject_key: str, community_id: str) -> Membership | None:
    return session.get(Membership, (subject_key, community_id))


def memberships_by_id(session: Session, community_id: str, ids: Iterable[str]) -> list[Membership]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    return list(
        session.scalars(
            select(Membership).where(Membership.community_id == community_id, Membership.id.in_(wanted))
        )
    )


def pending_memberships(session: Session, community_id: str, *, limit: int) -> list[Membership]:
    """The community's pending memberships, oldest first."""
    return list(
        session.scalars(
            select(Membership)
            .where(
                Membership.community_id == community_id,
                Membership.status == PENDING,
                Membership.ended_at.is_(None),
            )
            .order_by(Membership.created_at, Membership.id)
            .limit(limit)
        )
    )


def membership_counts(session: Session, community_id: str) -> dict[str, int]:
    """How many memberships the community has in each status."""
    counts = {PENDING: 0, CONFIRMED: 0, ENDED: 0}
    rows = session.execute(
        select(Membership.status, Membership.ended_at.is_(None), func.count())
        .where(Membership.community_id == community_id)
        .group_by(Membership.status, Membership.ended_at.is_(None))
    ).all()
    for status, open_, n in rows:
        key = (status or CONFIRMED) if open_ else ENDED
        counts[key] += int(n)
    return counts


def endings(session: Session, community_id: str, *, since: datetime | None = None) -> list[datetime]:
    """When memberships of the community ended, newest first (nothing else about them)."""
    query = select(Membership.ended_at).where(
        Membership.community_id == community_id, Membership.ended_at.is_not(None)
    )
    if since is not None:
        query = query.where(col(Membership.ended_at) >= since)
    return [at for at in session.scalars(query.order_by(Membership.ended_at.desc())) if at is not None]


def steward_changes(session: Session, community_id: str) -> list[StewardChange]:
    return list(
        session.scalars(
            select(StewardChange)
            .where(StewardChange.community_id == community_id)
            .order_by(StewardChange.proposed_at, StewardChange.id)
        )
    )


def get_steward_change(session: Session, community_id: str, change_id: str) -> StewardChange | None:
    change = session.get(StewardChange, change_id)
    return change if change is not None and change.community_id == community_id else None


def remove_steward(session: Session, community_id: str, organization_id: str) -> None:
    audit_rows.changing(session, CommunitySteward, community_id, organization_id)
    row = session.get(CommunitySteward, (community_id, organization_id))
    if row is not None:
        session.delete(row)
        session.flush()


def memberships_with_versions(session: Session, subject_key: str) -> Sequence[Row]:
    """(community_id, policy_version) of every community the subject belongs to, pending or
    confirmed (an ended membership applies nothing): one indexed query."""
    return session.execute(
        select(Community.id, Community.policy_version)
        .join(Membership, Membership.community_id == Community.id)
        .where(Membership.subject_key == subject_key, Membership.ended_at.is_(None))
        .order_by(Community.id)
    ).all()


# The rule cache's two questions, in Core and built once (a decision after a change asks one).
# Rule order is the order a rule took effect in: its version stamp (unstamped rows, NULL,
# first on both backends), then time and id.
_RULE_COLUMNS = (
    CommunityRule.id,
    CommunityRule.community_id,
    CommunityRule.created_at,
    CommunityRule.effect,
    CommunityRule.purposes,
    CommunityRule.data_categories,
    CommunityRule.requesters,
    CommunityRule.obligations,
    CommunityRule.labels,
    CommunityRule.reason,
    CommunityRule.retired_at,
    CommunityRule.created_version,
)
_RULE_ORDER = (func.coalesce(CommunityRule.created_version, -1), CommunityRule.created_at, CommunityRule.id)
_ACTIVE_RULES = (
    select(*_RULE_COLUMNS)
    .where(CommunityRule.community_id == bindparam("community"), CommunityRule.retired_at.is_(None))
    .order_by(*_RULE_ORDER)
)
_SINCE: Any = bindparam("since")
_RULES_CHANGED_SINCE = (
    select(*_RULE_COLUMNS)
    .where(
        CommunityRule.community_id == bindparam("community"),
        or_(
            CommunityRule.created_version.is_(None),
            CommunityRule.created_version > _SINCE,
            and_(
                CommunityRule.retired_at.is_not(None),
                or_(CommunityRule.retired_version.is_(None), CommunityRule.retired_version > _SINCE),
            ),
        ),
    )
    .order_by(*_RULE_ORDER)
)


def active_rules(session: Session, community_id: str) -> Sequence[Row]:
    """The community's rules in force, in the order they took effect (plain rows)."""
    return session.connection().execute(_ACTIVE_RULES, {"community": community_id}).all()


_RULES_IN_FORCE_COUNT = (
    select(func.count())
    .select_from(CommunityRule)
    .where(CommunityRule.community_id == bindparam("community"), CommunityRule.retired_at.is_(None))
)


def count_rules_in_force(session: Session, community_id: str) -> int:
    """How many rules are in force: answered from ``ix_community_rule_community_active`` alone."""
    return int(session.connection().execute(_RULES_IN_FORCE_COUNT, {"community": community_id}).scalar_one())


def rules_changed_since(session: Session, community_id: str, version: int) -> Sequence[Row]:
    """Rules added or retired after ``version`` (or never stamped), in the order they took effect.

    A row whose ``retired_at`` is set is a retirement; any other is a rule in force.
    """
    return (
        session.connection()
        .execute(_RULES_CHANGED_SINCE, {"community": community_id, "since": version})
        .all()
    )


def rules(session: Session, community_id: str, *, include_retired: bool) -> list[CommunityRule]:
    query = select(CommunityRule).where(CommunityRule.community_id == community_id)
    if not include_retired:
        query = query.where(CommunityRule.retired_at.is_(None))
    return list(session.scalars(query.order_by(*_RULE_ORDER)))


def find_rule(session: Session, rule_id: str) -> CommunityRule | None:
    """A rule by its id alone, whichever community's."""
    return session.get(CommunityRule, rule_id)


def get_rule(session: Session, community_id: str, rule_id: str) -> CommunityRule | None:
    rule = session.get(CommunityRule, rule_id)
    return rule if rule is not None and rule.community_id == community_id else None


def approvals(session: Session, community_id: str, *, include_revoked: bool) -> list[Approval]:
    query = select(Approval).where(Approval.community_id == community_id)
    if not include_revoked:
        query = query.where(Approval.revoked_at.is_(None))
    return list(session.scalars(query.order_by(Approval.created_at, Approval.id)))


def get_approval(session: Session, community_id: str, approval_id: str) -> Approval | None:
    approval = session.get(Approval, approval_id)
    return approval if approval is not None and approval.community_id == community_id else None


def protected_grants(session: Session, community_id: str) -> Sequence[ProtectedGrant]:
    """The community's protected-purpose grants, newest first."""
    return session.scalars(
        select(ProtectedGrant)
        .where(col(ProtectedGrant.community_id) == community_id)
        .order_by(col(ProtectedGrant.at).desc(), col(ProtectedGrant.id).desc())
    ).all()
