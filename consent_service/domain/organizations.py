"""Administration: organizations and their OAuth clients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound, UnknownCode
from ..storage import audit_rows as bound_rows
from ..storage import organizations as store
from ..storage.db import write
from ..storage.models import OAuthClient, Organization
from .caller import Caller
from .credentials import hash_secret, new_client_id, new_client_secret
from .services import Services
from .wire import AuditTag, OrgType, Scope


def _org_dict(org: Organization) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "type": org.type, "created_at": org.created_at}


def _add_organization(session: Session, services: Services, *, caller: Caller | None, id: str, name: str,
                      type: str, now: datetime) -> Organization:
    """Add the organization and its audit entry to the caller's unit of work."""
    org = Organization(id=id, name=name, type=str(OrgType(type)), created_at=now)
    store.add(session, org)
    services.append_audit(session, at=now, tag=AuditTag.ORGANIZATION_CREATED, caller=caller, object_id=id,
                          payload={"name": name, "type": type})
    return org


def create_organization(
    services: Services, *, caller: Caller | None, id: str, name: str, type: str, now: datetime
) -> dict[str, Any]:
    with write(services.sessions) as session:
        if store.get_organization(session, id) is not None:
            raise Conflict(f"Organization {id} already exists.")
        try:
            org = _add_organization(session, services, caller=caller, id=id, name=name, type=type, now=now)
        except IntegrityError as exc:
            raise Conflict(f"Organization {id} already exists.") from exc
        session.commit()
        return _org_dict(org)


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str
    organization: str
    name: str
    scopes: list[str]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "organization": self.organization,
            "name": self.name,
            "scopes": self.scopes,
            "created_at": self.created_at,
        }


def create_client(
    services: Services,
    *,
    caller: Caller | None,
    organization: str,
    name: str,
    scopes: list[str],
    now: datetime,
    create_organization_type: str | None = None,
) -> NewClient:
    """Create a client; its secret is shown only in this answer and stored hashed.

    ``create_organization_type`` creates the organization if missing (the bootstrap CLI).
    """
    scopes = sorted({str(Scope(s)) for s in scopes})
    secret = new_client_secret()
    with write(services.sessions) as session:
        if store.get_organization(session, organization) is None:
            if create_organization_type is None:
                raise UnknownCode(
                    "The organization does not exist.",
                    details={"organization": [f"unknown organization: {organization}"]},
                )
            _add_organization(session, services, caller=caller, id=organization, name=organization,
                              type=create_organization_type, now=now)
        client = OAuthClient(
            client_id=new_client_id(),
            secret_hash=hash_secret(secret),
            organization_id=organization,
            name=name,
            scopes=" ".join(scopes),
            created_at=now,
        )
        store.add(session, client)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CLIENT_CREATED,
            caller=caller,
            object_id=client.client_id,
            payload={"organization": organization, "name": name, "scopes": scopes},
        )
        session.commit()
    return NewClient(client.client_id, secret, organization, name, scopes, now)


def disable_client(
    services: Services, *, caller: Caller | None, client_id: str, now: datetime
) -> dict[str, Any]:
    with write(services.sessions) as session:
        client = store.get_client(session, client_id)
        if client is None:
            raise NotFound("No such client.")
        if client.disabled_at is not None:
            raise Conflict("The client is already disabled.")
        bound_rows.changing(session, OAuthClient, client_id)
        client.disabled_at = now
        session.flush()
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CLIENT_DISABLED,
            caller=caller,
            object_id=client_id,
            payload={"organization": client.organization_id},
        )
        session.commit()
        return {
            "client_id": client.client_id,
            "organization": client.organization_id,
            "name": client.name,
            "scopes": client.scopes.split(),
            "created_at": client.created_at,
            "disabled_at": client.disabled_at,
        }
