"""Use cases of a community's rules (``/v1/communities/{id}/rules``): add, list, retire.

Only the community's stewards manage its rules (``stewards.require_steward``). Every change
bumps the community's ``policy_version`` in the same transaction as the change and its audit
entry (``stewards.begin_change``), so the very next decision anywhere sees it. The use cases
return :class:`RuleRecord`, which ``schemas.communities.RuleOut`` dumps (answers and audit
payloads).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core import local_contexts
from consent_service.core.caller import Caller
from consent_service.core.events import EventKind
from consent_service.core.obligations import problems as obligation_problems
from consent_service.core.wire import AuditTag, ManagementAction, RuleEffect
from consent_service.errors import Conflict, DuplicateRule, NotFound, ValidationFailed
from consent_service.schemas.communities import RULE_CREATED_PAYLOAD, RULE_RETIRED_PAYLOAD
from consent_service.services import codes, events
from consent_service.services.stewards import begin_change, require_steward
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import communities as store
from consent_service.storage.models import CommunityRule

# A rule may name "*" for its categories and requesters (never for its purposes).
RULE_WILDCARDS = frozenset({"data_categories", "requesters"})


@dataclass(frozen=True)
class RuleRecord:
    """A community's rule as its stewards see it (``RuleOut``)."""

    id: str
    community: str
    effect: str
    status: str  # "active" or "retired"
    purposes: list[str]
    data_categories: list[str]
    requesters: list[str]
    obligations: dict[str, Any]
    labels: list[str]
    reason: str
    created_at: datetime
    created_by: str
    retired_at: datetime | None
    retired_by: str | None
    retired_reason: str | None

    @classmethod
    def of(cls, rule: CommunityRule) -> RuleRecord:
        return cls(
            id=rule.id,
            community=rule.community_id,
            effect=rule.effect,
            status="retired" if rule.retired_at is not None else "active",
            purposes=list(rule.purposes),
            data_categories=list(rule.data_categories),
            requesters=list(rule.requesters),
            obligations=dict(rule.obligations),
            labels=list(rule.labels),
            reason=rule.reason,
            created_at=rule.created_at,
            created_by=rule.created_by,
            retired_at=rule.retired_at,
            retired_by=rule.retired_by,
            retired_reason=rule.retired_reason,
        )


@dataclass(frozen=True)
class RuleList:
    """A community's rules, oldest first (``RuleListOut``)."""

    rules: list[RuleRecord]


NO_CONDITIONS_ON_REFUSAL = "a deny rule carries no obligations: they travel only with what a rule allows"


@dataclass(frozen=True)
class RuleTerms:
    """A proposed rule's terms as they are stored: deduplicated, labels under their full names."""

    effect: str
    purposes: list[str]
    data_categories: list[str]
    requesters: list[str]
    obligations: dict[str, Any]
    labels: list[str]


def checked_terms(
    session: Session,
    services: Services,
    *,
    community_id: str,
    effect: str,
    purposes: list[str],
    data_categories: list[str],
    requesters: list[str],
    obligations: Mapping[str, Any],
    labels: list[str],
) -> RuleTerms:
    """The one check of what a proposed rule means, for its preview and its saving alike.

    The body has been through ``RuleIn`` (its shape); this judges its meaning, in this order:
    obligations (known, well formed, none on a rule that refuses: a deny never returns them)
    and Local Contexts labels (``ValidationFailed`` naming every problem by field); the codes
    (``codes.check``: ``UnknownCode``); then that the community has no active rule with the
    same effect, requesters, purposes and categories (``DuplicateRule`` naming it).
    """
    rule_effect = RuleEffect(effect)
    terms = RuleTerms(
        effect=str(rule_effect),
        purposes=list(dict.fromkeys(purposes)),
        data_categories=list(dict.fromkeys(data_categories)),
        requesters=list(dict.fromkeys(requesters)),
        obligations=dict(obligations),
        labels=[],
    )
    details: dict[str, list[str]] = {}
    if problems := obligation_problems(obligations):
        details["obligations"] = problems
    if obligations and rule_effect is RuleEffect.DENY:
        details.setdefault("obligations", []).append(NO_CONDITIONS_ON_REFUSAL)
    known, unknown = local_contexts.canonical(labels)
    if unknown:
        details["labels"] = [f"not a Local Contexts label or notice: {label}" for label in unknown]
    if details:
        raise ValidationFailed("The rule is not valid.", details=details)
    codes.check(
        session,
        services.policy,
        purposes=terms.purposes,
        data_categories=terms.data_categories,
        organizations={"requesters": terms.requesters},
        wildcards=RULE_WILDCARDS,
    )
    same = (terms.effect, set(terms.requesters), set(terms.purposes), set(terms.data_categories))
    for rule in store.rules(session, community_id, include_retired=False):
        if (rule.effect, set(rule.requesters), set(rule.purposes), set(rule.data_categories)) == same:
            raise DuplicateRule(
                "The community already has this rule in force: retire it first, or change this one.",
                details={"rule_id": rule.id},
            )
    return replace(terms, labels=known)


def create_rule(
    services: Services,
    *,
    caller: Caller,
    community_id: str,
    effect: str,
    purposes: list[str],
    data_categories: list[str],
    requesters: list[str],
    obligations: dict[str, Any],
    labels: list[str],
    reason: str,
    now: datetime,
) -> RuleRecord:
    """Add a rule to the community; it binds every member from the next decision on."""
    with services.writing(caller) as session:
        version = begin_change(
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
            obligations=obligations,
            labels=labels,
        )
        rule = CommunityRule(
            id=str(uuid.uuid4()),
            community_id=community_id,
            effect=terms.effect,
            purposes=terms.purposes,
            data_categories=terms.data_categories,
            requesters=terms.requesters,
            obligations=terms.obligations,
            labels=terms.labels,
            reason=reason,
            created_at=now,
            created_by=caller.organization,
            created_by_client=caller.client_id,
            created_version=version,
        )
        store.add(session, rule)
        events.community_change(
            session,
            services,
            kind=EventKind.RULE_ADDED,
            community_id=community_id,
            requesters=rule.requesters,
            now=now,
        )
        record = RuleRecord.of(rule)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.RULE_CREATED,
            caller=caller,
            object_id=rule.id,
            payload=RULE_CREATED_PAYLOAD.dump(record),
        )
        session.commit()
        return record


def list_rules(services: Services, *, caller: Caller, community_id: str, include_retired: bool) -> RuleList:
    with services.reading(caller) as session:
        require_steward(
            session, services, caller=caller, community_id=community_id, action=ManagementAction.RULES_LIST
        )
        return RuleList(
            rules=[
                RuleRecord.of(rule)
                for rule in store.rules(session, community_id, include_retired=include_retired)
            ]
        )


def retire_rule(
    services: Services, *, caller: Caller, community_id: str, rule_id: str, reason: str | None, now: datetime
) -> RuleRecord:
    """Stop applying a rule from the next decision on; it stays in the history, stamped."""
    with services.writing(caller) as session:
        version = begin_change(
            session, services, caller=caller, community_id=community_id, action=ManagementAction.RULES_RETIRE
        )
        rule = store.get_rule(session, community_id, rule_id)
        if rule is None:
            raise NotFound("No such rule in this community.")
        if rule.retired_at is not None:
            raise Conflict("The rule is already retired.")
        bound_rows.changing(session, CommunityRule, rule.id)
        rule.retired_at, rule.retired_by, rule.retired_reason = now, caller.organization, reason
        rule.retired_version = version
        session.flush()
        events.community_change(
            session,
            services,
            kind=EventKind.RULE_RETIRED,
            community_id=community_id,
            requesters=rule.requesters,
            now=now,
        )
        record = RuleRecord.of(rule)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.RULE_RETIRED,
            caller=caller,
            object_id=rule.id,
            payload=RULE_RETIRED_PAYLOAD.dump(record),
        )
        session.commit()
        return record
