"""What a caller may do: the OAuth scopes a client or a person's roles carry (contract, "Scopes"),
and the roles a person may be given, read from policies/roles.toml at start (data, not Python).

A role file that is malformed or names a scope that does not exist raises :class:`RolesError`
naming the file, so the service never starts with a role that grants nothing or something
unintended.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Scope(StrEnum):
    ADMIN = "admin"
    CONSENTS_WRITE = "consents:write"
    CONSENTS_READ = "consents:read"
    AUTHORIZE = "authorize"
    RULES_WRITE = "rules:write"
    AUDIT_READ = "audit:read"
    COMMUNITY_READ = "community:read"
    METRICS_READ = "metrics:read"  # GET /metrics: the operator's monitoring, never a person's
    WEBHOOKS_WRITE = "webhooks:write"  # register, list and delete change-event webhooks


ROLES_FILE = "roles.toml"
# People act through the pages only: administering the service and asking for decisions
# belong to API clients.
PERSON_SCOPES = frozenset(str(s) for s in Scope) - {
    str(Scope.ADMIN),
    str(Scope.AUTHORIZE),
    str(Scope.METRICS_READ),
}


class RolesError(ValueError):
    """policies/roles.toml is malformed or names an unknown scope: the service does not start."""


@dataclass(frozen=True)
class Role:
    """A named set of scopes a person may be given, with its name in each language."""

    name: str
    scopes: frozenset[str]
    label: str
    labels: dict[str, str] = field(default_factory=dict)  # language -> label

    def label_in(self, language: str) -> str:
        return self.labels.get(language, self.label)


def load_roles(policies_dir: Path | str) -> dict[str, Role]:
    """Read and check ``policies_dir``/roles.toml: every role grants at least one person scope."""
    path = Path(policies_dir) / ROLES_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RolesError(f"{path}: {exc}") from exc
    return parse_roles(data, source=str(path))


def parse_roles(data: dict[str, Any], *, source: str) -> dict[str, Role]:
    """The roles of a parsed roles file; ``RolesError`` naming ``source`` and the role at fault."""
    if set(data) - {"roles"} or not isinstance(data.get("roles"), dict):
        raise RolesError(f"{source}: the file holds one table, [roles.NAME] per role")
    roles: dict[str, Role] = {}
    for name, body in data["roles"].items():
        where = f"{source}: role {name!r}"
        if not isinstance(body, dict):
            raise RolesError(f"{where} is not a table")
        unknown_keys = [k for k in body if not (k in {"scopes", "label"} or k.startswith("label_"))]
        if unknown_keys:
            raise RolesError(f"{where}: unknown key(s) {', '.join(sorted(unknown_keys))}")
        scopes = body.get("scopes")
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
            raise RolesError(f"{where}: scopes must be a non-empty list of scope names")
        unknown = sorted(set(scopes) - {str(s) for s in Scope})
        if unknown:
            raise RolesError(
                f"{where}: unknown scope(s) {', '.join(unknown)} (one of {', '.join(str(s) for s in Scope)})"
            )
        not_for_people = sorted(set(scopes) - PERSON_SCOPES)
        if not_for_people:
            raise RolesError(f"{where}: {', '.join(not_for_people)} is never a person's scope")
        if name in PERSON_SCOPES:
            raise RolesError(f"{where}: a role may not be named like a scope")
        label = body.get("label", name)
        labels = {k.removeprefix("label_"): v for k, v in body.items() if k.startswith("label_")}
        if not isinstance(label, str) or not all(isinstance(v, str) for v in labels.values()):
            raise RolesError(f"{where}: labels are strings")
        roles[name] = Role(name=name, scopes=frozenset(scopes), label=label, labels=labels)
    return roles
