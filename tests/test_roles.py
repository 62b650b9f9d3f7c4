"""Roles as data: policies/roles.toml, read and checked at start (core.permissions)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from consent_service.config import DEFAULT_POLICIES_DIR
from consent_service.core.permissions import PERSON_SCOPES, ROLES_FILE, RolesError, Scope, load_roles
from consent_service.core.policy import PolicyBase


def roles_file(tmp_path: Path, text: str) -> Path:
    policies = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES_DIR, policies)
    (policies / ROLES_FILE).write_text(text)
    return policies


def test_the_shipped_roles() -> None:
    roles = load_roles(DEFAULT_POLICIES_DIR)
    assert roles["steward"].scopes == {str(Scope.RULES_WRITE), str(Scope.COMMUNITY_READ)}
    assert roles["intake"].scopes == {str(Scope.CONSENTS_WRITE), str(Scope.CONSENTS_READ)}
    assert roles["steward"].label_in("fr") != roles["steward"].label_in("en") == roles["steward"].label
    assert all(role.scopes <= PERSON_SCOPES for role in roles.values())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[roles.x]\nscopes = ["rules:write", "rules:delete"]\n', "unknown scope(s) rules:delete"),
        ('[roles.x]\nscopes = ["admin"]\n', "admin is never a person's scope"),
        ("[roles.x]\nscopes = []\n", "non-empty list"),
        ('[roles.x]\nscopes = ["consents:read"]\ncolour = "red"\n', "unknown key(s) colour"),
        ('[roles."audit:read"]\nscopes = ["audit:read"]\n', "named like a scope"),
        ("[roles.x\n", "roles.toml"),
    ],
)
def test_a_wrong_role_file_refuses_to_start_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    policies = roles_file(tmp_path, text)
    with pytest.raises(RolesError) as refused:
        PolicyBase(policies)
    assert str(policies / ROLES_FILE) in str(refused.value)
    assert problem in str(refused.value)


def test_a_person_is_given_the_scopes_of_the_roles_the_file_names(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from consent_service.errors import ValidationFailed
    from consent_service.services.users import scopes_for

    policies = roles_file(tmp_path, '[roles.reviewer]\nscopes = ["community:read"]\nlabel = "Reviewer"\n')
    services = SimpleNamespace(policy=SimpleNamespace(roles=load_roles(policies)))
    assert scopes_for(services, ["reviewer", "consents:read"]) == ["community:read", "consents:read"]  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed) as refused:
        scopes_for(services, ["steward"])  # type: ignore[arg-type]
    assert "unknown role: steward (one of reviewer," in refused.value.details["roles"][0]
