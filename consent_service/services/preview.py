"""What a proposed community rule would have done: replay recent decisions against it.

Before a steward saves a rule, the page shows how many of the last ``days`` days' decisions
about the community's members it would have changed. The recorded requests (requester,
purpose, data categories and outcome: never the subject) are matched against the proposed
rule compiled by the same code the decision engine uses (``PolicyBase.compile_rules``), so the
preview and the real decisions cannot disagree on what "matches" means.

A decision counts as changed when it was a permit and the rule would have turned it into a
deny: a ``deny`` rule that matches it, or a ``require_approval`` rule that matches it with no
approval of this community in force now covering the requester, purpose and categories.
Decisions that were already denies stay denies, whatever the rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.engine import AccessRequest
from consent_service.core.policy import Rule
from consent_service.core.wire import ManagementAction, Outcome, RuleEffect
from consent_service.services.rules import checked_terms
from consent_service.services.stewards import require_steward
from consent_service.services.stewardship import in_force_approvals
from consent_service.storage import decisions as decision_store

PREVIEW_DAYS = 90
PROPOSED = "proposed"


@dataclass(frozen=True)
class ChangedRequests:
    """How many of one requester's decisions for one purpose the rule would have turned to denies."""

    requester: str
    purpose: str
    count: int


@dataclass(frozen=True)
class RulePreview:
    """What the proposed rule would have done to the decisions about members in [since, until)."""

    community: str
    days: int
    since: datetime
    until: datetime
    considered: int
    matched: int
    changed: int
    changed_by: list[ChangedRequests]  # most first


def preview_rule(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    effect: str,
    purposes: list[str],
    data_categories: list[str],
    requesters: list[str],
    now: datetime,
    obligations: Mapping[str, Any] | None = None,
    labels: list[str] | None = None,
    days: int = PREVIEW_DAYS,
) -> RulePreview:
    """How the last ``days`` days' decisions about members would have gone under the proposed rule.

    Checked exactly as adding the rule would be, by the same function
    (``rules.checked_terms``: obligations, labels, codes, no duplicate of a rule in force), so a
    rule that previews is a rule that saves; nothing is written. ``changed`` counts permits
    that would have been denies; ``matched`` every decision the rule matches; ``changed_by``
    breaks ``changed`` down by requester and purpose, most first.
    """
    rule_effect = RuleEffect(effect)
    start = now - timedelta(days=days)
    with services.reading(caller) as session:
        require_steward(
            session, services, caller=caller, community_id=community_id, action=ManagementAction.RULES_CREATE
        )
        terms = checked_terms(
            session,
            services,
            community_id=community_id,
            effect=effect,
            purposes=purposes,
            data_categories=data_categories,
            requesters=requesters,
            obligations=obligations or {},
            labels=labels or [],
        )
        proposed = Rule(
            id=PROPOSED,
            community=community_id,
            effect=rule_effect,
            purposes=tuple(terms.purposes),
            data_categories=tuple(terms.data_categories),
            requesters=tuple(terms.requesters),
        )
        compiled = services.policy.compile_rules(community_id, 0, [proposed])
        in_force = in_force_approvals(session, community_id, now)

        considered = matched = changed = 0
        changed_by: Counter[tuple[str, str]] = Counter()
        for row in decision_store.community_history(session, community_id, start=start):
            considered += 1
            if not compiled.matching(
                effect=rule_effect,
                requester=row.requester,
                purpose=row.purpose,
                categories=row.data_categories,
            ):
                continue
            matched += 1
            if row.outcome != Outcome.PERMIT:
                continue
            if rule_effect is RuleEffect.REQUIRE_APPROVAL:
                request = AccessRequest(
                    requester=row.requester, purpose=row.purpose, data_categories=tuple(row.data_categories)
                )
                if services.engine.approved(request, proposed, in_force):
                    continue
            changed += 1
            changed_by[(row.requester, row.purpose)] += 1
    return RulePreview(
        community=community_id,
        days=days,
        since=start,
        until=now,
        considered=considered,
        matched=matched,
        changed=changed,
        changed_by=[
            ChangedRequests(requester=requester, purpose=purpose, count=count)
            for (requester, purpose), count in changed_by.most_common()
        ],
    )
