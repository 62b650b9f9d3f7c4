"""Decision lookup: a recorded decision, as its reader may see it.

* oversight (``audit:read``: the admin organization or an oversight organization) sees the
  decision as recorded, with its true reasons and, where it differs, what the requester was told;
* the organization that asked sees exactly what it was told (``disclosure``), nothing more;
* a steward of a community whose member the decision was about (``community:read`` or
  ``rules:write``) sees the community-safe view: no pseudonym, no consent id, no other
  community's rule (``communities.decision_as_seen_by``);
* to anyone else it does not exist (404), so nobody learns which decisions were made about whom.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.permissions import Scope
from consent_service.core.wire import ManagementAction
from consent_service.errors import NotFound
from consent_service.services.communities import decision_as_seen_by
from consent_service.storage import audit as audit_store
from consent_service.storage import communities as community_store
from consent_service.storage import decisions as store
from consent_service.storage.db import read_snapshot
from consent_service.storage.models import Decision


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


def _as_told(decision: Decision) -> dict[str, Any]:
    out = as_dict(decision)
    told = decision.told or {}
    if "outcome" in told:
        out["decision"] = told["outcome"]
    out.update((name, told[name]) for name in ("reasons", "obligations", "rule_ids", "policy_versions")
               if name in told)
    return out


def _stewarded(session: Session, services: Services, *, caller: Caller, decision_id: str) -> str | None:
    """The first community touched by the decision that the caller may read as a steward."""
    if not (caller.has(Scope.COMMUNITY_READ) or caller.has(Scope.RULES_WRITE)):
        return None
    for community_id in store.communities_of(session, decision_id):
        if services.policy.may_manage(organization=caller.organization, community=community_id,
                                      action=str(ManagementAction.DECISIONS_LIST),
                                      stewards=community_store.stewards(session, community_id)):
            return community_id
    return None


def get(services: Services, *, caller: Caller, decision_id: str) -> dict[str, Any]:
    with read_snapshot(services.sessions) as session:
        decision = store.get(session, decision_id)
        if decision is None:
            raise NotFound("No such decision.")
        if caller.has(Scope.AUDIT_READ):
            out = as_dict(decision)
            out["told"] = decision.told
        elif decision.requester == caller.organization and caller.has(Scope.AUTHORIZE):
            out = _as_told(decision)
        elif (community_id := _stewarded(session, services, caller=caller,
                                         decision_id=decision.id)) is not None:
            seen = asdict(decision_as_seen_by(community_id, decision))
            return {"decision_id": seen.pop("id"), "community": community_id, **seen}
        else:
            raise NotFound("No such decision.")
        logged = [
            e
            for e in audit_store.entries_for(session, object_id=decision.id)
            if e.tag.startswith("decision:")
        ]
        out["audit"] = {"seq": logged[0].seq, "hash": logged[0].hash} if logged else None
        return out

