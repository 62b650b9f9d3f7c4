"""Organizations and their OAuth clients."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from consent_service.storage import audit_rows
from consent_service.storage.models import OAuthClient, Organization


def get_organization(session: Session, org_id: str) -> Organization | None:
    return session.get(Organization, org_id)


def existing_organizations(session: Session, ids: Iterable[str]) -> set[str]:
    wanted = set(ids)
    if not wanted:
        return set()
    return set(session.scalars(select(Organization.id).where(Organization.id.in_(wanted))))


def add(session: Session, row: Organization | OAuthClient) -> None:
    session.add(row)
    session.flush()
    audit_rows.added_rows(session, row)


def get_client(session: Session, client_id: str) -> OAuthClient | None:
    return session.get(OAuthClient, client_id)


# Built once and run as Core on the session's connection: every API call checks its client.
_CLIENT_STATE = select(OAuthClient.disabled_at, OAuthClient.organization_id).where(
    OAuthClient.client_id == bindparam("client_id")
)


def client_is_active(session: Session, client_id: str, organization: str) -> bool:
    """The client exists, is not disabled, and belongs to ``organization``: a token whose
    ``org`` claim names another organization than its client's is not honoured, however well
    it is signed (issue 12)."""
    row = session.connection().execute(_CLIENT_STATE, {"client_id": client_id}).first()
    return row is not None and row[0] is None and row[1] == organization


def list_clients(session: Session, organization: str | None = None) -> list[OAuthClient]:
    query = select(OAuthClient).order_by(OAuthClient.created_at)
    if organization:
        query = query.where(OAuthClient.organization_id == organization)
    return list(session.scalars(query))


def has_any_client(session: Session, organization: str) -> bool:
    """Whether the organization has ever had a client (active or disabled)."""
    query = select(OAuthClient.client_id).where(OAuthClient.organization_id == organization).limit(1)
    return session.scalars(query).first() is not None
