"""core/idp.py: what a provider's claims make of a person, and which settings are refused."""

from __future__ import annotations

import pytest

from consent_service.core import idp

KNOWN = ["steward", "intake", "consents:read"]


def mapped(claims: dict, **settings: str) -> idp.Identity:
    return idp.identity(
        claims,
        organization_claim=settings.get("org", "org"),
        roles_claim=settings.get("roles", "roles"),
        known_roles=KNOWN,
    )


BASE = {"sub": "s1", "email": "Ana@Example.org", "name": "Ana", "org": "council-a", "roles": ["steward"]}


def test_organization_roles_email_and_name_come_from_the_named_claims() -> None:
    person = mapped({**BASE, "roles": ["steward", "intake", "steward"]})
    assert person == idp.Identity("council-a", ("intake", "steward"), "ana@example.org", "Ana")


def test_roles_unknown_here_are_ignored_and_none_known_is_refused() -> None:
    assert mapped({**BASE, "roles": ["steward", "payroll-admin"]}).roles == ("steward",)
    for roles in (["payroll-admin"], [], None, 7, [{"steward": 1}]):
        with pytest.raises(idp.ClaimsRefused) as refused:
            mapped({**BASE, "roles": roles})
        assert refused.value.reason == "no-known-role"


def test_a_space_separated_roles_claim_and_a_nested_path_are_read() -> None:
    assert mapped({**BASE, "roles": "intake steward"}).roles == ("intake", "steward")
    claims = {**BASE, "resource_access": {"consent": {"roles": ["intake"]}}}
    assert mapped(claims, roles="resource_access.consent.roles").roles == ("intake",)
    # A claim whose own name has dots (a namespaced URL) is read whole first.
    assert mapped(
        {**BASE, "https://x.example/org": "council-b"}, org="https://x.example/org"
    ).organization == ("council-b")


def test_no_organization_or_no_email_is_refused() -> None:
    for org in (None, "", "  ", ["a", "b"], 3, "x" * 65):
        with pytest.raises(idp.ClaimsRefused, match="no-organization"):
            mapped({**BASE, "org": org})
    assert mapped({**BASE, "org": ["council-a"]}).organization == "council-a"
    with pytest.raises(idp.ClaimsRefused, match="no-email"):
        mapped({k: v for k, v in BASE.items() if k != "email"})
    assert mapped({**BASE, "email": None, "preferred_username": "ana@dir.example"}).email == "ana@dir.example"


@pytest.mark.parametrize(
    "issuer",
    ["http://idp.example", "ftp://idp.example", "https://", "https://idp.example/?x=1", "idp.example"],
)
def test_an_issuer_that_is_not_https_or_loopback_stops_the_service(issuer: str) -> None:
    with pytest.raises(ValueError, match="CONSENT_OIDC_ISSUER"):
        idp.check_settings({"OIDC_ISSUER": issuer, "OIDC_CLIENT_ID": "c", "OIDC_SESSION_MAX_MINUTES": 5})


def test_usable_settings_pass_and_a_missing_client_id_does_not() -> None:
    for issuer in ("https://idp.example/realms/x", "http://127.0.0.1:9000", "http://localhost:1"):
        idp.check_settings({"OIDC_ISSUER": issuer, "OIDC_CLIENT_ID": "c", "OIDC_SESSION_MAX_MINUTES": 5})
    idp.check_settings({"OIDC_ISSUER": ""})  # off
    with pytest.raises(ValueError, match="CONSENT_OIDC_CLIENT_ID"):
        idp.check_settings({"OIDC_ISSUER": "https://idp.example", "OIDC_CLIENT_ID": " "})
