"""A community's data sharing agreements, their documents and duties, and what a decision needs
of them (one query each for a requester's approvals, whatever the number of communities)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from consent_service.storage.bulk import chunked
from consent_service.storage.models import Agreement, AgreementDocument, Approval, Duty


def get(session: Session, community_id: str, agreement_id: str) -> Agreement | None:
    agreement = session.get(Agreement, agreement_id)
    return agreement if agreement is not None and agreement.community_id == community_id else None


def of_community(session: Session, community_id: str) -> list[Agreement]:
    query = select(Agreement).where(Agreement.community_id == community_id)
    return list(session.scalars(query.order_by(Agreement.review_at, Agreement.id)))


def duties_of(session: Session, agreement_ids: Iterable[str]) -> dict[str, list[Duty]]:
    """Each agreement's duties, soonest due first."""
    wanted = sorted(set(agreement_ids))
    found: dict[str, list[Duty]] = {aid: [] for aid in wanted}
    if not wanted:
        return found
    query = select(Duty).where(Duty.agreement_id.in_(wanted)).order_by(Duty.due_at, Duty.id)
    for duty in session.scalars(query):
        found[duty.agreement_id].append(duty)
    return found


def approvals_of(session: Session, agreement_ids: Iterable[str]) -> dict[str, list[str]]:
    """The ids of the approvals granted under each agreement."""
    wanted = sorted(set(agreement_ids))
    found: dict[str, list[str]] = {aid: [] for aid in wanted}
    if not wanted:
        return found
    query = select(Approval.agreement_id, Approval.id).where(Approval.agreement_id.in_(wanted))
    for agreement_id, approval_id in session.execute(query.order_by(Approval.created_at, Approval.id)):
        found[agreement_id].append(approval_id)
    return found


def get_duty(session: Session, agreement_id: str, duty_id: str) -> Duty | None:
    duty = session.get(Duty, duty_id)
    return duty if duty is not None and duty.agreement_id == agreement_id else None


def document(session: Session, agreement_id: str) -> AgreementDocument | None:
    return session.get(AgreementDocument, agreement_id)


# -- for decisions --------------------------------------------------------------------------

_UNMET_DUTIES = select(Duty.id, Duty.community_id, Duty.kind, Duty.description, Duty.due_at).where(
    Duty.community_id.in_(bindparam("communities", expanding=True)),
    Duty.owed_by == bindparam("requester"),
    Duty.met_at.is_(None),
)


def unmet_duties(session: Session, *, communities: Iterable[str], requester: str) -> Sequence[Row]:
    """The duties ``requester`` owes any of these communities and that no steward marked met
    (whether they are due yet is the engine's question, against the decision's ``now``)."""
    wanted = sorted(set(communities))
    found: list[Row] = []
    conn = session.connection()
    for chunk in chunked(wanted):
        found.extend(conn.execute(_UNMET_DUTIES, {"communities": list(chunk), "requester": requester}))
    return found
