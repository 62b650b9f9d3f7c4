"""What a caller may do: the OAuth scopes a client or a person's roles carry (contract, "Scopes")."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    ADMIN = "admin"
    CONSENTS_WRITE = "consents:write"
    CONSENTS_READ = "consents:read"
    AUTHORIZE = "authorize"
    RULES_WRITE = "rules:write"
    AUDIT_READ = "audit:read"
    COMMUNITY_READ = "community:read"
