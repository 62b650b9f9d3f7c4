"""The two receipts the service signs, each a compact JWS anyone can verify with
``/.well-known/jwks.json`` or ``POST /v1/receipts/verify`` (``services/receipts.py``).

**Consent receipts** (``RECEIPT_TYP``): the person keeps one as proof of what they agreed to.
The claims follow the fields of the Kantara Consent Receipt and ISO/IEC TS 27560 (receipt
id and version, timestamps, the controller, purposes, data categories, recipients, expiry,
and how to withdraw).

**Decision receipts** (``DECISION_RECEIPT_TYP``): the requester keeps one as proof of what it
was told and why. One is issued with every authorize answer, permit or deny. The claims say who
asked, about whom (the pseudonymous subject key only), for which purpose and data categories,
what the answer was, and exactly what produced it: the consent id and version, the community
rule ids and the policy versions of the subject's communities. ``GET /v1/decisions/{id}`` shows
the same decision as recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from consent_service.core.keys import SigningKeys

RECEIPT_TYP = "consent-receipt+jwt"
SPEC_VERSION = "consent_service-receipt/1 (Kantara CR v1.1 / ISO/IEC TS 27560 fields)"
DECISION_RECEIPT_TYP = "decision-receipt+jwt"
DECISION_SPEC_VERSION = "consent_service-decision-receipt/1"


# -- consent receipts ----------------------------------------------------------------------------


def receipt_claims(
    *,
    issuer: str,
    receipt_id: str,
    consent_id: str,
    version: int,
    issued_at: datetime,
    consent_recorded_at: datetime,
    controller: dict[str, str],
    subject_pseudonym: str,
    purposes: list[str],
    data_categories: list[str],
    recipients: list[str],
    communities: list[str],
    expires_at: datetime | None,
    method: str,
) -> dict[str, Any]:
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


# -- decision receipts ---------------------------------------------------------------------------


def decision_claims(*, issuer: str, decision: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt's claims from the decision row's column values (``decision_record.decision_values``)."""
    consent = (
        {"id": decision["consent_id"], "version": decision["consent_version"]}
        if decision["consent_id"] is not None
        else None
    )
    return {
        "iss": issuer,
        "jti": decision["id"],
        "iat": int(decision["at"].timestamp()),
        "receipt_version": DECISION_SPEC_VERSION,
        "decision_id": decision["id"],
        "decided_at": decision["at"].isoformat(),
        "requester": decision["requester"],
        "client_id": decision["client_id"],
        "subject": {"pseudonym": decision["subject_key"]},
        "purpose": decision["purpose"],
        "data_categories": list(decision["data_categories"]),
        "decision": decision["outcome"],
        "reasons": [dict(reason) for reason in decision["reasons"]],
        "obligations": [dict(item) for item in decision["obligations"]],
        "consent": consent,
        "rule_ids": list(decision["rule_ids"]),
        "policy_versions": dict(decision["policy_versions"]),
    }


def sign_decision(keys: SigningKeys, *, issuer: str, decision: Mapping[str, Any]) -> str:
    return keys.sign(decision_claims(issuer=issuer, decision=decision), typ=DECISION_RECEIPT_TYP)


def verify_decision(keys: SigningKeys, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return keys.verify(token, typ=DECISION_RECEIPT_TYP)
