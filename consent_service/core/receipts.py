"""Consent receipts: a signed JWS the person keeps as proof of what they agreed to.

The claims follow the fields of the Kantara Consent Receipt and ISO/IEC TS 27560 (receipt
id and version, timestamps, the controller, purposes, data categories, recipients, expiry,
and how to withdraw), carried as a compact JWS signed with the service's key; anyone can
verify it with ``/.well-known/jwks.json``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consent_service.core.keys import SigningKeys

RECEIPT_TYP = "consent-receipt+jwt"
SPEC_VERSION = "consent_service-receipt/1 (Kantara CR v1.1 / ISO/IEC TS 27560 fields)"


def receipt_claims(*, issuer: str, receipt_id: str, consent_id: str, version: int, issued_at: datetime,
                   consent_recorded_at: datetime, controller: dict[str, str], subject_pseudonym: str,
                   purposes: list[str], data_categories: list[str], recipients: list[str],
                   communities: list[str], expires_at: datetime | None, method: str) -> dict[str, Any]:
    return {
        "iss": issuer,
        "jti": receipt_id,
        "iat": int(issued_at.timestamp()),
        "receipt_version": SPEC_VERSION,
        "receipt_id": receipt_id,
        "consent_id": consent_id,
        "consent_version": version,
        "consent_timestamp": consent_recorded_at.isoformat(),
        "controller": controller,
        "subject": {"pseudonym": subject_pseudonym},
        "purposes": purposes,
        "data_categories": data_categories,
        "recipients": recipients,
        "communities": communities,
        "expires_at": expires_at.isoformat() if expires_at else None,
        "collection_method": method,
        "withdrawal": {
            "how": f"Ask {controller['name']} to withdraw consent {consent_id}; it stops all further use "
                   "from that moment.",
            "api": f"POST /v1/consents/{consent_id}/revoke",
        },
    }


def sign(keys: SigningKeys, claims: dict[str, Any]) -> str:
    return keys.sign(claims, typ=RECEIPT_TYP)


def verify(keys: SigningKeys, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return keys.verify(token, typ=RECEIPT_TYP)
