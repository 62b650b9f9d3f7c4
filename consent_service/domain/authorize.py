"""The authorize use case: find (database), decide (engine), record (decision + audit), answer.

Reads happen in one read-only snapshot; the decision and its audit entry are then written
in one short transaction. Nothing is returned unless that transaction committed, and any
failure on the way is raised as ``Unavailable`` (503, which callers must treat as deny):
this function never turns an error into a permit.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import ServiceError, Unavailable
from ..storage import communities as community_store
from ..storage import consents as consent_store
from ..storage import decisions as decision_store
from ..storage.db import read_snapshot, write
from ..storage.models import Decision
from . import decision_receipts
from .caller import Caller
from .engine import AccessRequest, ApprovalTerms, ConsentTerms, Verdict
from .services import Services
from .wire import AuditTag, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subject:
    system: str
    value: str


@dataclass(frozen=True)
class DecisionResult:
    id: str
    at: datetime
    verdict: Verdict
    policy_versions: dict[str, int]
    receipt: str = ""  # the signed decision receipt (see decision_receipts)

    def as_dict(self) -> dict[str, Any]:
        return {"decision": str(self.verdict.outcome), "decision_id": self.id,
                "reasons": [reason.as_dict() for reason in self.verdict.reasons],
                "obligations": [dict(item) for item in self.verdict.obligations],
                "receipt": self.receipt}


def authorize(services: Services, *, caller: Caller, subject: Subject, purpose: str,
              data_categories: list[str], now: datetime) -> DecisionResult:
    request = AccessRequest(requester=caller.organization, purpose=purpose,
                            data_categories=tuple(dict.fromkeys(data_categories)))
    key = services.subject_key(system=subject.system, value=subject.value)
    try:
        verdict, versions = _decide(services, request=request, subject_key=key, now=now)
        return _record(services, caller=caller, request=request, subject_key=key, verdict=verdict,
                       versions=versions, now=now)
    except ServiceError:
        raise
    except Exception as exc:  # fail closed: no answer is never a permit
        log.exception("authorize failed; answering 503")
        raise Unavailable("The decision could not be made; treat this as deny.") from exc


def _decide(services: Services, *, request: AccessRequest, subject_key: str,
            now: datetime) -> tuple[Verdict, dict[str, int]]:
    with read_snapshot(services.sessions) as session:
        consents = [ConsentTerms(consent_id=row.id, version=row.version, purposes=tuple(row.purposes),
                                 data_categories=tuple(row.data_categories),
                                 recipients=tuple(row.recipients), expires_at=row.expires_at,
                                 active=True, recorded_at=row.recorded_at)
                    for row in consent_store.current_terms_for_subject(session, subject_key)]
        versions = {row.id: row.policy_version
                    for row in community_store.memberships_with_versions(session, subject_key)}
        compiled = [services.rules.compiled(session, cid, version) for cid, version in versions.items()]
        approvals = [ApprovalTerms(id=row.id, community=row.community_id, requester=row.requester,
                                   purposes=tuple(row.purposes), data_categories=tuple(row.data_categories),
                                   expires_at=row.expires_at, active=row.revoked_at is None)
                     for row in community_store.approvals_for(
                         session, communities=[c.community for c in compiled if c.rules],
                         requester=request.requester)]
    verdict = services.engine.decide(request=request, consents=consents, communities=compiled,
                                     approvals=approvals, now=now)
    return verdict, versions


def _record(services: Services, *, caller: Caller, request: AccessRequest, subject_key: str,
            verdict: Verdict, versions: dict[str, int], now: datetime) -> DecisionResult:
    result = DecisionResult(id=str(uuid.uuid4()), at=now, verdict=verdict, policy_versions=versions)
    consent = verdict.consent if verdict.outcome is Outcome.PERMIT else None
    row = Decision(
        id=result.id, at=now, requester=request.requester, client_id=caller.client_id,
        subject_key=subject_key, purpose=request.purpose, data_categories=list(request.data_categories),
        outcome=str(verdict.outcome), reasons=[r.as_dict() for r in verdict.reasons],
        obligations=[dict(o) for o in verdict.obligations],
        consent_id=consent.consent_id if consent else None, consent_version=consent.version if consent else None,
        rule_ids=[rule.id for rule in verdict.rules], policy_versions=versions)
    result = dataclasses.replace(result, receipt=decision_receipts.sign(
        services.keys, issuer=services.settings["TOKEN_ISSUER"], decision=row))
    tag = AuditTag.DECISION_PERMIT if verdict.permitted else AuditTag.DECISION_DENY
    with write(services.sessions) as session:
        decision_store.add(session, row, sorted(versions))
        services.append_audit(session, at=now, tag=tag, caller=caller, object_id=result.id, payload={
            "subject": subject_key, "purpose": request.purpose,
            "data_categories": list(request.data_categories), "outcome": str(verdict.outcome),
            "reasons": [r.as_dict() for r in verdict.reasons], "consent_id": row.consent_id,
            "consent_version": row.consent_version, "rule_ids": row.rule_ids, "policy_versions": versions})
        session.commit()
    return result
