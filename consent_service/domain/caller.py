"""Who is calling: taken from the bearer token only, never from a request body."""

from __future__ import annotations

from dataclasses import dataclass

from .wire import Scope


@dataclass(frozen=True)
class Caller:
    organization: str
    client_id: str
    scopes: frozenset[str]

    def has(self, scope: Scope) -> bool:
        return str(scope) in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.has(Scope.ADMIN)
