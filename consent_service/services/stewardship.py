"""What a community's stewards look at besides its rules: requests waiting on the community,
decisions about members over time, and the names to choose from on forms.

Each use case checks, as the API's do, that the caller's organization is a steward of the
community (``stewards.require_steward``). Nothing here returns a subject identifier,
pseudonym or consent id.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.decision_record import approval_terms
from consent_service.core.engine import AccessRequest, ApprovalTerms
from consent_service.core.policy import Rule
from consent_service.core.wire import ManagementAction, Outcome, ReasonCode, RuleEffect
from consent_service.services.stewards import require_steward
from consent_service.storage import communities as community_store
from consent_service.storage import decisions as decision_store
from consent_service.storage import directory
from consent_service.storage.db import read_snapshot

WINDOW_DAYS = 90


def names(services: Services) -> dict[str, list[dict[str, str]]]:
    """Every organization and community, id and name: the choices a form offers."""
    with read_snapshot(services.sessions) as session:
        return {
            "organizations": [
                {"id": o.id, "name": o.name, "type": o.type} for o in directory.organizations(session)
            ],
            "communities": [{"id": c.id, "name": c.name} for c in directory.communities(session)],
        }


def stewarded(services: Services, *, caller: Caller) -> list[dict[str, str]]:
    """The communities the caller's organization is a steward of (each page checks again)."""
    with services.reading(caller) as session:
        return [{"id": c.id, "name": c.name} for c in directory.stewarded_by(session, caller.organization)]


def in_force_approvals(session: Session, community_id: str, now: datetime) -> list[ApprovalTerms]:
    """The community's approvals in force at ``now`` as the engine's values, built as authorize
    builds them (``decision_record.approval_terms``) so a page's "would this be approved?" and
    the real decision cannot disagree."""
    approvals = community_store.approvals(session, community_id, include_revoked=False)
    return [terms for terms in map(approval_terms, approvals) if terms.in_force(now)]


def waiting_requests(
    services: Services, *, caller: Caller, community_id: str, now: datetime, days: int = WINDOW_DAYS
) -> dict[str, Any]:
    """Requests denied in the last ``days`` days because this community had not approved them,
    grouped by requester and purpose: how often, which data, when, and whether an approval in
    force now would cover them all (``approved``)."""
    start = now - timedelta(days=days)
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.APPROVALS_LIST,
        )
        in_force = in_force_approvals(session, community_id, now)
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        denied = decision_store.community_history(
            session, community_id, start=start, outcome=str(Outcome.DENY)
        )
        for row in denied:
            waiting = [
                r
                for r in row.reasons
                if r.get("code") == ReasonCode.APPROVAL_REQUIRED and r.get("community") == community_id
            ]
            if not waiting:
                continue
            group = groups.setdefault(
                (row.requester, row.purpose),
                {
                    "requester": row.requester,
                    "purpose": row.purpose,
                    "count": 0,
                    "data_categories": [],
                    "first_at": row.at,
                    "last_at": row.at,
                    "reasons": [],
                },
            )
            group["count"] += 1
            group["last_at"] = row.at
            for category in row.data_categories:
                if category not in group["data_categories"]:
                    group["data_categories"].append(category)
            for reason in waiting:
                if reason.get("message") and reason["message"] not in group["reasons"]:
                    group["reasons"].append(reason["message"])
    anyone = Rule(
        id="waiting",
        community=community_id,
        effect=RuleEffect.REQUIRE_APPROVAL,
        purposes=(),
        data_categories=(),
        requesters=(),
    )
    for group in groups.values():
        request = AccessRequest(
            requester=group["requester"],
            purpose=group["purpose"],
            data_categories=tuple(group["data_categories"]),
        )
        group["approved"] = services.engine.approved(request, anyone, in_force)
    ordered = sorted(
        groups.values(), key=lambda g: (g["approved"], -g["count"], g["requester"], g["purpose"])
    )
    return {"community": community_id, "days": days, "since": start, "requests": ordered}


def decision_timeline(
    services: Services, *, caller: Caller, community_id: str, now: datetime, days: int = WINDOW_DAYS
) -> dict[str, Any]:
    """Decisions about members per day (UTC) and outcome over the last ``days`` days, oldest first,
    with totals by requester and purpose."""
    start_day = (now - timedelta(days=days - 1)).date()
    start = datetime.combine(start_day, datetime.min.time(), tzinfo=now.tzinfo)
    per_day: dict[date, Counter[str]] = {start_day + timedelta(days=i): Counter() for i in range(days)}
    by_requester: Counter[str] = Counter()
    by_purpose: Counter[str] = Counter()
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.DECISIONS_LIST,
        )
        for row in decision_store.community_history(session, community_id, start=start):
            day = row.at.astimezone(now.tzinfo).date()
            if day in per_day:
                per_day[day][row.outcome] += 1
                by_requester[row.requester] += 1
                by_purpose[row.purpose] += 1
    series = [
        {"day": day, "permit": counts[str(Outcome.PERMIT)], "deny": counts[str(Outcome.DENY)]}
        for day, counts in sorted(per_day.items())
    ]
    return {
        "community": community_id,
        "days": days,
        "since": start,
        "series": series,
        "total": {"permit": sum(d["permit"] for d in series), "deny": sum(d["deny"] for d in series)},
        "by_requester": dict(by_requester.most_common()),
        "by_purpose": dict(by_purpose.most_common()),
    }
