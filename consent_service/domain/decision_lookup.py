"""Decision lookup: a recorded decision with exactly what produced it.

Visible to the organization that asked (it got the answer already) and to holders of
``audit:read``; to anyone else it does not exist (404), so nobody learns which decisions
were made about whom.
"""

from __future__ import annotations

from typing import Any

from ..errors import NotFound
from ..storage import audit as audit_store
from ..storage import decisions as store
from ..storage.db import read_snapshot
from ..storage.models import Decision
from .caller import Caller
from .services import Services
from .wire import Scope


def as_dict(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.id,
        "at": decision.at,
        "requester": decision.requester,
        "client_id": decision.client_id,
        "subject_pseudonym": decision.subject_key,
        "purpose": decision.purpose,
        "data_categories": list(decision.data_categories),
        "decision": decision.outcome,
        "reasons": list(decision.reasons),
        "obligations": list(decision.obligations),
        "consent_id": decision.consent_id,
        "consent_version": decision.consent_version,
        "rule_ids": list(decision.rule_ids),
        "policy_versions": dict(decision.policy_versions),
    }


def get(services: Services, *, caller: Caller, decision_id: str) -> dict[str, Any]:
    with read_snapshot(services.sessions) as session:
        decision = store.get(session, decision_id)
        if decision is None or (
            decision.requester != caller.organization and not caller.has(Scope.AUDIT_READ)
        ):
            raise NotFound("No such decision.")
        out = as_dict(decision)
        logged = [
            e
            for e in audit_store.entries_for(session, object_id=decision.id)
            if e.tag.startswith("decision:")
        ]
        out["audit"] = {"seq": logged[0].seq, "hash": logged[0].hash} if logged else None
        return out
