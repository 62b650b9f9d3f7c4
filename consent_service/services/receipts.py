"""Checking a receipt for those without a JOSE library.

Both kinds of receipt the service issues are compact JWS signed with one of its keys: consent
receipts (``consent-receipt+jwt``) and decision receipts (``decision-receipt+jwt``). A receipt
is valid when it is one of those and its signature verifies with a key of the service's key set,
old keys included. An invalid receipt is an answer (``valid: false``), not an error.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from consent_service.container import Services
from consent_service.core import receipts
from consent_service.core.caller import Caller
from consent_service.core.keys import InvalidSignature

KINDS = {receipts.RECEIPT_TYP: "consent-receipt", receipts.DECISION_RECEIPT_TYP: "decision-receipt"}


@dataclass(frozen=True)
class ReceiptCheck:
    """What ``POST /v1/receipts/verify`` answers about a receipt that does not verify."""

    valid: bool
    type: str | None  # the kind of receipt it claims to be (``KINDS``), if one of ours
    kid: str | None  # the signing key its header names
    problem: str | None


@dataclass(frozen=True)
class ValidReceipt(ReceiptCheck):
    """A receipt signed by this service and unchanged, with its content."""

    claims: dict[str, Any] = field(default_factory=dict)


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header as written, read only to say what the token claims to be."""
    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return header if isinstance(header, dict) else {}


def verify(services: Services, *, caller: Caller | None, token: str) -> ReceiptCheck:
    services.check(caller)  # any active client may ask; a disabled one may not
    token = token.strip()
    header = _unverified_header(token)
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    typ = header.get("typ")
    kind = KINDS.get(typ) if isinstance(typ, str) else None
    if kind is None or not isinstance(typ, str):
        return ReceiptCheck(
            valid=False,
            type=None,
            kid=kid,
            problem="This is not a consent receipt or a decision receipt of this service.",
        )
    try:
        _, claims = services.keys.verify(token, typ=typ)
    except InvalidSignature:
        known = kid is not None and any(key.kid == kid for key in services.keys.keyset.keys)
        return ReceiptCheck(
            valid=False,
            type=kind,
            kid=kid,
            problem=(
                "The signature does not match the content: the receipt was changed or damaged."
                if known
                else "The receipt is not signed by any key of this service."
            ),
        )
    return ValidReceipt(valid=True, type=kind, kid=kid, problem=None, claims=claims)
