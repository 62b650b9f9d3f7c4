"""Communities and their governance: stewards, collective rules, approvals, what they may see.

OCAP: a community's rules and approvals are managed by its stewards only (checked with
Casbin, ``PolicyBase.may_manage``); the service's own administrators create communities and
name their stewards but cannot change a community's rules.

Every change to rules or approvals bumps the community's ``policy_version`` in the same
transaction as the change and its audit entry, so the very next decision anywhere sees it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core import local_contexts
from consent_service.core.caller import Caller
from consent_service.core.obligations import problems as obligation_problems
from consent_service.core.wire import AuditTag, ManagementAction, ReasonCode, RuleEffect
from consent_service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from consent_service.services import codes
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import communities as store
from consent_service.storage import decisions as decision_store
from consent_service.storage.db import read_snapshot, write
from consent_service.storage.models import Approval, Community, CommunityRule, CommunitySteward, Decision

# A rule may name "*" for its categories and requesters (never for its purposes).
RULE_WILDCARDS = frozenset({"data_categories", "requesters"})


def _community_dict(community: Community, stewards: list[str]) -> dict[str, Any]:
    return {"id": community.id, "name": community.name, "stewards": stewards,
            "policy_version": community.policy_version, "show_community_id": community.show_community_id,
            "created_at": community.created_at}


def create_community(services: Services, *, caller: Caller, id: str, name: str, stewards: list[str],
                     now: datetime, show_community_id: bool = False) -> dict[str, Any]:
    """``show_community_id``: whether answers to requesters a member's consent names carry the
    community's id (core/disclosure.py); by default they do not."""
    stewards = sorted(set(stewards))
    with write(services.sessions) as session:
        if store.get(session, id) is not None:
            raise Conflict(f"Community {id} already exists.")
        codes.check(session, services.policy, organizations={"stewards": stewards})
        community = Community(id=id, name=name, policy_version=1, created_at=now,
                              show_community_id=show_community_id)
        store.add(session, community)
        store.add(session, *(CommunitySteward(community_id=id, organization_id=org) for org in stewards))
        services.append_audit(session, at=now, tag=AuditTag.COMMUNITY_CREATED, caller=caller, object_id=id,
                              payload={"name": name, "stewards": stewards,
                                       "show_community_id": show_community_id})
        session.commit()
        return _community_dict(community, stewards)


def get_community(services: Services, *, caller: Caller, community_id: str) -> dict[str, Any]:
    """The community and its settings, for its stewards."""
    with read_snapshot(services.sessions) as session:
        _require_steward(session, services, caller=caller, community_id=community_id,
                         action=ManagementAction.RULES_LIST)
        community = store.get(session, community_id)
        assert community is not None
        return _community_dict(community, store.stewards(session, community_id))


def change_settings(services: Services, *, caller: Caller, community_id: str, show_community_id: bool,
                    now: datetime) -> dict[str, Any]:
    """A steward changes whether answers name the community. Bumps the policy version (the next
    decision anywhere reads the new setting in its snapshot) and is audited."""
    with write(services.sessions) as session:
        _begin_change(session, services, caller=caller, community_id=community_id,
                      action=ManagementAction.RULES_CREATE)
        community = store.get(session, community_id)
        assert community is not None
        was, community.show_community_id = community.show_community_id, show_community_id
        session.flush()
        session.refresh(community)  # the version bump above was a Core UPDATE
        services.append_audit(session, at=now, tag=AuditTag.COMMUNITY_CHANGED, caller=caller,
                              object_id=community_id,
                              payload={"show_community_id": show_community_id, "was": was})
        session.commit()
        return _community_dict(community, store.stewards(session, community_id))


# -- who may manage a community ---------------------------------------------------------------

def _require_steward(session: Session, services: Services, *, caller: Caller, community_id: str,
                     action: ManagementAction) -> None:
    """404 for an unknown community; 403 unless Casbin says the caller's organization may ``action`` it.

    The caller's scope is the view's to check; this is the per-community half. Being the
    service's admin grants nothing here: only the community's stewards act for it.
    """
    if store.get(session, community_id) is None:
        raise NotFound("No such community.")
    if not services.policy.may_manage(organization=caller.organization, community=community_id,
                                      action=str(action), stewards=store.stewards(session, community_id)):
        raise Forbidden(f"Only a steward of community {community_id} may do this.")


def _begin_change(session: Session, services: Services, *, caller: Caller, community_id: str,
                  action: ManagementAction) -> int:
    """Check the caller, then bump the community's policy version before reading what changes.

    The bump is an UPDATE of the community's row, so it also locks that row until commit:
    two changes to one community run one after the other, and the second reads the first's
    result (e.g. a rule retired twice at once gives one retirement and one 409). Returns the
    new version, which a rule change stamps on its rule (the rule cache reads changes by it).
    """
    _require_steward(session, services, caller=caller, community_id=community_id, action=action)
    return store.bump_policy_version(session, community_id)


# -- rules ------------------------------------------------------------------------------------

def _rule_dict(rule: CommunityRule) -> dict[str, Any]:
    return {
        "id": rule.id, "community": rule.community_id, "effect": rule.effect,
        "status": "retired" if rule.retired_at is not None else "active",
        "purposes": list(rule.purposes), "data_categories": list(rule.data_categories),
        "requesters": list(rule.requesters), "obligations": dict(rule.obligations),
        "labels": list(rule.labels), "reason": rule.reason,
        "created_at": rule.created_at, "created_by": rule.created_by,
        "retired_at": rule.retired_at, "retired_by": rule.retired_by, "retired_reason": rule.retired_reason,
    }


def _validated_terms(obligations: Mapping[str, Any], labels: list[str]) -> list[str]:
    """The labels under their full names; ``ValidationFailed`` naming every problem otherwise."""
    details: dict[str, list[str]] = {}
    if problems := obligation_problems(obligations):
        details["obligations"] = problems
    known, unknown = local_contexts.canonical(labels)
    if unknown:
        details["labels"] = [f"not a Local Contexts label or notice: {label}" for label in unknown]
    if details:
        raise ValidationFailed("The rule is not valid.", details=details)
    return known


def create_rule(services: Services, *, caller: Caller, community_id: str, effect: str, purposes: list[str],
                data_categories: list[str], requesters: list[str], obligations: dict[str, Any],
                labels: list[str], reason: str, now: datetime) -> dict[str, Any]:
    """Add a rule to the community; it binds every member from the next decision on."""
    purposes, data_categories = list(dict.fromkeys(purposes)), list(dict.fromkeys(data_categories))
    requesters = list(dict.fromkeys(requesters))
    with write(services.sessions) as session:
        version = _begin_change(session, services, caller=caller, community_id=community_id,
                                action=ManagementAction.RULES_CREATE)
        labels = _validated_terms(obligations, labels)
        codes.check(session, services.policy, purposes=purposes, data_categories=data_categories,
                    organizations={"requesters": requesters}, wildcards=RULE_WILDCARDS)
        rule = CommunityRule(
            id=str(uuid.uuid4()), community_id=community_id, effect=str(RuleEffect(effect)),
            purposes=purposes, data_categories=data_categories, requesters=requesters,
            obligations=dict(obligations), labels=labels, reason=reason, created_at=now,
            created_by=caller.organization, created_by_client=caller.client_id, created_version=version)
        store.add(session, rule)
        services.append_audit(session, at=now, tag=AuditTag.RULE_CREATED, caller=caller, object_id=rule.id,
                              payload={"community": community_id, "effect": rule.effect, "purposes": purposes,
                                       "data_categories": data_categories, "requesters": requesters,
                                       "obligations": rule.obligations, "labels": labels, "reason": reason})
        session.commit()
        return _rule_dict(rule)


def list_rules(services: Services, *, caller: Caller, community_id: str,
               include_retired: bool) -> dict[str, Any]:
    with read_snapshot(services.sessions) as session:
        _require_steward(session, services, caller=caller, community_id=community_id,
                         action=ManagementAction.RULES_LIST)
        return {"rules": [_rule_dict(rule) for rule in
                          store.rules(session, community_id, include_retired=include_retired)]}


def retire_rule(services: Services, *, caller: Caller, community_id: str, rule_id: str, reason: str | None,
                now: datetime) -> dict[str, Any]:
    """Stop applying a rule from the next decision on; it stays in the history, stamped."""
    with write(services.sessions) as session:
        version = _begin_change(session, services, caller=caller, community_id=community_id,
                                action=ManagementAction.RULES_RETIRE)
        rule = store.get_rule(session, community_id, rule_id)
        if rule is None:
            raise NotFound("No such rule in this community.")
        if rule.retired_at is not None:
            raise Conflict("The rule is already retired.")
        bound_rows.changing(session, CommunityRule, rule.id)
        rule.retired_at, rule.retired_by, rule.retired_reason = now, caller.organization, reason
        rule.retired_version = version
        session.flush()
        services.append_audit(session, at=now, tag=AuditTag.RULE_RETIRED, caller=caller, object_id=rule.id,
                              payload={"community": community_id, "reason": reason})
        session.commit()
        return _rule_dict(rule)


# -- approvals --------------------------------------------------------------------------------

def _approval_dict(approval: Approval, now: datetime) -> dict[str, Any]:
    if approval.revoked_at is not None:
        status = "revoked"
    elif approval.expires_at is not None and approval.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return {
        "id": approval.id, "community": approval.community_id, "requester": approval.requester,
        "status": status, "purposes": list(approval.purposes),
        "data_categories": list(approval.data_categories),
        "expires_at": approval.expires_at, "notes": approval.notes,
        "created_at": approval.created_at, "created_by": approval.created_by,
        "revoked_at": approval.revoked_at, "revoked_by": approval.revoked_by,
        "revoked_reason": approval.revoked_reason,
    }


def create_approval(services: Services, *, caller: Caller, community_id: str, requester: str,
                    purposes: list[str], data_categories: list[str], expires_at: datetime | None,
                    notes: str | None, now: datetime) -> dict[str, Any]:
    """Record the community's approval for one requester; it satisfies matching require_approval rules."""
    purposes, data_categories = list(dict.fromkeys(purposes)), list(dict.fromkeys(data_categories))
    with write(services.sessions) as session:
        _begin_change(session, services, caller=caller, community_id=community_id,
                      action=ManagementAction.APPROVALS_CREATE)
        if expires_at is not None and expires_at <= now:
            raise ValidationFailed("The approval would already be expired.",
                                   details={"expires_at": ["must be in the future"]})
        codes.check(session, services.policy, purposes=purposes, data_categories=data_categories,
                    organizations={"requester": [requester]})
        approval = Approval(id=str(uuid.uuid4()), community_id=community_id, requester=requester,
                            purposes=purposes, data_categories=data_categories, expires_at=expires_at,
                            notes=notes, created_at=now, created_by=caller.organization,
                            created_by_client=caller.client_id)
        store.add(session, approval)
        services.append_audit(session, at=now, tag=AuditTag.APPROVAL_GRANTED, caller=caller,
                              object_id=approval.id, payload={
                                  "community": community_id, "requester": requester, "purposes": purposes,
                                  "data_categories": data_categories,
                                  "expires_at": expires_at.isoformat() if expires_at else None})
        session.commit()
        return _approval_dict(approval, now)


def list_approvals(services: Services, *, caller: Caller, community_id: str, include_revoked: bool,
                   now: datetime) -> dict[str, Any]:
    with read_snapshot(services.sessions) as session:
        _require_steward(session, services, caller=caller, community_id=community_id,
                         action=ManagementAction.APPROVALS_LIST)
        return {"approvals": [_approval_dict(approval, now) for approval in
                              store.approvals(session, community_id, include_revoked=include_revoked)]}


def revoke_approval(services: Services, *, caller: Caller, community_id: str, approval_id: str,
                    reason: str | None, now: datetime) -> dict[str, Any]:
    """Withdraw an approval from the next decision on; it stays in the history, stamped."""
    with write(services.sessions) as session:
        _begin_change(session, services, caller=caller, community_id=community_id,
                      action=ManagementAction.APPROVALS_REVOKE)
        approval = store.get_approval(session, community_id, approval_id)
        if approval is None:
            raise NotFound("No such approval in this community.")
        if approval.revoked_at is not None:
            raise Conflict("The approval is already revoked.")
        bound_rows.changing(session, Approval, approval.id)
        approval.revoked_at, approval.revoked_by, approval.revoked_reason = now, caller.organization, reason
        session.flush()
        services.append_audit(session, at=now, tag=AuditTag.APPROVAL_REVOKED, caller=caller,
                              object_id=approval.id, payload={"community": community_id, "reason": reason})
        session.commit()
        return _approval_dict(approval, now)


# -- what a community sees ----------------------------------------------------------------------

_OWN_CONSENT = "An individual consent covers this use."
_OTHER_COMMUNITY = "A rule of another community applies."


def _reason_as_seen_by(community_id: str, reason: Mapping[str, Any]) -> dict[str, Any]:
    """A decision's reason without what would identify the person or expose another community.

    A consent id is a handle on one person's record (it links their decisions together),
    so it is dropped along with the message that names it; another community's rule is
    reduced to its code, since its ids and wording are that community's business.
    """
    code = reason.get("code")
    if code == ReasonCode.CONSENT:
        return {"code": code, "message": _OWN_CONSENT}
    if reason.get("community") not in (None, community_id):
        return {"code": code, "message": _OTHER_COMMUNITY}
    return {key: value for key, value in reason.items() if key != "consent_id"}


def decision_as_seen_by(community_id: str, decision: Decision) -> dict[str, Any]:
    return {
        "id": decision.id, "at": decision.at, "requester": decision.requester, "purpose": decision.purpose,
        "data_categories": list(decision.data_categories), "decision": decision.outcome,
        "reasons": [_reason_as_seen_by(community_id, reason) for reason in decision.reasons],
        "obligations": [dict(item) for item in decision.obligations if item.get("community") == community_id],
    }


def community_decisions(services: Services, *, caller: Caller, community_id: str, since: datetime | None,
                        until: datetime | None, limit: int) -> dict[str, Any]:
    """Every decision that touched a member, newest first, and counts over the whole time range.

    Never a subject identifier, pseudonym or consent id: the community sees how its members'
    data is used, not who the members are. ``counts`` cover every decision in
    [since, until), not only the ``limit`` returned.
    """
    with read_snapshot(services.sessions) as session:
        _require_steward(session, services, caller=caller, community_id=community_id,
                         action=ManagementAction.DECISIONS_LIST)
        rows = decision_store.for_community(session, community_id, since=since, until=until, limit=limit)
        counts = decision_store.community_counts(session, community_id, since=since, until=until)
        return {
            "community": community_id, "since": since, "until": until,
            "total": sum(counts["outcome"].values()),
            "counts": {"by_requester": counts["requester"], "by_purpose": counts["purpose"],
                       "by_outcome": counts["outcome"]},
            "decisions": [decision_as_seen_by(community_id, row) for row in rows],
        }


def protected_grants(services: Services, *, caller: Caller, community_id: str) -> dict[str, Any]:
    """Consents granting a protected purpose (where the deployment allows one) to members of the
    community, newest first: when, by which organization, where, for what and to whom; never a
    consent id or pseudonym."""
    with read_snapshot(services.sessions) as session:
        _require_steward(session, services, caller=caller, community_id=community_id,
                         action=ManagementAction.DECISIONS_LIST)
        rows = store.protected_grants(session, community_id)
        return {"community": community_id, "grants": [
            {"at": row.at, "purposes": list(row.purposes), "recipients": list(row.recipients),
             "recorded_by": row.recorded_by, "setting": row.setting} for row in rows]}
