"""services.users.sign_in_federated and link_provider: accounts of people who sign in through an
OpenID provider (the flow itself, against a real provider, is tests/test_oidc.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import config_for
from web_helpers import CHEAP_PASSWORDS, PASSWORD

from consent_service.core.wire import AuditTag
from consent_service.errors import Conflict
from consent_service.services import users
from consent_service.storage import users as store
from consent_service.storage.models import AuditEntry, UserAccount

ISSUER = "https://idp.example"
CLAIMS = {"email": "ana@council.example", "name": "Ana", "organization": "council", "roles": ["steward"]}


@pytest.fixture
def app_config(database_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {**config_for(database_config, tmp_path), **CHEAP_PASSWORDS}


@pytest.fixture
def services(world: Any) -> Any:
    world.org("council", "community-governance")
    world.org("clinic")
    return world.services


def now() -> datetime:
    return datetime.now(UTC)


def entries(services: Any) -> list[tuple[str, str | None, dict[str, Any]]]:
    with services.sessions() as session:
        rows = session.query(AuditEntry).order_by(AuditEntry.seq).all()
        # Without the rows' digests (tests/test_audit_rows.py checks those).
        return [
            (row.tag, row.object_id, {k: v for k, v in row.payload.items() if k != "rows"}) for row in rows
        ]


def account(services: Any, subject: str = "s-1") -> UserAccount | None:
    with services.sessions() as session:
        user = store.by_idp(session, ISSUER, subject)
        if user is not None:
            session.expunge(user)
        return user


def federated(services: Any, subject: str = "s-1", **claims: Any) -> users.SignedInUser:
    subject = claims.pop("sub", subject)  # a test may give the subject among the claims
    return users.sign_in_federated(
        services, issuer=ISSUER, subject=subject, claims={**CLAIMS, **claims}, now=now()
    )


def test_the_first_sign_in_makes_the_account_and_the_next_follows_the_claims(services: Any) -> None:
    before = len(entries(services))
    first = federated(services)
    assert (first.organization, first.scopes) == ("council", frozenset({"rules:write", "community:read"}))
    made = account(services)
    assert made is not None and made.password_hash == "" and made.email == "ana@council.example"
    assert [(tag, oid) for tag, oid, _ in entries(services)[before:]] == [
        (AuditTag.USER_CREATED, first.id),
        (AuditTag.USER_SIGNED_IN, first.id),
    ]
    again = len(entries(services))
    second = federated(services, roles=["intake"], organization="clinic")
    assert second.id == first.id and second.organization == "clinic"
    assert second.scopes == frozenset({"consents:write", "consents:read"})
    changed = entries(services)[again:]
    assert [tag for tag, _, _ in changed] == [AuditTag.USER_CHANGED, AuditTag.USER_SIGNED_IN]
    assert changed[0][2]["previous_organization"] == "council" and changed[0][2]["organization"] == "clinic"
    # The same claims again change nothing: only the sign-in is recorded.
    third = len(entries(services))
    federated(services, roles=["intake"], organization="clinic")
    assert [tag for tag, _, _ in entries(services)[third:]] == [AuditTag.USER_SIGNED_IN]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"organization": "nowhere"}, "unknown-organization"),
        ({"organization": None}, "no-organization"),
        ({"roles": ["payroll"]}, "no-known-role"),
        ({"roles": ["audit:read"]}, "role-not-for-organization"),
        ({"sub": "s" * 256}, "unusable-subject"),
    ],
)
def test_claims_that_make_no_person_here_are_refused_and_recorded(
    services: Any, claims: dict[str, Any], reason: str
) -> None:
    before = len(entries(services))
    with pytest.raises(users.FederatedSignInRefused) as refused:
        federated(services, **claims)
    assert refused.value.reason == reason and account(services) is None
    assert entries(services)[before:] == [
        (AuditTag.USER_SIGN_IN_FAILED, None, {"reason": reason, "via": "oidc"})
    ]


def test_a_person_disabled_here_is_refused_though_the_provider_vouches(services: Any) -> None:
    user = federated(services)
    users.disable(services, email=CLAIMS["email"], now=now())
    with pytest.raises(users.FederatedSignInRefused, match="disabled"):
        federated(services)
    assert entries(services)[-1] == (
        AuditTag.USER_SIGN_IN_FAILED,
        user.id,
        {"reason": "disabled", "via": "oidc"},
    )


def test_an_existing_account_with_the_same_email_is_never_taken_over(services: Any) -> None:
    owner = users.create_user(
        services,
        caller=None,
        email=CLAIMS["email"],
        name="Ana Owner",
        organization="clinic",
        roles=["intake"],
        password=PASSWORD,
        language="en",
        now=now(),
    )
    with pytest.raises(users.FederatedSignInRefused, match="email-in-use"):
        federated(services, subject="attacker")
    assert account(services, "attacker") is None
    with services.sessions() as session:
        kept = store.get(session, owner.id)
        assert kept is not None and kept.idp_issuer is None and kept.organization_id == "clinic"
    # The operator links them deliberately; then the provider account signs in to that account.
    users.link_provider(services, email=CLAIMS["email"], issuer=ISSUER, subject="s-ana", now=now())
    assert entries(services)[-1][2] == {"change": "provider-linked", "issuer": ISSUER}
    assert federated(services, subject="s-ana").id == owner.id
    with pytest.raises(Conflict):
        users.link_provider(services, email="someone@else.example", issuer=ISSUER, subject="s-ana", now=now())


def test_a_federated_account_cannot_sign_in_with_a_password(services: Any) -> None:
    federated(services)
    for password in ("", PASSWORD):
        with pytest.raises(users.SignInRefused):
            users.sign_in(services, email=CLAIMS["email"], password=password, now=now())


def test_with_local_passwords_off_no_password_signs_in(world: Any) -> None:
    services = world.services
    users.create_user(
        services,
        caller=None,
        email="pat@clinic.example",
        name="Pat",
        organization=world.org("clinic"),
        roles=["intake"],
        password=PASSWORD,
        language="en",
        now=now(),
    )
    users.sign_in(services, email="pat@clinic.example", password=PASSWORD, now=now())
    services.settings["LOCAL_PASSWORDS"] = False
    try:
        with pytest.raises(users.SignInRefused):
            users.sign_in(services, email="pat@clinic.example", password=PASSWORD, now=now())
    finally:
        services.settings["LOCAL_PASSWORDS"] = True
    assert entries(services)[-1] == (AuditTag.USER_SIGN_IN_FAILED, None, {"reason": "passwords-off"})
