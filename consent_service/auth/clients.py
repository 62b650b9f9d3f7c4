"""The client object Authlib's token endpoint expects (a plain object, not a table)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list
from sqlalchemy.orm import Session, sessionmaker

from consent_service.core.credentials import secret_matches
from consent_service.storage import organizations as organization_store
from consent_service.storage.db import read_snapshot

AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post"})


@dataclass(frozen=True)
class ClientCredentials(ClientMixin):
    """An active client as Authlib's token endpoint sees it (a plain object, not a table)."""

    client_id: str
    secret_hash: str = field(repr=False)  # Authlib logs the client's repr
    organization: str
    scopes: frozenset[str]

    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes (already checked to be the client's), or all of them if none asked."""
        if not scope:
            return list_to_scope(sorted(self.scopes))
        return list_to_scope([s for s in scope_to_list(scope) if s in self.scopes])


def client_lookup(sessions: sessionmaker[Session]) -> Callable[[str], ClientCredentials | None]:
    """How the token endpoint finds a client: active ones only, read fresh on every request."""

    def query_client(client_id: str) -> ClientCredentials | None:
        with read_snapshot(sessions) as session:
            row = organization_store.get_client(session, client_id)
            if row is None or row.disabled_at is not None:
                return None
            return ClientCredentials(
                client_id=row.client_id,
                secret_hash=row.secret_hash,
                organization=row.organization_id,
                scopes=frozenset(row.scopes.split()),
            )

    return query_client
