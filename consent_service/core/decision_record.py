"""The pure values of one decision: engine values from the rows read, the decision row's
column values as recorded, and its audit entry's payload (no storage here).

Not to be confused with ``storage/decisions.py`` (the SQL of the decision tables) or
``services/decisions.py`` (the ``GET /v1/decisions/{id}`` use case). Authorize
(``services/authorize.py``, one subject or a cohort) builds every decision here; the steward
pages that replay decisions (``stewardship``, ``preview``) build approvals here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from consent_service.core import disclosure
from consent_service.core.caller import Caller
from consent_service.core.engine import AccessRequest, ApprovalTerms, ConsentTerms, DutyTerms, Reason, Verdict
from consent_service.core.wire import Outcome


def consent_terms(row: Any) -> ConsentTerms:
    """A row of the current-terms query (storage.bulk) as the engine's value."""
    return ConsentTerms(
        consent_id=row.id,
        version=row.version,
        purposes=tuple(row.purposes),
        data_categories=tuple(row.data_categories),
        recipients=tuple(row.recipients),
        expires_at=row.expires_at,
        active=True,
        recorded_at=row.recorded_at,
    )


def approval_terms(row: Any, duties: tuple[DutyTerms, ...] = ()) -> ApprovalTerms:
    """An approval row (an ``Approval`` or a storage.bulk row) as the engine's value; ``duties``:
    the unmet duties its requester owes its community. A bulk row carries its agreement's
    ``review_at``; an ``Approval`` alone has none (the steward pages ask only whether it covers)."""
    return ApprovalTerms(
        id=row.id,
        community=row.community_id,
        requester=row.requester,
        purposes=tuple(row.purposes),
        data_categories=tuple(row.data_categories),
        expires_at=row.expires_at,
        active=row.revoked_at is None,
        review_at=getattr(row, "review_at", None),
        duties=duties,
    )


def duty_terms(row: Any) -> DutyTerms:
    return DutyTerms(id=row.id, kind=row.kind, description=row.description, due_at=row.due_at)


class SharedValues:
    """Equal column values of one batch built once and shared between rows.

    Most subjects of a cohort get the same reasons, no obligations, no rules; sharing the very
    same list lets the bulk insert serialize each distinct value once (it memoises by identity).
    """

    def __init__(self, request: AccessRequest) -> None:
        self.categories = list(request.data_categories)
        self._reasons: dict[tuple[Reason, ...], list[dict[str, Any]]] = {}
        self._obligations: dict[int, list[dict[str, Any]]] = {}
        self._rule_ids: dict[tuple[str, ...], list[str]] = {}
        self._versions: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}
        self._told: dict[tuple[Any, ...], dict[str, Any] | None] = {}

    def reasons(self, verdict: Verdict) -> list[dict[str, Any]]:
        found = self._reasons.get(verdict.reasons)
        if found is None:
            found = self._reasons[verdict.reasons] = [r.as_dict() for r in verdict.reasons]
        return found

    def obligations(self, verdict: Verdict) -> list[dict[str, Any]]:
        key = id(verdict.obligations)  # the verdicts outlive this object, so ids stay unique
        found = self._obligations.get(key)
        if found is None:
            found = self._obligations[key] = [dict(o) for o in verdict.obligations]
        return found

    def rule_ids(self, verdict: Verdict) -> list[str]:
        key = tuple(rule.id for rule in verdict.rules)
        found = self._rule_ids.get(key)
        if found is None:
            found = self._rule_ids[key] = list(key)
        return found

    def versions(self, versions: Mapping[str, int]) -> dict[str, int]:
        key = tuple(versions.items())
        found = self._versions.get(key)
        if found is None:
            found = self._versions[key] = dict(key)
        return found

    def told(
        self, values: Mapping[str, Any], verdict: Verdict, reader: disclosure.Audience, request: AccessRequest
    ) -> dict[str, Any] | None:
        """What the requester is told where it differs from ``values`` (``disclosure``), one object
        per distinct (verdict, policy versions, reader) of the batch.

        A reader that is shown no community id is told no policy versions at all, so which
        versions were recorded matters only as whether there were any (``disclosure.difference``
        compares them with the empty view): a cohort spread over many communities then shares
        one view per verdict instead of one per community.
        """
        versions = values["policy_versions"]
        key = (
            verdict.outcome,
            verdict.reasons,
            id(verdict.obligations),
            tuple(r.id for r in verdict.rules),
            tuple(versions.items()) if reader.named and reader.shown else bool(versions),
            reader,
        )
        if key not in self._told:
            self._told[key] = disclosure.difference(
                values, disclosure.told(values, request=request, audience=reader)
            )
        return self._told[key]


def decision_values(
    decision_id: str,
    *,
    caller: Caller,
    request: AccessRequest,
    subject_key: str,
    verdict: Verdict,
    versions: Mapping[str, int],
    now: datetime,
    reader: disclosure.Audience,
    shared: SharedValues | None = None,
) -> dict[str, Any]:
    """The decision row's column values: the true reasons, and in ``told`` what the requester
    (``reader``) is told where that differs (``disclosure``)."""
    shared = shared or SharedValues(request)
    consent = verdict.consent if verdict.outcome is Outcome.PERMIT else None
    values = {
        "id": decision_id,
        "at": now,
        "requester": request.requester,
        "client_id": caller.client_id,
        "subject_key": subject_key,
        "purpose": request.purpose,
        "data_categories": shared.categories,
        "outcome": str(verdict.outcome),
        "reasons": shared.reasons(verdict),
        "obligations": shared.obligations(verdict),
        "consent_id": consent.consent_id if consent else None,
        "consent_version": consent.version if consent else None,
        "rule_ids": shared.rule_ids(verdict),
        "policy_versions": shared.versions(versions),
    }
    # A subject in no community is told the truth: skip building the view (the common case).
    values["told"] = shared.told(values, verdict, reader, request) if versions or not reader.named else None
    return values


def audit_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The audit entry of one decision (with what the requester was told, where that differs)."""
    payload = {
        "subject": row["subject_key"],
        "purpose": row["purpose"],
        "data_categories": row["data_categories"],
        "outcome": row["outcome"],
        "reasons": row["reasons"],
        "consent_id": row["consent_id"],
        "consent_version": row["consent_version"],
        "rule_ids": row["rule_ids"],
        "policy_versions": row["policy_versions"],
    }
    if row.get("told") is not None:
        payload["told"] = row["told"]
    return payload
