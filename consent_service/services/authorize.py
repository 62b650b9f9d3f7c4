"""The authorize use case: find (database), decide (engine), record (decision + audit), answer.

Reads happen in one read-only snapshot; the decision and its audit entry are then written
in one short transaction. Nothing is returned unless that transaction committed, and any
failure on the way is raised as ``Unavailable`` (503, which callers must treat as deny):
this function never turns an error into a permit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import decision_receipts, disclosure
from consent_service.core.caller import Caller
from consent_service.core.decision_record import approval_terms, audit_payload, consent_terms, decision_values
from consent_service.core.engine import AccessRequest, Verdict
from consent_service.core.wire import AuditTag
from consent_service.errors import ServiceError, Unauthorized, Unavailable
from consent_service.services import audit_rows
from consent_service.storage import bulk
from consent_service.storage import organizations as organization_store
from consent_service.storage.db import read_snapshot, write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subject:
    system: str
    value: str


@dataclass(frozen=True)
class DecisionResult:
    id: str
    at: datetime
    verdict: Verdict  # the truth, as recorded
    policy_versions: dict[str, int]
    told: Mapping[str, Any]  # what the requester is told (disclosure.told)
    receipt: str = ""  # the signed decision receipt (see decision_receipts)

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.told["outcome"], "decision_id": self.id,
                "reasons": [dict(reason) for reason in self.told["reasons"]],
                "obligations": [dict(item) for item in self.told["obligations"]],
                "receipt": self.receipt}


def authorize(services: Services, *, caller: Caller, subject: Subject, purpose: str,
              data_categories: list[str], now: datetime, check_client: bool) -> DecisionResult:
    """Decide and record; with ``check_client``, a disabled or unknown client is refused (401)
    from the decision's own snapshot, before anything is decided or written."""
    request = AccessRequest(requester=caller.organization, purpose=purpose,
                            data_categories=tuple(dict.fromkeys(data_categories)))
    try:
        key, verdict, versions, reader = _decide(services, request=request, subject=subject, now=now,
                                                 client_id=caller.client_id if check_client else None)
        return _record(services, caller=caller, request=request, subject_key=key, verdict=verdict,
                       versions=versions, reader=reader, now=now)
    except ServiceError:
        raise
    except Exception as exc:  # fail closed: no answer is never a permit
        log.exception("authorize failed; answering 503")
        raise Unavailable("The decision could not be made; treat this as deny.") from exc


def _decide(services: Services, *, request: AccessRequest, subject: Subject, now: datetime,
            client_id: str | None) -> tuple[str, Verdict, dict[str, int], disclosure.Audience]:
    # Core reads (storage.bulk), the same ones batch authorize makes for a whole cohort.
    showing: set[str] = set()
    with read_snapshot(services.sessions) as session:
        if client_id is not None and not organization_store.client_is_active(
                session, client_id, request.requester):
            raise Unauthorized("The access token's client is disabled, unknown or of another organization.")
        ref = services.subject(session, system=subject.system, value=subject.value)
        # The key of the spelling as given too, when it differs: a subject recorded before
        # normalization (services.subjects) keeps its consents and memberships until re-keyed.
        consent_rows = bulk.current_terms_for_subjects(session, list(ref.keys))
        consents = [consent_terms(row) for key in ref.keys for row in consent_rows.get(key, ())]
        member_rows = bulk.memberships_with_versions(session, list(ref.keys), showing=showing)
        versions = {cid: version for key in ref.keys for cid, version in member_rows.get(key, ())}
        compiled = [services.rules.compiled(session, cid, version) for cid, version in versions.items()]
        with_rules = [c.community for c in compiled if c.rules]
        approvals = [approval_terms(row) for row in bulk.approvals_for(
            session, communities=with_rules, requester=request.requester)] if with_rules else []
    verdict = services.engine.decide(request=request, consents=consents, communities=compiled,
                                     approvals=approvals, now=now)
    reader = disclosure.audience(consents, requester=request.requester, now=now, communities=versions,
                                 showing=frozenset(showing))
    return ref.key, verdict, versions, reader


def _record(services: Services, *, caller: Caller, request: AccessRequest, subject_key: str,
            verdict: Verdict, versions: dict[str, int], reader: disclosure.Audience,
            now: datetime) -> DecisionResult:
    decision_id = str(uuid.uuid4())
    values = decision_values(decision_id, caller=caller, request=request, subject_key=subject_key,
                             verdict=verdict, versions=versions, now=now, reader=reader)
    told = disclosure.as_told(values, values["told"])
    receipt = decision_receipts.sign(services.keys, issuer=services.settings["TOKEN_ISSUER"], decision=told)
    result = DecisionResult(id=decision_id, at=now, verdict=verdict, policy_versions=versions, told=told,
                            receipt=receipt)
    tag = AuditTag.DECISION_PERMIT if verdict.permitted else AuditTag.DECISION_DENY
    touched = [{"decision_id": result.id, "community_id": cid, "at": now} for cid in sorted(versions)]
    payload = audit_payload(values)
    payload[audit_rows.ROWS] = audit_rows.decision_rows(services.rows_key, [values], touched)
    entry = (now, str(tag), result.id, payload)
    # Everything is built before the write lock is taken (SQLite: BEGIN IMMEDIATE), so the
    # lock is held for the Core statements and the commit only.
    with write(services.sessions) as session:
        bulk.add_decisions(session, [values], touched)
        services.append_audit_many(session, caller=caller, entries=[entry])
        session.commit()
    return result
