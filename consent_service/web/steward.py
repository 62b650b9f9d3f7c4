"""Steward pages: a community's rules, approvals, waiting requests and decisions about members.

Every page needs the ``rules:write`` role (as the API's community endpoints need that scope)
and then calls a use case that checks, with Casbin, that the person's organization is a
steward of *this* community: a steward of community B gets 403 on community A's pages, and
404 for a community that does not exist, exactly as through the API.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

from flask import Response, flash, redirect, request, url_for
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from consent_service.container import current as services
from consent_service.core.permissions import Scope
from consent_service.core.wire import RuleEffect
from consent_service.errors import (
    Conflict,
    DuplicateRule,
    NotFound,
    ServiceError,
    UnknownCode,
    ValidationFailed,
)
from consent_service.schemas.communities import ApprovalIn, ChangeReasonIn, RuleIn
from consent_service.services import approvals as approval_cases
from consent_service.services import communities, preview, stewardship
from consent_service.services import rules as rule_cases
from consent_service.web import i18n
from consent_service.web.charts import timeline_svg
from consent_service.web.forms import ApprovalForm, RuleForm, flatten, in_words, loaded
from consent_service.web.intake import tree
from consent_service.web.render import blueprint, page, words
from consent_service.web.session import caller_with, now
from consent_service.web.words import OBLIGATIONS

bp = blueprint("steward", __name__, "/web/communities")

PERIODS = (30, 90, 365)
PAST = "must be in the future"  # the use case's words for an end date already past


def _community(community_id: str, **context: Any) -> dict[str, Any]:
    return {"community_id": community_id, "community_name": words().community(community_id), **context}


@bp.get("/")
def index() -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    return page("steward/index.html", communities=stewardship.stewarded(services(), caller=caller))


# -- rules --------------------------------------------------------------------------------------


@bp.get("/<community_id>/")
def rules(community_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    listed = rule_cases.list_rules(services(), caller=caller, community_id=community_id, include_retired=True)
    # words.rule() reads a rule by key, as the new-rule form's preview gives it
    active = [asdict(r) for r in listed.rules if r.status == "active"]
    retired = [asdict(r) for r in listed.rules if r.status != "active"]
    return page("steward/rules.html", **_community(community_id, active=active, retired=retired))


def _fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _rule_form(
    community_id: str,
    *,
    values: MultiDict[str, str],
    errors: dict[str, list[str]],
    result: preview.RulePreview | None = None,
    fingerprint: str = "",
    previewed: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    vocabulary = services().policy.vocabulary
    organizations = stewardship.names(services())["organizations"]
    return page(
        "steward/rule_new.html",
        status=status,
        **_community(
            community_id,
            values=values,
            errors=errors,
            preview=result,
            preview_obligations=(previewed or {}).get("obligations", {}),
            fingerprint=fingerprint,
            purposes=tree(vocabulary.purposes),
            categories=tree(vocabulary.data_categories),
            organizations=organizations,
            obligations=list(OBLIGATIONS),
            label_families=words().label_families(),
            effects=[str(e) for e in RuleEffect],
            days=preview.PREVIEW_DAYS,
        ),
    )


def _refusal(exc: ServiceError, community_id: str, caller: Any) -> dict[str, list[str]]:
    """A use case's refusal of a proposed rule as the form's per-field messages, in the page's
    language: the same for its preview and its saving (both go through ``rules.checked_terms``)."""
    if isinstance(exc, DuplicateRule):
        listed = rule_cases.list_rules(
            services(), caller=caller, community_id=community_id, include_retired=False
        )
        same = next((asdict(r) for r in listed.rules if r.id == exc.details.get("rule_id")), None)
        return {
            "form": [
                i18n.translate(
                    "This rule is already in force: “{rule}” (made by {organization} on {date}). "
                    "Retire that one first, or change this one.",
                    rule=words().rule(same) if same else exc.details.get("rule_id", ""),
                    organization=words().org(same["created_by"]) if same else "",
                    date=words().day(same["created_at"]) if same else "",
                )
            ]
        }
    return in_words(flatten(exc.details)) or {"form": [exc.message]}


@bp.route("/<community_id>/rules/new", methods=["GET", "POST"])
def new_rule(community_id: str) -> Response:
    """Fill in, preview (replaying the last 90 days' decisions), then save what was previewed.

    The preview is as strict as the saving: the same schema (``RuleIn``), then the same check
    of meaning (``rules.checked_terms``: obligations, labels, codes, duplicates), so a rule that
    previews is one that saves, and the messages are the same ones, translated.
    """
    caller = caller_with(Scope.RULES_WRITE)
    if request.method == "GET":
        # Checks the caller is a steward before showing anything of the community.
        rule_cases.list_rules(services(), caller=caller, community_id=community_id, include_retired=False)
        return _rule_form(community_id, values=MultiDict({"effect": "deny", "requesters": "*"}), errors={})
    rule_form = RuleForm(formdata=request.form)
    errors = rule_form.problems()
    body = loaded(RuleIn(), rule_form.body(), errors)
    if errors:
        return _rule_form(community_id, values=request.form, errors=in_words(errors), status=400)
    fingerprint = _fingerprint(body)
    try:
        if request.form.get("action") == "save" and request.form.get("previewed") == fingerprint:
            rule_cases.create_rule(services(), caller=caller, community_id=community_id, now=now(), **body)
            flash(i18n.translate("The rule is saved. It applies from the next request on."), "success")
            return redirect(url_for("steward.rules", community_id=community_id))  # type: ignore[return-value]
        if request.form.get("action") == "save":
            flash(
                i18n.translate("The rule changed since its preview. Check the new preview, then save."),
                "info",
            )
        result = preview.preview_rule(
            services(),
            caller=caller,
            community_id=community_id,
            effect=body["effect"],
            purposes=body["purposes"],
            data_categories=body["data_categories"],
            requesters=body["requesters"],
            obligations=body["obligations"],
            labels=body["labels"],
            now=now(),
        )
    except (ValidationFailed, UnknownCode, DuplicateRule) as exc:
        return _rule_form(
            community_id, values=request.form, errors=_refusal(exc, community_id, caller), status=400
        )
    return _rule_form(
        community_id,
        values=request.form,
        errors={},
        result=result,
        fingerprint=fingerprint,
        previewed=body,
    )


@bp.route("/<community_id>/rules/<rule_id>/retire", methods=["GET", "POST"])
def retire_rule(community_id: str, rule_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    listed = rule_cases.list_rules(services(), caller=caller, community_id=community_id, include_retired=True)
    rule = next((asdict(r) for r in listed.rules if r.id == rule_id), None)
    if rule is None:
        raise NotFound("No such rule in this community.")
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        reason = request.form.get("reason", "").strip()
        if not reason:
            errors["reason"] = [i18n.translate("Give the reason for retiring the rule.")]
        else:
            try:
                body = ChangeReasonIn().load({"reason": reason})
                rule_cases.retire_rule(
                    services(),
                    caller=caller,
                    community_id=community_id,
                    rule_id=rule_id,
                    reason=body["reason"],
                    now=now(),
                )
                flash(i18n.translate("The rule is retired. It no longer applies."), "success")
            except ValidationError as exc:
                errors = in_words(flatten(exc.messages))
            except Conflict:
                flash(i18n.translate("This rule was already retired."), "info")
            if not errors:
                return redirect(url_for("steward.rules", community_id=community_id))  # type: ignore[return-value]
    return page(
        "steward/retire.html",
        status=400 if errors else 200,
        **_community(community_id, rule=rule, errors=errors, values=request.form),
    )


# -- approvals ----------------------------------------------------------------------------------


def _approvals_page(
    community_id: str,
    caller: Any,
    *,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    listed = approval_cases.list_approvals(
        services(), caller=caller, community_id=community_id, include_revoked=True, now=now()
    )
    vocabulary = services().policy.vocabulary
    default_until = words().local(now() + timedelta(days=365)).date().isoformat()
    return page(
        "steward/approvals.html",
        status=status,
        **_community(
            community_id,
            approvals=[asdict(a) for a in listed.approvals],  # words.approval() reads by key
            values=values or MultiDict({"valid_until": default_until}),
            errors=errors or {},
            organizations=stewardship.names(services())["organizations"],
            purposes=tree(vocabulary.purposes),
            categories=tree(vocabulary.data_categories),
        ),
    )


@bp.get("/<community_id>/approvals")
def approvals(community_id: str) -> Response:
    return _approvals_page(community_id, caller_with(Scope.RULES_WRITE))


def _confirm_grant(
    community_id: str,
    *,
    values: MultiDict[str, str],
    body: dict[str, Any],
    valid_until: date | None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    """Step 2 of giving an approval: what it allows, in words, and a note for the record."""
    return page(
        "steward/approval_confirm.html",
        status=status,
        **_community(
            community_id,
            approval=body,
            valid_until=valid_until,
            values=values,
            errors=errors or {},
            carried=[
                (name, value)
                for name, value in values.items(multi=True)
                if name not in ("csrf_token", "notes", "step")
            ],
        ),
    )


@bp.post("/<community_id>/approvals")
def grant_approval(community_id: str) -> Response:
    """Give an approval in two steps: the form (the approvals page, or a waiting request with
    ``from=waiting``), then its confirmation with a note (``step=confirm``)."""
    caller = caller_with(Scope.RULES_WRITE)
    # Only a steward of the community sees its confirmation step (403 / 404 otherwise).
    approval_cases.list_approvals(
        services(), caller=caller, community_id=community_id, include_revoked=False, now=now()
    )
    form = request.form
    approval_form = ApprovalForm(formdata=form)
    errors = approval_form.problems()
    body = approval_form.body(words().zone)
    confirming, until = form.get("step") == "confirm", approval_form.valid_until.data
    if not errors:
        try:
            loaded_body = ApprovalIn().load(body)
        except ValidationError as exc:
            errors = in_words(flatten(exc.messages))
        else:
            # Said on step 1 rather than after the confirmation (the use case refuses it too).
            if loaded_body["expires_at"] is not None and loaded_body["expires_at"] <= now():
                errors = in_words({"valid_until": [PAST]})
    if not errors and not confirming:
        return _confirm_grant(community_id, values=form, body=body, valid_until=until)
    if not errors and not (form.get("notes") or "").strip():
        message = i18n.translate("Write a note for the record: why the community gives this approval.")
        return _confirm_grant(
            community_id, values=form, body=body, valid_until=until, errors={"notes": [message]}, status=400
        )
    if not errors:
        try:
            approval_cases.create_approval(
                services(), caller=caller, community_id=community_id, now=now(), **loaded_body
            )
        except (ValidationFailed, UnknownCode) as exc:
            errors = in_words(flatten(exc.details)) or {"form": [exc.message]}
    if not errors:
        flash(
            i18n.translate("The approval is granted. Matching requests are allowed from now on."), "success"
        )
        target = "steward.waiting" if form.get("from") == "waiting" else "steward.approvals"
        return redirect(url_for(target, community_id=community_id))  # type: ignore[return-value]
    if form.get("from") == "waiting":
        flash(" ".join(m for messages in errors.values() for m in messages), "error")
        return redirect(url_for("steward.waiting", community_id=community_id))  # type: ignore[return-value]
    return _approvals_page(community_id, caller, values=form, errors=errors, status=400)


@bp.route("/<community_id>/approvals/<approval_id>/revoke", methods=["GET", "POST"])
def revoke_approval(community_id: str, approval_id: str) -> Response:
    """Revoke in two steps: the button beside the approval, then this page: confirm, with a reason."""
    caller = caller_with(Scope.RULES_WRITE)
    listed = approval_cases.list_approvals(
        services(), caller=caller, community_id=community_id, include_revoked=True, now=now()
    )
    approval = next((asdict(a) for a in listed.approvals if a.id == approval_id), None)
    if approval is None:
        raise NotFound("No such approval in this community.")
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        reason = request.form.get("reason", "").strip()
        if not reason:
            errors["reason"] = [i18n.translate("Give the reason for revoking the approval.")]
        else:
            try:
                body = ChangeReasonIn().load({"reason": reason})
                approval_cases.revoke_approval(
                    services(),
                    caller=caller,
                    community_id=community_id,
                    approval_id=approval_id,
                    reason=body["reason"],
                    now=now(),
                )
                flash(
                    i18n.translate("The approval is revoked. Matching requests are refused from now on."),
                    "success",
                )
            except ValidationError as exc:
                errors = in_words(flatten(exc.messages))
            except Conflict:
                flash(i18n.translate("This approval was already revoked."), "info")
            if not errors:
                return redirect(url_for("steward.approvals", community_id=community_id))  # type: ignore[return-value]
    elif approval["status"] != "active":
        flash(i18n.translate("This approval is no longer in force."), "info")
        return redirect(url_for("steward.approvals", community_id=community_id))  # type: ignore[return-value]
    return page(
        "steward/approval_revoke.html",
        status=400 if errors else 200,
        **_community(community_id, approval=approval, errors=errors, values=request.form),
    )


# -- what is waiting, what was decided ----------------------------------------------------------


@bp.get("/<community_id>/waiting")
def waiting(community_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    result = stewardship.waiting_requests(services(), caller=caller, community_id=community_id, now=now())
    default_until = words().local(now() + timedelta(days=365)).date().isoformat()
    return page(
        "steward/waiting.html", **_community(community_id, result=result, default_until=default_until)
    )


@bp.get("/<community_id>/decisions")
def decisions(community_id: str) -> Response:
    caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
    days = request.args.get("days", type=int)
    days = days if days in PERIODS else stewardship.WINDOW_DAYS
    timeline = stewardship.decision_timeline(
        services(), caller=caller, community_id=community_id, now=now(), days=days
    )
    latest = communities.community_decisions(
        services(), caller=caller, community_id=community_id, since=timeline["since"], until=None, limit=50
    )
    chart = timeline_svg(
        timeline["series"],
        t=i18n.translate,
        title=i18n.translate(
            "Decisions about members per day, last {days} days: {permit} allowed, {deny} refused",
            days=days,
            permit=timeline["total"]["permit"],
            deny=timeline["total"]["deny"],
        ),
    )
    grants = communities.protected_grants(services(), caller=caller, community_id=community_id)
    settings = {
        code: s.label_in(words().language) for code, s in services().policy.deployment.settings.items()
    }
    return page(
        "steward/decisions.html",
        **_community(
            community_id,
            timeline=timeline,
            latest=asdict(latest),  # words.reason() reads the decision by key
            chart=chart,
            days=days,
            periods=PERIODS,
            grants=grants.grants,
            settings=settings,
        ),
    )
