"""Use cases of the organizations resource (``/v1/organizations``, ``/v1/clients``, a community's
clients): organizations and their OAuth clients, and who may create which client. They return
the frozen dataclasses below, which ``schemas.organizations`` dumps (answers and audit payloads).

* ``audit:read`` is oversight of the whole deployment: only clients (and people) of the
  ``admin`` organization or of an ``oversight`` organization may hold it (400 otherwise).
* Once an organization stewards a community, the operator no longer makes its credentials:
  admin may create a steward organization's very first client (the credential it hands over
  when the community is set up), and nothing after that: once the organization has had any
  client, active or disabled, admin gets 403 for every client of it, ``rules:write`` and
  ``community:read`` (which act for the community) included, so disabling a council's clients
  never lets the operator mint its own way in. The community's stewards create those clients
  themselves (``POST /v1/communities/{id}/clients``, or ``POST /v1/clients`` with their
  ``rules:write`` client, for their own organization only, and never ``admin``). Only the
  bootstrap command line (no caller) is not refused (audited).
* Every client of a community's steward organizations (each can act for the community) is
  listed to the community's stewards, who can disable it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.credentials import hash_secret, new_client_id, new_client_secret
from consent_service.core.permissions import Scope
from consent_service.core.wire import AuditTag, ManagementAction, OrgType
from consent_service.errors import Conflict, Forbidden, NotFound, UnknownCode, ValidationFailed
from consent_service.schemas.organizations import ClientOut, OrganizationOut
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import communities as community_store
from consent_service.storage import directory
from consent_service.storage import organizations as store
from consent_service.storage.models import OAuthClient, Organization

ADMIN_ORGANIZATION = "admin"
# The audit payloads of these events: the answers' schemas, fewer fields (older entries hold these).
_CREATED_PAYLOAD = OrganizationOut(only=("name", "type"))
_CLIENT_CREATED_PAYLOAD = ClientOut(only=("organization", "name", "scopes"))
_CLIENT_DISABLED_PAYLOAD = ClientOut(only=("organization",))


def check_oversight(org: Organization, scopes: Iterable[str], *, field: str = "scopes") -> None:
    """400 naming ``field`` when ``scopes`` include audit:read for an organization that is not
    the admin organization or an oversight organization; and metrics:read (the whole
    deployment's counts) for any organization but admin, the operator's."""
    if str(Scope.METRICS_READ) in scopes and org.id != ADMIN_ORGANIZATION:
        raise ValidationFailed(
            "metrics:read is the operator's monitoring of the whole deployment: only the admin "
            "organization may hold it.",
            details={field: [f"metrics:read is not for organization {org.id}"]},
        )
    if str(Scope.AUDIT_READ) in scopes and org.id != ADMIN_ORGANIZATION and org.type != OrgType.OVERSIGHT:
        raise ValidationFailed(
            "audit:read is oversight of the whole deployment: only the admin organization or an "
            "oversight organization may hold it.",
            details={
                field: [
                    f"audit:read is not for organization {org.id} (type {org.type}); "
                    "a community's stewards read their community with community:read"
                ]
            },
        )


def _check_creator(session: Session, caller: Caller, org: Organization, scopes: list[str]) -> None:
    """Who may create a client of ``org`` (a ``None`` caller is the bootstrap CLI)."""
    stewarding = directory.stewarded_by(session, org.id)
    if caller.is_admin:
        if stewarding and store.has_any_client(session, org.id):
            acting = sorted(set(scopes) & {str(Scope.RULES_WRITE), str(Scope.COMMUNITY_READ)})
            raise Forbidden(
                f"Organization {org.id} stewards a community and has had a client: it creates its own "
                "clients (POST /v1/communities/{id}/clients)"
                + (f"; a client with {' '.join(acting)} acts for the community." if acting else ".")
            )
        return
    if not caller.has(Scope.RULES_WRITE) or org.id != caller.organization:
        raise Forbidden("A steward's rules:write client creates clients of its own organization only.")
    if not stewarding:
        raise Forbidden(f"Organization {org.id} stewards no community; admin creates its clients.")
    if str(Scope.ADMIN) in scopes:
        raise Forbidden("Only admin creates clients with the admin scope.")


@dataclass(frozen=True)
class OrganizationRecord:
    """An organization as the API shows it (``OrganizationOut``)."""

    id: str
    name: str
    type: str
    created_at: datetime

    @classmethod
    def of(cls, org: Organization) -> OrganizationRecord:
        return cls(id=org.id, name=org.name, type=org.type, created_at=org.created_at)


@dataclass(frozen=True)
class ClientRecord:
    """A client as the API shows it (``ClientOut``; never its secret, which only :class:`NewClient` has)."""

    client_id: str
    organization: str
    name: str
    scopes: list[str]
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, client: OAuthClient) -> ClientRecord:
        return cls(
            client_id=client.client_id,
            organization=client.organization_id,
            name=client.name,
            scopes=client.scopes.split(),
            created_at=client.created_at,
            disabled_at=client.disabled_at,
        )


@dataclass(frozen=True)
class NewClient:
    """A client just created: its secret is in this answer only (``ClientOut`` without disabled_at)."""

    client_id: str
    client_secret: str
    organization: str
    name: str
    scopes: list[str]
    created_at: datetime


@dataclass(frozen=True)
class CommunityClients:
    """Every client of a community's steward organizations (``ClientListOut``)."""

    community: str
    clients: list[ClientRecord]


def _add_organization(
    session: Session,
    services: Services,
    *,
    caller: Caller | None,
    id: str,
    name: str,
    type: str,
    now: datetime,
) -> Organization:
    """Add the organization and its audit entry to the caller's unit of work."""
    org = Organization(id=id, name=name, type=str(OrgType(type)), created_at=now)
    store.add(session, org)
    services.append_audit(
        session,
        at=now,
        tag=AuditTag.ORGANIZATION_CREATED,
        caller=caller,
        object_id=id,
        payload=_CREATED_PAYLOAD.dump(OrganizationRecord.of(org)),
    )
    return org


def create_organization(
    services: Services, *, caller: Caller | None, id: str, name: str, type: str, now: datetime
) -> OrganizationRecord:
    with services.writing(caller) as session:
        if store.get_organization(session, id) is not None:
            raise Conflict(f"Organization {id} already exists.")
        try:
            org = _add_organization(session, services, caller=caller, id=id, name=name, type=type, now=now)
        except IntegrityError as exc:
            raise Conflict(f"Organization {id} already exists.") from exc
        session.commit()
        return OrganizationRecord.of(org)


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
    with services.writing(caller) as session:
        org = store.get_organization(session, organization)
        if org is None:
            if create_organization_type is None:
                raise UnknownCode(
                    "The organization does not exist.",
                    details={"organization": [f"unknown organization: {organization}"]},
                )
            org = _add_organization(
                session,
                services,
                caller=caller,
                id=organization,
                name=organization,
                type=create_organization_type,
                now=now,
            )
        check_oversight(org, scopes)
        if caller is not None:
            _check_creator(session, caller, org, scopes)
        created = _insert_client(
            session,
            services,
            caller=caller,
            organization=organization,
            name=name,
            scopes=scopes,
            secret=secret,
            now=now,
        )
        session.commit()
    return created


def create_community_client(
    services: Services, *, caller: Caller, community_id: str, name: str, scopes: list[str], now: datetime
) -> NewClient:
    """A steward creates a client of its own organization that acts for the community
    (``rules:write`` and/or ``community:read``; the schema allows no other scope). Audited as
    any client's creation; the secret is in this answer only."""
    from consent_service.services.stewards import require_steward as _require_steward

    scopes = sorted({str(Scope(s)) for s in scopes})
    secret = new_client_secret()
    with services.writing(caller) as session:
        _require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.CLIENTS_CREATE,
        )
        created = _insert_client(
            session,
            services,
            caller=caller,
            organization=caller.organization,
            name=name,
            scopes=scopes,
            secret=secret,
            now=now,
        )
        session.commit()
    return created


def _insert_client(
    session: Session,
    services: Services,
    *,
    caller: Caller | None,
    organization: str,
    name: str,
    scopes: list[str],
    secret: str,
    now: datetime,
) -> NewClient:
    """Add the client and its audit entry to the caller's unit of work."""
    client = OAuthClient(
        client_id=new_client_id(),
        secret_hash=hash_secret(secret),
        organization_id=organization,
        name=name,
        scopes=" ".join(scopes),
        created_at=now,
    )
    store.add(session, client)
    created = NewClient(client.client_id, secret, organization, name, scopes, now)
    services.append_audit(
        session,
        at=now,
        tag=AuditTag.CLIENT_CREATED,
        caller=caller,
        object_id=client.client_id,
        payload=_CLIENT_CREATED_PAYLOAD.dump(created),
    )
    return created


def community_clients(services: Services, *, caller: Caller, community_id: str) -> CommunityClients:
    """Every client of the community's steward organizations: each can act for the community."""
    from consent_service.services.stewards import require_steward as _require_steward

    with services.reading(caller) as session:
        _require_steward(
            session, services, caller=caller, community_id=community_id, action=ManagementAction.RULES_LIST
        )
        return CommunityClients(
            community=community_id,
            clients=[
                ClientRecord.of(client)
                for org in community_store.stewards(session, community_id)
                for client in store.list_clients(session, org)
            ],
        )


def disable_client(
    services: Services,
    *,
    caller: Caller | None,
    client_id: str,
    now: datetime,
    community_id: str | None = None,
) -> ClientRecord:
    """Disable a client (admin), or, with ``community_id``, one of a community's steward
    organizations' clients (that community's stewards; 404 for any other client)."""
    from consent_service.services.stewards import require_steward as _require_steward

    with services.writing(caller) as session:
        if community_id is not None:
            assert caller is not None
            _require_steward(
                session,
                services,
                caller=caller,
                community_id=community_id,
                action=ManagementAction.RULES_CREATE,
            )
        client = store.get_client(session, client_id)
        if client is None or (
            community_id is not None
            and client.organization_id not in community_store.stewards(session, community_id)
        ):
            raise NotFound("No such client.")
        if client.disabled_at is not None:
            raise Conflict("The client is already disabled.")
        bound_rows.changing(session, OAuthClient, client_id)
        client.disabled_at = now
        session.flush()
        disabled = ClientRecord.of(client)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.CLIENT_DISABLED,
            caller=caller,
            object_id=client_id,
            payload=_CLIENT_DISABLED_PAYLOAD.dump(disabled),
        )
        session.commit()
        return disabled
