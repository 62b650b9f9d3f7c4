"""Who is calling: taken from the bearer token only, never from a request body."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from consent_service.core.permissions import Scope


class Via(StrEnum):
    """How the caller reached the service, which says what each use case re-checks in its snapshot."""

    TOKEN = "token"  # an OAuth client's bearer token: the client must still be active, of this organization
    PERSON = "person"  # a person signed in to the web pages: the account must still be active
    # The person the data is about, signed in to their own view with an access code (no account):
    # the code must still be current (not replaced by a new one).
    SUBJECT = "subject"
    OPERATOR = "operator"  # the command line or the demo on the service's own machine: nothing to re-check


@dataclass(frozen=True)
class Caller:
    organization: str
    client_id: str
    scopes: frozenset[str]
    via: Via

    def has(self, scope: Scope) -> bool:
        return str(scope) in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.has(Scope.ADMIN)
