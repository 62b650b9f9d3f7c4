"""Validating bearer tokens as a resource server (RFC 9068): signature, typ, iss, aud, exp.

Only the token says who the caller is, and only tokens this service issued (signed with its
own keys) are accepted; there is no external issuer. The token's ``org`` claim must also be
its client's organization, which the database check of the client confirms.
"""

from __future__ import annotations

from joserfc import jwt
from joserfc.errors import JoseError

from consent_service.auth.tokens import ACCESS_TOKEN_TYP
from consent_service.core.caller import Caller, Via
from consent_service.core.keys import InvalidSignature, SigningKeys
from consent_service.errors import Unauthorized

LEEWAY_SECONDS = 0


def verified_caller(token: str, *, keys: SigningKeys, issuer: str, audience: str) -> Caller:
    """The caller a token names, checked without the database (signature and claims only).

    Enough to count requests per client (the rate limiter runs before anything else); not
    enough to serve one, which also needs the check that the client is still active
    (each use case's own transaction: ``Services.reading`` / ``writing``).
    """
    try:
        _, claims = keys.verify(token, typ=ACCESS_TOKEN_TYP)
        jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            client_id={"essential": True},
            org={"essential": True},
        ).validate(claims)
    except (InvalidSignature, JoseError, ValueError, TypeError) as exc:
        raise Unauthorized("The access token is invalid or expired.") from exc
    client_id, org = claims.get("client_id"), claims.get("org")
    if not isinstance(client_id, str) or not isinstance(org, str):
        raise Unauthorized("The access token is invalid or expired.")
    scopes = claims.get("scope") or ""
    return Caller(
        organization=org,
        client_id=client_id,
        scopes=frozenset(scopes.split() if isinstance(scopes, str) else ()),
        via=Via.TOKEN,
    )
