"""Decision receipts: a signed JWS the requester keeps as proof of what it was told and why.

One is issued with every authorize answer, permit or deny. The claims say who asked, about
whom (the pseudonymous subject key only), for which purpose and data categories, what the
answer was, and exactly what produced it: the consent id and version, the community rule ids
and the policy versions of the subject's communities. Anyone can verify it with
``/.well-known/jwks.json`` or ``POST /v1/receipts/verify``; ``GET /v1/decisions/{id}`` shows
the same decision as recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consent_service.core.keys import SigningKeys

DECISION_RECEIPT_TYP = "decision-receipt+jwt"
SPEC_VERSION = "consent_service-decision-receipt/1"


def decision_claims(*, issuer: str, decision: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt's claims from the decision row's column values (``decision_record.decision_values``)."""
    consent = ({"id": decision["consent_id"], "version": decision["consent_version"]}
               if decision["consent_id"] is not None else None)
    return {
        "iss": issuer,
        "jti": decision["id"],
        "iat": int(decision["at"].timestamp()),
        "receipt_version": SPEC_VERSION,
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


def sign(keys: SigningKeys, *, issuer: str, decision: Mapping[str, Any]) -> str:
    return keys.sign(decision_claims(issuer=issuer, decision=decision), typ=DECISION_RECEIPT_TYP)


def verify(keys: SigningKeys, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return keys.verify(token, typ=DECISION_RECEIPT_TYP)
