"""Who and what exists, for the choices offered on the web pages' forms."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_service.storage.models import Community, CommunitySteward, Organization


def organizations(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.name, Organization.id)))


def communities(session: Session) -> list[Community]:
    return list(session.scalars(select(Community).order_by(Community.name, Community.id)))


def stewarded_by(session: Session, organization: str) -> list[Community]:
    """The communities whose stewards include ``organization``."""
    return list(
        session.scalars(
            select(Community)
            .join(CommunitySteward, CommunitySteward.community_id == Community.id)
            .where(CommunitySteward.organization_id == organization)
            .order_by(Community.name, Community.id)
        )
    )
