"""Use cases of data access requests (``/v1/access-requests``): a requester asks a community
for access one of its rules refused; the community's stewards grant or refuse it by a deadline.

* filing: the requester (an ``authorize`` client: the organization that was refused) names the
  community, the rule it was refused under, what it wants (purposes, data categories, until
  when) and why (plain-language protocol, ethics approval reference, benefit to the community).
  The rule must be one the requester could name anyway: a rule of that community in force,
  applying to it, that one of its own denials told it. Every other rule id (unknown, another
  community's, one it was never told) gets the same 400, so filing discloses no rule.
* the deadline: ``decide_by`` is the filing time plus the community's ``review_days``. A pending
  request past it *is* refused ("no decision by deadline") for everyone who reads it, at once;
  ``consent-service access-requests expire`` records the refusals (audited), and a steward's
  decision after the deadline is a 409.
* granting creates the approval in the same transaction (``approvals.add_approval``), with the
  requested terms or narrower ones; the approval names the request.
* a requester sees only its own requests: another's is a 404 exactly like one that does not
  exist. A steward acts only on its community's; another's is the same 404.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.permissions import Scope
from consent_service.core.wire import (
    NO_DECISION_BY_DEADLINE,
    WILDCARD,
    AccessRequestStatus,
    AuditTag,
    ManagementAction,
)
from consent_service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from consent_service.services import codes
from consent_service.services.approvals import ApprovalRecord, add_approval
from consent_service.services.stewards import begin_change, require_steward
from consent_service.storage import access_requests as store
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import communities as community_store
from consent_service.storage.models import AccessRequest

_NOT_FOUND = "No such access request."
_UNKNOWN_RULE = "not a rule of this community that refused you"
MIN_REVIEW_DAYS, MAX_REVIEW_DAYS = 1, 365


@dataclass(frozen=True)
class AccessRequestRecord:
    """A request as its requester and the community's stewards see it (``AccessRequestOut``).

    ``status`` is as of the time asked: a pending request past ``decide_by`` is ``refused`` with
    ``refusal_reason`` "no decision by deadline" whether or not that was recorded yet.
    """

    id: str
    community: str | None  # None in the requester's view of a community that hides its id
    requester: str
    rule_id: str
    purposes: list[str]
    data_categories: list[str]
    protocol: str
    ethics_reference: str
    benefit_plan: str
    requested_until: datetime
    status: str
    filed_at: datetime
    decide_by: datetime
    closed_at: datetime | None
    closed_by: str | None
    note: str | None
    refusal_reason: str | None
    approval_id: str | None

    def as_requester_sees(self, shows_id: bool) -> AccessRequestRecord:
        """The requester is told the community's id only if the community shows it (as in its
        decisions, core/disclosure.py): a request names a rule, and the rule's community is
        what the person's membership would reveal."""
        return self if shows_id else replace(self, community=None)

    @classmethod
    def of(cls, row: AccessRequest, now: datetime) -> AccessRequestRecord:
        status, closed_at, reason = row.status, row.closed_at, row.refusal_reason
        if overdue(row, now):
            status, closed_at, reason = (
                str(AccessRequestStatus.REFUSED),
                row.decide_by,
                NO_DECISION_BY_DEADLINE,
            )
        return cls(
            id=row.id,
            community=row.community_id,
            requester=row.requester,
            rule_id=row.rule_id,
            purposes=list(row.purposes),
            data_categories=list(row.data_categories),
            protocol=row.protocol,
            ethics_reference=row.ethics_reference,
            benefit_plan=row.benefit_plan,
            requested_until=row.requested_until,
            status=status,
            filed_at=row.filed_at,
            decide_by=row.decide_by,
            closed_at=closed_at,
            closed_by=row.closed_by,
            note=row.note,
            refusal_reason=reason,
            approval_id=row.approval_id,
        )


@dataclass(frozen=True)
class AccessRequestList:
    access_requests: list[AccessRequestRecord]


@dataclass(frozen=True)
class Decided:
    """A steward's decision: the request as it now is, and the approval a grant created."""

    access_request: AccessRequestRecord
    approval: ApprovalRecord | None


def overdue(row: AccessRequest, now: datetime) -> bool:
    return row.status == AccessRequestStatus.PENDING and row.decide_by <= now


def _payload(record: AccessRequestRecord, *names: str) -> dict[str, object]:
    values = {
        "community": record.community,
        "status": record.status,
        "rule_id": record.rule_id,
        "purposes": record.purposes,
        "data_categories": record.data_categories,
        "requested_until": record.requested_until.isoformat(),
        "decide_by": record.decide_by.isoformat(),
        "refusal_reason": record.refusal_reason,
        "approval_id": record.approval_id,
    }
    return {name: values[name] for name in names}


# -- the requester ---------------------------------------------------------------------------


def file_request(
    services: Services,
    *,
    caller: Caller,
    community: str | None,
    rule_id: str,
    purposes: list[str],
    data_categories: list[str],
    protocol: str,
    ethics_reference: str,
    benefit_plan: str,
    requested_until: datetime,
    now: datetime,
) -> AccessRequestRecord:
    """File the caller's organization's request with a community (audited)."""
    purposes, data_categories = list(dict.fromkeys(purposes)), list(dict.fromkeys(data_categories))
    if requested_until <= now:
        raise ValidationFailed(
            "The requested end date has passed.", details={"requested_until": ["must be in the future"]}
        )
    with services.writing(caller) as session:
        codes.check(session, services.policy, purposes=purposes, data_categories=data_categories)
        # The request goes to the rule's community. A requester that names a community is held to
        # it only where the community shows its id: where it hides it, a right guess and a wrong
        # one are answered alike (the request is filed with the rule's community, whose id the
        # answer withholds), so filing cannot confirm which community a member belongs to.
        rule = community_store.find_rule(session, rule_id)
        applies = (
            rule is not None
            and rule.retired_at is None
            and (WILDCARD in rule.requesters or caller.organization in rule.requesters)
            and rule_id in set(store.rule_ids_told(session, caller.organization))
        )
        if not applies or rule is None:
            raise ValidationFailed("Unknown rule.", details={"rule_id": [_UNKNOWN_RULE]})
        row = community_store.get(session, rule.community_id)
        assert row is not None  # a rule's community exists (foreign key)
        if community is not None and community != row.id and row.show_community_id:
            raise ValidationFailed("Unknown rule.", details={"rule_id": [_UNKNOWN_RULE]})
        community = row.id
        request = AccessRequest(
            id=str(uuid.uuid4()),
            community_id=community,
            requester=caller.organization,
            filed_by_client=caller.client_id,
            rule_id=rule_id,
            purposes=purposes,
            data_categories=data_categories,
            protocol=protocol,
            ethics_reference=ethics_reference,
            benefit_plan=benefit_plan,
            requested_until=requested_until,
            status=str(AccessRequestStatus.PENDING),
            filed_at=now,
            decide_by=now + timedelta(days=row.review_days),
        )
        community_store.add(session, request)
        record = AccessRequestRecord.of(request, now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.ACCESS_REQUEST_FILED,
            caller=caller,
            object_id=request.id,
            payload=_payload(
                record, "community", "rule_id", "purposes", "data_categories", "requested_until", "decide_by"
            ),
        )
        session.commit()
        return record.as_requester_sees(row.show_community_id)


def get_own(services: Services, *, caller: Caller, request_id: str, now: datetime) -> AccessRequestRecord:
    """One request, to its requester (``authorize``) or to a steward of its community
    (``community:read`` / ``rules:write``); to anyone else a 404 like a request that does not exist."""
    with services.reading(caller) as session:
        row = store.get(session, request_id)
        if row is None:
            raise NotFound(_NOT_FOUND)
        if caller.has(Scope.AUTHORIZE) and row.requester == caller.organization:
            community = community_store.get(session, row.community_id)
            shows = community is not None and community.show_community_id
            return AccessRequestRecord.of(row, now).as_requester_sees(shows)
        if (caller.has(Scope.RULES_WRITE) or caller.has(Scope.COMMUNITY_READ)) and services.policy.may_manage(
            organization=caller.organization,
            community=row.community_id,
            action=str(ManagementAction.ACCESS_REQUESTS_LIST),
            stewards=community_store.stewards(session, row.community_id),
        ):
            return AccessRequestRecord.of(row, now)
        raise NotFound(_NOT_FOUND)


def list_own(services: Services, *, caller: Caller, status: str | None, now: datetime) -> AccessRequestList:
    with services.reading(caller) as session:
        rows = store.of_requester(session, caller.organization)
        shown = {
            cid
            for cid in {row.community_id for row in rows}
            if (c := community_store.get(session, cid)) and c.show_community_id
        }
        records = [
            AccessRequestRecord.of(row, now).as_requester_sees(row.community_id in shown) for row in rows
        ]
    return AccessRequestList([r for r in records if status is None or r.status == status])


def withdraw(services: Services, *, caller: Caller, request_id: str, now: datetime) -> AccessRequestRecord:
    """The requester withdraws its pending request (audited); a closed one is a 409."""
    with services.writing(caller) as session:
        row = store.get(session, request_id, lock=True)
        if row is None or row.requester != caller.organization:
            raise NotFound(_NOT_FOUND)
        _require_open(row, now)
        bound_rows.changing(session, AccessRequest, row.id)
        row.status, row.closed_at, row.closed_by = (
            str(AccessRequestStatus.WITHDRAWN),
            now,
            caller.organization,
        )
        session.flush()
        record = AccessRequestRecord.of(row, now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.ACCESS_REQUEST_WITHDRAWN,
            caller=caller,
            object_id=row.id,
            payload=_payload(record, "community", "status"),
        )
        session.commit()
        return record


def _require_open(row: AccessRequest, now: datetime) -> None:
    if overdue(row, now):
        raise Conflict(f"The request was refused: {NO_DECISION_BY_DEADLINE} ({row.decide_by.isoformat()}).")
    if row.status != AccessRequestStatus.PENDING:
        raise Conflict(f"The request is already {row.status}.")


# -- the community's stewards ----------------------------------------------------------------


def community_queue(
    services: Services, *, caller: Caller, community_id: str, status: str | None, now: datetime
) -> AccessRequestList:
    """The community's requests, the nearest deadline first; ``status`` as of now filters."""
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.ACCESS_REQUESTS_LIST,
        )
        records = [AccessRequestRecord.of(row, now) for row in store.of_community(session, community_id)]
    return AccessRequestList([r for r in records if status is None or r.status == status])


def community_request(
    services: Services, *, caller: Caller, community_id: str, request_id: str, now: datetime
) -> AccessRequestRecord:
    """One request of the community (its stewards); another community's is a 404."""
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.ACCESS_REQUESTS_LIST,
        )
        row = store.get(session, request_id)
        if row is None or row.community_id != community_id:
            raise NotFound(_NOT_FOUND)
        return AccessRequestRecord.of(row, now)


def decide(
    services: Services,
    *,
    caller: Caller,
    request_id: str,
    decision: str,
    note: str | None,
    now: datetime,
    purposes: list[str] | None = None,
    data_categories: list[str] | None = None,
    expires_at: datetime | None = None,
    agreement_id: str | None = None,
    community_id: str | None = None,
) -> Decided:
    """A steward grants (creating the approval) or refuses a pending request (audited).

    ``purposes``, ``data_categories`` and ``expires_at`` narrow a grant (default: as requested;
    never wider); ``agreement_id`` puts the approval under one of the community's data sharing
    agreements (the requester must be a party). A refusal takes none of these (400 naming them).
    ``community_id``: the community the caller acts for (the pages), checked.
    """
    if decision != "grant":
        terms = {"purposes": purposes, "data_categories": data_categories, "expires_at": expires_at}
        given = [name for name, value in {**terms, "agreement_id": agreement_id}.items() if value is not None]
        if given:
            raise ValidationFailed(
                "Only a grant takes terms.", details={name: ["only a grant takes it"] for name in given}
            )
    with services.writing(caller) as session:
        row = store.get(session, request_id, lock=True)
        if row is None or (community_id is not None and row.community_id != community_id):
            raise NotFound(_NOT_FOUND)
        try:
            action = ManagementAction.ACCESS_REQUESTS_DECIDE
            if decision == "grant":
                begin_change(session, services, caller=caller, community_id=row.community_id, action=action)
            else:
                require_steward(
                    session, services, caller=caller, community_id=row.community_id, action=action
                )
        except Forbidden:
            raise NotFound(_NOT_FOUND) from None
        _require_open(row, now)
        approval = None
        if decision == "grant":
            granted_purposes, granted_categories, until = _narrowed(
                row, purposes, data_categories, expires_at
            )
            approval = add_approval(
                session,
                services,
                caller=caller,
                community_id=row.community_id,
                requester=row.requester,
                now=now,
                notes=note,
                access_request_id=row.id,
                agreement_id=agreement_id,
                purposes=granted_purposes,
                data_categories=granted_categories,
                expires_at=until,
            )
        bound_rows.changing(session, AccessRequest, row.id)
        row.status = str(AccessRequestStatus.GRANTED if approval else AccessRequestStatus.REFUSED)
        row.closed_at, row.closed_by, row.note = now, caller.organization, note
        row.approval_id = approval.id if approval else None
        session.flush()
        record = AccessRequestRecord.of(row, now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.ACCESS_REQUEST_GRANTED if approval else AuditTag.ACCESS_REQUEST_REFUSED,
            caller=caller,
            object_id=row.id,
            payload={
                **_payload(record, "community", "status", *(("approval_id",) if approval else ())),
                "note": note,
            },
        )
        session.commit()
        return Decided(access_request=record, approval=approval)


def _narrowed(
    row: AccessRequest,
    purposes: list[str] | None,
    data_categories: list[str] | None,
    expires_at: datetime | None,
) -> tuple[list[str], list[str], datetime]:
    """The approval's terms: the request's, or narrower ones the steward chose (400 if wider)."""
    details: dict[str, list[str]] = {}
    if purposes is not None and not set(purposes) <= set(row.purposes):
        details["purposes"] = [f"must be among the requested purposes: {', '.join(row.purposes)}"]
    if data_categories is not None and not set(data_categories) <= set(row.data_categories):
        details["data_categories"] = [
            f"must be among the requested data categories: {', '.join(row.data_categories)}"
        ]
    if expires_at is not None and expires_at > row.requested_until:
        details["expires_at"] = [
            f"must be no later than the requested end ({row.requested_until.isoformat()})"
        ]
    if details:
        raise ValidationFailed("A grant may narrow the request, never widen it.", details=details)
    return (
        purposes if purposes is not None else list(row.purposes),
        data_categories if data_categories is not None else list(row.data_categories),
        expires_at or row.requested_until,
    )


# -- the operator ----------------------------------------------------------------------------


def expire(services: Services, *, now: datetime) -> list[AccessRequestRecord]:
    """Record as refused every pending request past its deadline (one audit entry each).

    They already read as refused; this writes it down (``consent-service access-requests expire``,
    e.g. from cron), so the record and the audit log say when and why.
    """
    with services.writing(None) as session:
        records = []
        for row in store.overdue(session, now):
            bound_rows.changing(session, AccessRequest, row.id)
            row.status, row.closed_at = str(AccessRequestStatus.REFUSED), row.decide_by
            row.refusal_reason = NO_DECISION_BY_DEADLINE
            session.flush()
            record = AccessRequestRecord.of(row, now)
            services.append_audit(
                session,
                at=now,
                tag=AuditTag.ACCESS_REQUEST_EXPIRED,
                caller=None,
                object_id=row.id,
                payload=_payload(record, "community", "status", "decide_by", "refusal_reason"),
            )
            records.append(record)
        session.commit()
        return records
