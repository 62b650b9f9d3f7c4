"""The authorize use case, for one subject or a cohort: find, decide, record, answer.

One path for both: ``authorize`` is ``authorize_batch`` of one subject. The facts of every
subject are read in ONE read-only snapshot with set-based queries (``IN`` over the subject
keys, chunked), opened through ``services.reading(caller)`` so a disabled or unknown client is
refused (401) by the very snapshot that would have served it, before anything is decided or
written. The engine decides each distinct subject once; every decision row and its audit entry
(a single call: ``decision:permit`` / ``decision:deny`` for its decision; a batch: ONE
``decision:batch`` entry binding every decision row of the batch) are then written in ONE short
transaction. Nothing is answered unless it
committed, and any failure on the way is ``Unavailable`` (503, which callers must treat as
deny): this module never turns an error into a permit.

One rule applies only to a cohort (``cohort_gate``, so never to a single answer): when a
matching rule carries ``aggregate_only`` with ``min_cell_size``, it is judged on the subjects
that rule matched and would be permitted (the community's members in the cohort), never on the
cohort as a whole: when fewer distinct such subjects than that are in the cohort, each of them
is denied, reason ``below_min_cell_size`` naming the rule (the others keep their answers).
Padding a batch with non-members therefore releases no member, and a subject listed twice
counts once. The deployment policy's ``aggregate_only`` for a sensitive category
(policies/deployment.toml) gates the permits that carry it the same way, naming no rule. What
each requester is told about each subject goes through ``core.disclosure``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import disclosure, receipts
from consent_service.core.caller import Caller
from consent_service.core.decision_record import (
    SharedValues,
    approval_terms,
    audit_payload,
    decision_values,
    duty_terms,
)
from consent_service.core.engine import AccessRequest, ApprovalTerms, DutyTerms, Reason, Verdict
from consent_service.core.policy import CompiledRules, Rule
from consent_service.core.wire import MAX_SUBJECTS, AuditTag, Outcome, ReasonCode
from consent_service.errors import ServiceError, Unavailable
from consent_service.services import audit_rows, metrics
from consent_service.storage import agreements as agreement_store
from consent_service.storage import bulk
from consent_service.storage import decisions as decision_store
from consent_service.storage.db import write

log = logging.getLogger(__name__)

AGGREGATE_ONLY = "aggregate_only"
MIN_CELL_SIZE = "min_cell_size"


@dataclass(frozen=True)
class Subject:
    system: str
    value: str


@dataclass(frozen=True)
class SubjectDecision:
    """One subject's decision: the truth as recorded, and what its requester is told."""

    index: int  # the subject's position in the request
    id: str
    subject_key: str
    verdict: Verdict  # the truth, as recorded
    policy_versions: dict[str, int]
    told: Mapping[str, Any]  # the decision row's values as its requester is told them (disclosure)


@dataclass(frozen=True)
class DecisionResult:
    """The answer to ``POST /v1/authorize``: the subject's decision and its signed receipt."""

    id: str
    at: datetime
    verdict: Verdict  # the truth, as recorded
    policy_versions: dict[str, int]
    told: Mapping[str, Any]  # what the requester is told (disclosure)
    receipt: str  # the signed decision receipt (core.receipts)


@dataclass(frozen=True)
class Summary:
    permit: int
    deny: int


@dataclass(frozen=True)
class BatchResult:
    """The answer to ``POST /v1/authorize/batch``: one decision per subject, in the order asked."""

    id: str
    at: datetime
    decisions: tuple[SubjectDecision, ...]

    @property
    def summary(self) -> Summary:
        permits = sum(1 for d in self.decisions if d.verdict.permitted)
        return Summary(permit=permits, deny=len(self.decisions) - permits)


def authorize(
    services: Services,
    *,
    caller: Caller,
    subject: Subject,
    purpose: str,
    data_categories: list[str],
    now: datetime,
) -> DecisionResult:
    """Decide for one subject, record the decision, and sign its receipt.

    A cohort of one without the cohort gate: a single answer has no cell to judge, so a rule's
    ``aggregate_only`` obligation is returned for the requester to honour.
    """
    request = _request(caller, purpose, data_categories)
    with _failing_closed(
        "authorize failed; answering 503", "The decision could not be made; treat this as deny."
    ):
        decided = _decide(services, caller=caller, request=request, subjects=[subject], now=now)
        recorded = _Recorded.of(
            services, caller=caller, request=request, decided=decided, now=now, batch_id=None
        )
        decision = recorded.decisions[0]
        # Signed before the write lock is taken, as is everything else the write needs.
        receipt = receipts.sign_decision(
            services.keys, issuer=services.settings["TOKEN_ISSUER"], decision=decision.told
        )
        recorded.write(services, caller=caller)
    metrics.count_decisions([decision.verdict])
    return DecisionResult(
        id=decision.id,
        at=now,
        verdict=decision.verdict,
        policy_versions=decision.policy_versions,
        told=decision.told,
        receipt=receipt,
    )


def authorize_batch(
    services: Services,
    *,
    caller: Caller,
    subjects: Sequence[Subject],
    purpose: str,
    data_categories: list[str],
    now: datetime,
) -> BatchResult:
    """Decide for every subject (in the order given) and record every decision in one commit."""
    if not 0 < len(subjects) <= MAX_SUBJECTS:
        raise ValueError(f"a batch has 1 to {MAX_SUBJECTS} subjects")
    request = _request(caller, purpose, data_categories)
    batch_id = str(uuid.uuid4())
    with _failing_closed(
        "batch authorize failed; answering 503",
        "The decisions could not be made; treat every subject as denied.",
    ):
        decided = _decide(services, caller=caller, request=request, subjects=subjects, now=now)
        decided = decided.gated()
        recorded = _Recorded.of(
            services, caller=caller, request=request, decided=decided, now=now, batch_id=batch_id
        )
        recorded.write(services, caller=caller)
    metrics.count_decisions(d.verdict for d in recorded.decisions)
    return BatchResult(id=batch_id, at=now, decisions=tuple(recorded.decisions))


def _request(caller: Caller, purpose: str, data_categories: list[str]) -> AccessRequest:
    return AccessRequest(
        requester=caller.organization, purpose=purpose, data_categories=tuple(dict.fromkeys(data_categories))
    )


@contextmanager
def _failing_closed(logged: str, answer: str) -> Iterator[None]:
    """Fail closed: a refusal the use case meant passes through; any other failure is a 503."""
    try:
        yield
    except ServiceError:
        raise
    except Exception as exc:  # no answer is never a permit
        log.exception(logged)
        raise Unavailable(answer) from exc


# -- read and decide ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decided:
    """Per subject asked (parallel lists, in the order asked): key, verdict, versions, reader."""

    keys: list[str]
    verdicts: list[Verdict]
    versions: list[dict[str, int]]
    readers: list[disclosure.Audience]

    def gated(self) -> _Decided:
        return _Decided(self.keys, cohort_gate(self.verdicts, self.keys), self.versions, self.readers)


def _decide(
    services: Services, *, caller: Caller, request: AccessRequest, subjects: Sequence[Subject], now: datetime
) -> _Decided:
    showing: set[str] = set()
    with services.reading(caller) as session:
        refs = [services.subject(session, system=s.system, value=s.value) for s in subjects]
        subject_keys = [ref.key for ref in refs]
        distinct = list(dict.fromkeys(subject_keys))
        # Each subject also by the key of its spelling as given, when it differs (a subject
        # recorded before normalization, services.subjects): read with the others, merged below.
        also = {ref.key: ref.as_given for ref in refs if ref.as_given is not None}
        looked_up = [*distinct, *also.values()]
        consent_rows = bulk.terms_naming(session, looked_up, recipient=request.requester)
        memberships = bulk.memberships_with_versions(session, looked_up, showing=showing)
        for key, old in also.items():
            consent_rows[key] = [*consent_rows.get(key, ()), *consent_rows.get(old, ())]
            memberships[key] = sorted({*memberships.get(key, ()), *memberships.get(old, ())})
        community_versions = {cid: version for rows in memberships.values() for cid, version in rows}
        compiled: dict[str, CompiledRules] = {
            cid: services.rules.compiled(session, cid, version)
            for cid, version in sorted(community_versions.items())
        }
        approvals: dict[str, list[ApprovalTerms]] = {}
        approval_rows = bulk.approvals_for(
            session, communities=[cid for cid, c in compiled.items() if c.rules], requester=request.requester
        )
        # The duties the requester owes: asked only when it holds an approval they could hold.
        duties: dict[str, list[DutyTerms]] = {}
        if approval_rows:
            for duty in agreement_store.unmet_duties(
                session, communities={row.community_id for row in approval_rows}, requester=request.requester
            ):
                duties.setdefault(duty.community_id, []).append(duty_terms(duty))
        for row in approval_rows:
            owed = tuple(duties.get(row.community_id, ()))
            approvals.setdefault(row.community_id, []).append(approval_terms(row, owed))

    shown = frozenset(showing)
    decided: dict[str, tuple[Verdict, dict[str, int], disclosure.Audience]] = {}
    for key in distinct:
        versions = dict(memberships.get(key, ()))
        communities = [compiled[cid] for cid in versions]
        consents = consent_rows.get(key, [])
        verdict = services.engine.decide(
            request=request,
            consents=consents,
            communities=communities,
            approvals=[a for c in communities if c.rules for a in approvals.get(c.community, ())],
            now=now,
        )
        reader = disclosure.audience(
            consents, requester=request.requester, now=now, communities=versions, showing=shown
        )
        decided[key] = (verdict, versions, reader)
    answers = [decided[key] for key in subject_keys]
    return _Decided(
        subject_keys,
        [answer[0] for answer in answers],
        [answer[1] for answer in answers],
        [answer[2] for answer in answers],
    )


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
            rule_key = (
                (str(item.get("community")), str(item.get("rule_id")))
                if item.get("rule_id") is not None
                else (None, str(item.get("category")))
            )
            sizes[rule_key] = max(size, sizes.get(rule_key, 0))
            cells.setdefault(rule_key, set()).add(key)
        rules.update((rule.id, rule) for rule in verdict.rules)
    failing = {rule_key: size for rule_key, size in sizes.items() if len(cells[rule_key]) < size}
    if not failing:
        return verdicts
    gated: list[Verdict] = []
    for key, verdict in zip(subject_keys, verdicts, strict=True):
        mine = sorted(
            (rule_key for rule_key in failing if key in cells[rule_key]),
            key=lambda found: (found[0] or "", found[1]),
        )
        if not mine:
            gated.append(verdict)
            continue
        gated.append(
            Verdict(
                Outcome.DENY,
                tuple(_below_cell(rule_key, len(cells[rule_key]), failing[rule_key]) for rule_key in mine),
                rules=tuple(rules[rule_id] for _, rule_id in mine if rule_id in rules),
            )
        )
    return gated


def _below_cell(rule_key: tuple[str | None, str], count: int, size: int) -> Reason:
    community, rule_id = rule_key
    if community is None:  # the deployment policy's gate for a sensitive category names no rule
        return Reason(
            ReasonCode.BELOW_MIN_CELL_SIZE,
            f"Only {count} distinct subjects of this cohort would be permitted; this deployment "
            f"releases {rule_id} data for this purpose only in cells of at least {size}.",
        )
    return Reason(
        ReasonCode.BELOW_MIN_CELL_SIZE,
        f"Only {count} distinct subjects of this cohort fall under this community rule; "
        f"it releases its members' data only in cells of at least {size}.",
        rule_id=rule_id,
        community=community,
    )


# -- record -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recorded:
    """The decisions and everything their write needs, built before the write lock is taken
    (SQLite: BEGIN IMMEDIATE), so the lock is held for the Core statements and the commit only."""

    decisions: list[SubjectDecision]
    rows: list[dict[str, Any]]  # decision rows' column values
    touched: list[dict[str, Any]]  # decision_community rows' column values
    entries: list[tuple[datetime, str, str | None, dict[str, Any]]]  # a decision's, or the batch's

    @classmethod
    def of(
        cls,
        services: Services,
        *,
        caller: Caller,
        request: AccessRequest,
        decided: _Decided,
        now: datetime,
        batch_id: str | None,
    ) -> _Recorded:
        """One audit entry per decision for a single call (``batch_id`` None); for a batch, ONE
        entry (``decision:batch``, object id the batch id) binding every decision row and
        community link of the batch (``audit_rows.batch_binding``), each row carrying the batch id."""
        recorded = cls([], [], [], [])
        shared = SharedValues(request)
        memo: dict[int, str] = {}  # the shared values' canonical JSON, for the rows' digests (audit_rows)
        facts = zip(decided.keys, decided.verdicts, decided.versions, decided.readers, strict=True)
        for index, (key, verdict, policy_versions, reader) in enumerate(facts):
            decision_id = str(uuid.uuid4())
            row = decision_values(
                decision_id,
                caller=caller,
                request=request,
                subject_key=key,
                verdict=verdict,
                versions=policy_versions,
                now=now,
                reader=reader,
                shared=shared,
            )
            row["batch_id"] = batch_id
            recorded.rows.append(row)
            recorded.decisions.append(
                SubjectDecision(
                    index=index,
                    id=decision_id,
                    subject_key=key,
                    verdict=verdict,
                    policy_versions=policy_versions,
                    told=disclosure.as_told(row, row["told"]),
                )
            )
            links = [
                {"decision_id": decision_id, "community_id": cid, "at": now}
                for cid in sorted(policy_versions)
            ]
            recorded.touched.extend(links)
            if batch_id is None:
                tag = AuditTag.DECISION_PERMIT if verdict.permitted else AuditTag.DECISION_DENY
                payload = audit_payload(row)
                payload[audit_rows.ROWS] = audit_rows.decision_rows(services.rows_key, [row], links, memo)
                recorded.entries.append((now, str(tag), decision_id, payload))
        if batch_id is not None:
            permits = sum(1 for d in recorded.decisions if d.verdict.permitted)
            payload = {
                "batch": {"id": batch_id, "size": len(recorded.rows)},
                "purpose": request.purpose,
                "data_categories": list(request.data_categories),
                "summary": {"permit": permits, "deny": len(recorded.rows) - permits},
                audit_rows.ROWS: [],
                audit_rows.BATCH_ROWS: audit_rows.batch_binding(
                    services.rows_key, recorded.rows, recorded.touched, memo
                ),
            }
            recorded.entries.append((now, str(AuditTag.DECISION_BATCH), batch_id, payload))
        return recorded

    def write(self, services: Services, *, caller: Caller) -> None:
        # Not ``services.writing(caller)``: the caller was re-checked in the decision's own
        # snapshot, and a second check would add a query to every decision.
        with write(services.sessions) as session:
            if len(self.rows) > 1:  # a batch: COPY (PostgreSQL) or the driver's executemany
                decision_store.add_many(session, self.rows, self.touched)
            else:
                bulk.add_decisions(session, self.rows, self.touched)
            services.append_audit_many(session, caller=caller, entries=self.entries)
            session.commit()
