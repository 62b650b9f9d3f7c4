"""Cohort decisions: the authorize use case for many subjects at once.

Same semantics as :func:`.authorize.authorize`, subject by subject (a test holds the two
against each other): the same engine, fed the same facts, read for the whole cohort in one
read-only snapshot with set-based queries (``IN`` over the subject keys, chunked). Then every
decision row and one audit entry per subject decision are written in ONE transaction; nothing
is answered unless it committed, and any failure is ``Unavailable`` (503, treat as deny).

One rule applies only to a cohort: when a matching rule carries ``aggregate_only`` with
``min_cell_size``, it is judged on the subjects that rule matched and would be permitted (the
community's members in the cohort), never on the cohort as a whole: when fewer distinct such
subjects than that are in the cohort, each of them is denied, reason ``below_min_cell_size``
naming the rule (the others keep their answers). Padding a batch with non-members therefore
releases no member, and a subject listed twice counts once. The deployment policy's
``aggregate_only`` for a sensitive category (policies/deployment.toml) gates the permits that
carry it the same way, naming no rule. What each requester is told about each subject goes
through ``disclosure``, as for a single decision.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import disclosure
from consent_service.core.caller import Caller
from consent_service.core.decision_record import (
    SharedValues,
    approval_terms,
    audit_payload,
    consent_terms,
    decision_values,
)
from consent_service.core.engine import AccessRequest, ApprovalTerms, Reason, Verdict
from consent_service.core.policy import CompiledRules, Rule
from consent_service.core.wire import AuditTag, Outcome, ReasonCode
from consent_service.errors import ServiceError, Unavailable
from consent_service.services import audit_rows
from consent_service.services.authorize import Subject
from consent_service.storage import bulk
from consent_service.storage.db import read_snapshot, write

log = logging.getLogger(__name__)

MAX_SUBJECTS = 10_000
AGGREGATE_ONLY = "aggregate_only"
MIN_CELL_SIZE = "min_cell_size"


@dataclass(frozen=True)
class SubjectDecision:
    index: int
    id: str
    subject_key: str
    verdict: Verdict  # the truth, as recorded
    policy_versions: dict[str, int]
    told: Mapping[str, Any]  # what the requester is told (disclosure.told)

    def as_dict(self) -> dict[str, Any]:
        return {"subject_index": self.index, "decision": self.told["outcome"], "decision_id": self.id,
                "reasons": [dict(reason) for reason in self.told["reasons"]],
                "obligations": [dict(item) for item in self.told["obligations"]]}


@dataclass(frozen=True)
class BatchResult:
    id: str
    at: datetime
    decisions: tuple[SubjectDecision, ...]

    @property
    def summary(self) -> dict[str, int]:
        permits = sum(1 for d in self.decisions if d.verdict.permitted)
        return {"permit": permits, "deny": len(self.decisions) - permits}

    def as_dict(self) -> dict[str, Any]:
        return {"decisions": [d.as_dict() for d in self.decisions], "summary": self.summary}


def authorize_batch(services: Services, *, caller: Caller, subjects: Sequence[Subject], purpose: str,
                    data_categories: list[str], now: datetime) -> BatchResult:
    """Decide for every subject (in the order given) and record every decision in one commit."""
    if not 0 < len(subjects) <= MAX_SUBJECTS:
        raise ValueError(f"a batch has 1 to {MAX_SUBJECTS} subjects")
    request = AccessRequest(requester=caller.organization, purpose=purpose,
                            data_categories=tuple(dict.fromkeys(data_categories)))
    try:
        keys, verdicts, versions, readers = _decide(services, request=request, subjects=subjects, now=now)
        verdicts = cohort_gate(verdicts, keys)
        return _record(services, caller=caller, request=request, subject_keys=keys, verdicts=verdicts,
                       versions=versions, readers=readers, now=now)
    except ServiceError:
        raise
    except Exception as exc:  # fail closed: no answer is never a permit
        log.exception("batch authorize failed; answering 503")
        raise Unavailable("The decisions could not be made; treat every subject as denied.") from exc


# -- read and decide ----------------------------------------------------------------------------

def _decide(services: Services, *, request: AccessRequest, subjects: Sequence[Subject], now: datetime
            ) -> tuple[list[str], list[Verdict], list[dict[str, int]], list[disclosure.Audience]]:
    showing: set[str] = set()
    with read_snapshot(services.sessions) as session:
        refs = [services.subject(session, system=s.system, value=s.value) for s in subjects]
        subject_keys = [ref.key for ref in refs]
        distinct = list(dict.fromkeys(subject_keys))
        # Each subject also by the key of its spelling as given, when it differs (a subject
        # recorded before normalization, services.subjects): read with the others, merged below.
        also = {ref.key: ref.as_given for ref in refs if ref.as_given is not None}
        looked_up = [*distinct, *also.values()]
        consent_rows = bulk.current_terms_for_subjects(session, looked_up)
        memberships = bulk.memberships_with_versions(session, looked_up, showing=showing)
        for key, old in also.items():
            consent_rows[key] = [*consent_rows.get(key, ()), *consent_rows.get(old, ())]
            memberships[key] = sorted({*memberships.get(key, ()), *memberships.get(old, ())})
        community_versions = {cid: version for rows in memberships.values() for cid, version in rows}
        compiled: dict[str, CompiledRules] = {
            cid: services.rules.compiled(session, cid, version)
            for cid, version in sorted(community_versions.items())}
        approvals: dict[str, list[ApprovalTerms]] = {}
        for row in bulk.approvals_for(session, communities=[cid for cid, c in compiled.items() if c.rules],
                                      requester=request.requester):
            approvals.setdefault(row.community_id, []).append(approval_terms(row))

    shown = frozenset(showing)
    decided: dict[str, tuple[Verdict, dict[str, int], disclosure.Audience]] = {}
    for key in distinct:
        versions = dict(memberships.get(key, ()))
        communities = [compiled[cid] for cid in versions]
        consents = [consent_terms(row) for row in consent_rows.get(key, ())]
        verdict = services.engine.decide(
            request=request, consents=consents, communities=communities,
            approvals=[a for c in communities if c.rules for a in approvals.get(c.community, ())], now=now)
        reader = disclosure.audience(consents, requester=request.requester, now=now, communities=versions,
                                     showing=shown)
        decided[key] = (verdict, versions, reader)
    answers = [decided[key] for key in subject_keys]
    return (subject_keys, [answer[0] for answer in answers], [answer[1] for answer in answers],
            [answer[2] for answer in answers])


def cohort_gate(verdicts: list[Verdict], subject_keys: Sequence[str]) -> list[Verdict]:
    """Deny the subjects of each ``min_cell_size`` rule that has fewer distinct such subjects here.

    A rule's cell is the distinct subjects whose permits carry its ``aggregate_only`` obligation:
    the members of its community that it matched and that would be released. Subjects the rule
    did not match (non-members, members of other communities) neither count nor change.
    """
    cells: dict[tuple[str | None, str], set[str]] = {}
    sizes: dict[tuple[str | None, str], int] = {}
    rules: dict[str, Rule] = {}
    for key, verdict in zip(subject_keys, verdicts, strict=True):
        if not verdict.permitted:
            continue
        for item in verdict.obligations:
            if item.get("code") != AGGREGATE_ONLY or item.get(MIN_CELL_SIZE) is None:
                continue
            size = int(item[MIN_CELL_SIZE])  # a malformed size raises: the batch fails closed (503)
            # A community rule's cell is (community, rule id); the deployment policy's, for a
            # sensitive category, is (None, category): every permit that carries it.
            rule_key = ((str(item.get("community")), str(item.get("rule_id")))
                        if item.get("rule_id") is not None else (None, str(item.get("category"))))
            sizes[rule_key] = max(size, sizes.get(rule_key, 0))
            cells.setdefault(rule_key, set()).add(key)
        rules.update((rule.id, rule) for rule in verdict.rules)
    failing = {rule_key: size for rule_key, size in sizes.items() if len(cells[rule_key]) < size}
    if not failing:
        return verdicts
    gated: list[Verdict] = []
    for key, verdict in zip(subject_keys, verdicts, strict=True):
        mine = sorted((rule_key for rule_key in failing if key in cells[rule_key]),
                      key=lambda found: (found[0] or "", found[1]))
        if not mine:
            gated.append(verdict)
            continue
        gated.append(Verdict(Outcome.DENY, tuple(
            _below_cell(rule_key, len(cells[rule_key]), failing[rule_key]) for rule_key in mine),
            rules=tuple(rules[rule_id] for _, rule_id in mine if rule_id in rules)))
    return gated


def _below_cell(rule_key: tuple[str | None, str], count: int, size: int) -> Reason:
    community, rule_id = rule_key
    if community is None:  # the deployment policy's gate for a sensitive category names no rule
        return Reason(ReasonCode.BELOW_MIN_CELL_SIZE,
                      f"Only {count} distinct subjects of this cohort would be permitted; this deployment "
                      f"releases {rule_id} data for this purpose only in cells of at least {size}.")
    return Reason(ReasonCode.BELOW_MIN_CELL_SIZE,
                  f"Only {count} distinct subjects of this cohort fall under this community rule; "
                  f"it releases its members' data only in cells of at least {size}.",
                  rule_id=rule_id, community=community)


# -- record -------------------------------------------------------------------------------------

def _record(services: Services, *, caller: Caller, request: AccessRequest, subject_keys: list[str],
            verdicts: list[Verdict], versions: list[dict[str, int]], readers: list[disclosure.Audience],
            now: datetime) -> BatchResult:
    batch_id = str(uuid.uuid4())
    decisions: list[SubjectDecision] = []
    rows: list[dict[str, Any]] = []
    touched: list[dict[str, Any]] = []
    entries: list[tuple[datetime, str, str | None, dict[str, Any]]] = []
    shared = SharedValues(request)
    facts = zip(subject_keys, verdicts, versions, readers, strict=True)
    for index, (key, verdict, policy_versions, reader) in enumerate(facts):
        decision_id = str(uuid.uuid4())
        row = decision_values(decision_id, caller=caller, request=request, subject_key=key, verdict=verdict,
                              versions=policy_versions, now=now, reader=reader, shared=shared)
        rows.append(row)
        decisions.append(SubjectDecision(index=index, id=decision_id, subject_key=key, verdict=verdict,
                                         policy_versions=policy_versions,
                                         told=disclosure.as_told(row, row["told"])))
        touched.extend({"decision_id": decision_id, "community_id": cid, "at": now}
                       for cid in sorted(policy_versions))
        tag = AuditTag.DECISION_PERMIT if verdict.permitted else AuditTag.DECISION_DENY
        payload = audit_payload(row)
        payload["batch"] = {"id": batch_id, "index": index, "size": len(subject_keys)}
        links = touched[len(touched) - len(policy_versions):]
        payload[audit_rows.ROWS] = audit_rows.decision_rows(services.rows_key, [row], links)
        entries.append((now, str(tag), decision_id, payload))
    with write(services.sessions) as session:
        bulk.add_decisions(session, rows, touched)
        services.append_audit_many(session, caller=caller, entries=entries)
        session.commit()
    return BatchResult(id=batch_id, at=now, decisions=tuple(decisions))
