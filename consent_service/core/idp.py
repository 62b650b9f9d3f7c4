"""What an OpenID provider's claims say about a person here: organization, roles, name, email.

Pure: the claims are the ID token's (and userinfo's), already verified by the web layer; the
settings name which claims to read. A claim name may be a dotted path into nested objects
(Keycloak puts client roles under ``resource_access.<client>.roles``; a name with a dot of its
own, as a namespaced URL claim, is tried whole first).

The provider may send roles this service does not know (a directory has many applications):
those are ignored, and a person with no known role at all is refused, as is one whose
organization claim is missing. Nothing here finds an account: accounts are found by issuer and
subject only (docs/security.md, "Single sign-on").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_CLAIM = 254  # longer organization ids, roles or emails are not ones this service stores


class ClaimsRefused(Exception):
    """The claims cannot make a person here; ``reason`` is for the audit log (a short code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """A person as the provider describes them, in this service's terms."""

    organization: str
    roles: tuple[str, ...]  # known role names (or person scopes), sorted, without duplicates
    email: str
    name: str


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The value of ``name`` (whole, else as a dotted path), or None."""
    if not name:
        return None
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str]:
    """A list of strings, or one space-separated string, as a list (anything else: empty)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def identity(
    claims: Mapping[str, Any],
    *,
    organization_claim: str,
    roles_claim: str,
    known_roles: Collection[str],
) -> Identity:
    """The person the claims describe; ``ClaimsRefused`` when they name no organization, no
    known role, or no usable email (the email names the account in the operator's commands)."""
    organization = claim(claims, organization_claim)
    if isinstance(organization, list) and len(organization) == 1:
        organization = organization[0]  # directories often give every attribute as a list
    if not isinstance(organization, str) or not organization.strip() or len(organization) > 64:
        raise ClaimsRefused("no-organization")
    roles = sorted({role for role in _strings(claim(claims, roles_claim)) if role in known_roles})
    if not roles:
        raise ClaimsRefused("no-known-role")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        username = claims.get("preferred_username")
        email = username if isinstance(username, str) and "@" in username else None
    if email is None or len(email) > MAX_CLAIM or not email.isprintable() or " " in email:
        raise ClaimsRefused("no-email")
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip():
        name = email
    return Identity(
        organization=organization.strip(),
        roles=tuple(roles),
        email=email.strip().lower(),
        name=name.strip()[:200],
    )


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse (``ValueError`` naming the setting) a configuration that would sign people in
    insecurely or not at all: the issuer over plain HTTP other than loopback, or no client id."""
    issuer = str(settings.get("OIDC_ISSUER") or "")
    if not issuer:
        return
    parts = urlsplit(issuer)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if not (parts.scheme == "https" or loopback) or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"CONSENT_OIDC_ISSUER={issuer!r} is not usable: an https URL without query or fragment "
            "(plain http only on 127.0.0.1, ::1 or localhost, for trials)."
        )
    if not str(settings.get("OIDC_CLIENT_ID") or "").strip():
        raise ValueError("CONSENT_OIDC_ISSUER is set but CONSENT_OIDC_CLIENT_ID is empty; set both.")
    if int(settings.get("OIDC_SESSION_MAX_MINUTES") or 0) <= 0:
        raise ValueError("CONSENT_OIDC_SESSION_MAX_MINUTES must be a positive number of minutes.")


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (a Content-Security-Policy source)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
