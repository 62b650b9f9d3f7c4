"""Steward pages for the community's data sharing agreements: each with its review date (a
notice for those due for review soon or overdue), the approvals it covers and its duties, and
marking a duty met (with a note and a confirmation).

Like the other steward pages, each needs the ``rules:write`` role and then calls a use case
that checks, with Casbin, that the person's organization stewards *this* community.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response, flash, redirect, request, url_for

from consent_service.container import current as services
from consent_service.core.permissions import Scope
from consent_service.errors import Conflict, ServiceError, ValidationFailed
from consent_service.services import agreements as cases
from consent_service.web import i18n
from consent_service.web.forms import flatten
from consent_service.web.render import blueprint, page, words
from consent_service.web.session import caller_with, now

bp = blueprint("steward_agreements", __name__, "/web/communities")

MAX_NOTE = 2000


def _agreements_page(
    community_id: str,
    *,
    failed: str | None = None,
    values: Any = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    listed = cases.list_agreements(
        services(), caller=caller, community_id=community_id, review_due_within=None, now=now()
    )
    records = [asdict(record) for record in listed.agreements]
    return page(
        "steward/agreements.html",
        status=status,
        community_id=community_id,
        community_name=words().community(community_id),
        agreements=records,
        due_soon=[a for a in records if a["review_due_soon"]],
        failed=failed,
        values=values or {},
        errors=errors or {},
    )


def agreements_due(community_id: str) -> list[dict[str, Any]]:
    """The community's agreements due for review soon or overdue, for the notice every community
    page shows its stewards (``steward/_nav.html``); nothing for anyone who may not see them."""
    try:
        caller = caller_with(Scope.RULES_WRITE)
        listed = cases.list_agreements(
            services(), caller=caller, community_id=community_id, review_due_within=None, now=now()
        )
    except ServiceError:
        return []
    return [asdict(record) for record in listed.agreements if record.review_due_soon]


@bp.app_context_processor
def _reminders() -> dict[str, Any]:
    return {"agreements_due": agreements_due}


@bp.get("/<community_id>/agreements")
def agreements(community_id: str) -> Response:
    return _agreements_page(community_id)


@bp.post("/<community_id>/agreements/<agreement_id>/duties/<duty_id>/met")
def duty_met(community_id: str, agreement_id: str, duty_id: str) -> Response:
    """Mark a duty met: a note and the confirmation box are required."""
    caller = caller_with(Scope.RULES_WRITE)
    form = request.form
    note = form.get("note", "").strip()
    errors: dict[str, list[str]] = {}
    if not note:
        errors["note"] = [i18n.translate("Write a note: what the community received, and when.")]
    elif len(note) > MAX_NOTE:
        errors["note"] = [i18n.translate("The note is too long (at most 2000 characters).")]
    if form.get("confirm") != "yes":
        errors["confirm"] = [i18n.translate("Tick the box to confirm the duty is met.")]
    if not errors:
        try:
            cases.mark_duty_met(
                services(),
                caller=caller,
                community_id=community_id,
                agreement_id=agreement_id,
                duty_id=duty_id,
                note=note,
                now=now(),
            )
        except Conflict:
            flash(i18n.translate("This duty is already marked met."), "info")
            return redirect(url_for("steward_agreements.agreements", community_id=community_id))  # type: ignore[return-value]
        except ValidationFailed as exc:
            errors = flatten(exc.details) or {"note": [exc.message]}
    if errors:
        return _agreements_page(community_id, failed=duty_id, values=form, errors=errors, status=400)
    flash(i18n.translate("The duty is marked met: it no longer holds the requester's approvals."), "success")
    return redirect(url_for("steward_agreements.agreements", community_id=community_id))  # type: ignore[return-value]
