"""``GET /v1/decisions/{id}``: a recorded decision, as its reader may see it.

(The decision row's values are built in ``core/decision_record.py``; its SQL is ``storage/decisions.py``.)

* oversight (``audit:read``: the admin organization or an oversight organization) sees the
  decision as recorded, with its true reasons and, where it differs, what the requester was told;
* the organization that asked sees exactly what it was told (``disclosure``), nothing more;
* a steward of a community whose member the decision was about (``community:read`` or
  ``rules:write``) sees the community-safe view: no pseudonym, no consent id, no other
  community's rule (``communities.decision_as_seen_by``);
* to anyone else it does not exist (404), so nobody learns which decisions were made about whom.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
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
from consent_service.storage.models import Decision

# The fields of a recorded decision that its requester may be told differently (``disclosure``).
_TOLD = ("reasons", "obligations", "rule_ids", "policy_versions")


@dataclass(frozen=True)
class AuditLink:
    """Where the decision's entry sits in the audit chain."""

    seq: int
    hash: str


@dataclass(frozen=True)
class RecordedDecision:
    """A decision as its requester was told it (or, for oversight, as recorded: ``OverseenDecision``)."""

    decision_id: str
    at: datetime
    requester: str
    client_id: str
    subject_pseudonym: str
    purpose: str
    data_categories: list[str]
    decision: str
    reasons: list[dict[str, Any]]
    obligations: list[dict[str, Any]]
    consent_id: str | None
    consent_version: int | None
    rule_ids: list[str]
    policy_versions: dict[str, int]
    audit: AuditLink | None = None

    @classmethod
    def of(cls, decision: Decision) -> RecordedDecision:
        return cls(
            decision_id=decision.id,
            at=decision.at,
            requester=decision.requester,
            client_id=decision.client_id,
            subject_pseudonym=decision.subject_key,
            purpose=decision.purpose,
            data_categories=list(decision.data_categories),
            decision=decision.outcome,
            reasons=list(decision.reasons),
            obligations=list(decision.obligations),
            consent_id=decision.consent_id,
            consent_version=decision.consent_version,
            rule_ids=list(decision.rule_ids),
            policy_versions=dict(decision.policy_versions),
        )

    @classmethod
    def as_told(cls, decision: Decision) -> RecordedDecision:
        """What the requester was told: the recorded values, with ``decision.told`` in their place."""
        told = decision.told or {}
        changed: dict[str, Any] = {name: told[name] for name in _TOLD if name in told}
        if "outcome" in told:
            changed["decision"] = told["outcome"]
        return replace(cls.of(decision), **changed)


@dataclass(frozen=True)
class OverseenDecision(RecordedDecision):
    """Oversight's view: as recorded, and what the requester was told where it differs (None: the same)."""

    told: dict[str, Any] | None = None


@dataclass(frozen=True)
class StewardDecision:
    """A steward's view, for one community (``communities.decision_as_seen_by``): no pseudonym,
    no consent id, no other community's rule, no audit link."""

    decision_id: str
    community: str
    at: datetime
    requester: str
    purpose: str
    data_categories: list[str]
    decision: str
    reasons: list[dict[str, Any]]
    obligations: list[dict[str, Any]]


def _stewarded(session: Session, services: Services, *, caller: Caller, decision_id: str) -> str | None:
    """The first community touched by the decision that the caller may read as a steward."""
    if not (caller.has(Scope.COMMUNITY_READ) or caller.has(Scope.RULES_WRITE)):
        return None
    for community_id in store.communities_of(session, decision_id):
        if services.policy.may_manage(
            organization=caller.organization,
            community=community_id,
            action=str(ManagementAction.DECISIONS_LIST),
            stewards=community_store.stewards(session, community_id),
        ):
            return community_id
    return None


def get(
    services: Services, *, caller: Caller, decision_id: str
) -> RecordedDecision | OverseenDecision | StewardDecision:
    """The decision as this caller may read it (see the module's docstring); NotFound otherwise."""
    with services.reading(caller) as session:
        decision = store.get(session, decision_id)
        if decision is None:
            raise NotFound("No such decision.")
        found: RecordedDecision
        if caller.has(Scope.AUDIT_READ):
            found = OverseenDecision(**vars(RecordedDecision.of(decision)), told=decision.told)
        elif decision.requester == caller.organization and caller.has(Scope.AUTHORIZE):
            found = RecordedDecision.as_told(decision)
        elif (
            community_id := _stewarded(session, services, caller=caller, decision_id=decision.id)
        ) is not None:
            seen = asdict(decision_as_seen_by(community_id, decision))
            return StewardDecision(decision_id=seen.pop("id"), community=community_id, **seen)
        else:
            raise NotFound("No such decision.")
        # A single call's decision has an entry of its own; a batch's are bound by the batch's entry.
        logged = [
            e
            for e in audit_store.entries_for(session, object_id=decision.batch_id or decision.id)
            if e.tag.startswith("decision:")
        ]
        return replace(found, audit=AuditLink(seq=logged[0].seq, hash=logged[0].hash) if logged else None)
