"""Steward pages for data access requests: the community's queue with its deadlines, one
request, and the decision (grant or refuse, with a note and a confirmation).

Like the other steward pages, each needs the ``rules:write`` role and then calls a use case
that checks, with Casbin, that the person's organization stewards *this* community.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response, flash, redirect, request, url_for

from consent_service.container import current as services
from consent_service.core.permissions import Scope
from consent_service.core.wire import AccessRequestStatus
from consent_service.errors import Conflict, UnknownCode, ValidationFailed
from consent_service.services import access_requests as cases
from consent_service.services import agreements as agreement_cases
from consent_service.web import i18n
from consent_service.web.forms import flatten
from consent_service.web.render import blueprint, page, words
from consent_service.web.session import caller_with, now

bp = blueprint("steward_requests", __name__, "/web/communities")

STATUSES = [str(s) for s in AccessRequestStatus]
MAX_NOTE = 2000


def _community(community_id: str, **context: Any) -> dict[str, Any]:
    return {"community_id": community_id, "community_name": words().community(community_id), **context}


@bp.get("/<community_id>/access-requests")
def queue(community_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    status = request.args.get("status")
    status = status if status in STATUSES else None
    listed = cases.community_queue(
        services(), caller=caller, community_id=community_id, status=status, now=now()
    )
    return page(
        "steward/access_requests.html",
        **_community(
            community_id, requests=listed.access_requests, status=status, statuses=STATUSES, now=now()
        ),
    )


def _request_page(
    community_id: str,
    record: cases.AccessRequestRecord,
    *,
    values: Any = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    return page(
        "steward/access_request.html",
        status=status,
        **_community(
            community_id,
            r=asdict(record),
            agreements=_agreements_for(community_id, record),
            values=values or {},
            errors=errors or {},
        ),
    )


def _agreements_for(community_id: str, record: cases.AccessRequestRecord) -> list[Any]:
    """The community's agreements in force a grant of this request can be made under (the
    requester is one of their parties); none once the request is decided."""
    if record.status != AccessRequestStatus.PENDING:
        return []
    listed = agreement_cases.list_agreements(
        services(),
        caller=caller_with(Scope.RULES_WRITE),
        community_id=community_id,
        review_due_within=None,
        now=now(),
    )
    return [a for a in listed.agreements if record.requester in a.parties and a.status == "in_force"]


@bp.get("/<community_id>/access-requests/<request_id>")
def show(community_id: str, request_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    record = cases.community_request(
        services(), caller=caller, community_id=community_id, request_id=request_id, now=now()
    )
    return _request_page(community_id, record)


@bp.post("/<community_id>/access-requests/<request_id>/decision")
def decide(community_id: str, request_id: str) -> Response:
    """Grant or refuse: the decision, a note and the confirmation box are all required."""
    caller = caller_with(Scope.RULES_WRITE)
    record = cases.community_request(
        services(), caller=caller, community_id=community_id, request_id=request_id, now=now()
    )
    form = request.form
    decision, note = form.get("decision", ""), form.get("note", "").strip()
    errors: dict[str, list[str]] = {}
    if decision not in {"grant", "refuse"}:
        errors["decision"] = [i18n.translate("Choose whether to grant or refuse the request.")]
    if not note:
        errors["note"] = [i18n.translate("Write a note: the requester reads it with the decision.")]
    elif len(note) > MAX_NOTE:
        errors["note"] = [i18n.translate("The note is too long (at most 2000 characters).")]
    if form.get("confirm") != "yes":
        errors["confirm"] = [i18n.translate("Tick the box to confirm the decision.")]
    if not errors:
        try:
            cases.decide(
                services(),
                caller=caller,
                request_id=request_id,
                community_id=community_id,
                decision=decision,
                note=note,
                agreement_id=(form.get("agreement_id") or None) if decision == "grant" else None,
                now=now(),
            )
        except Conflict:
            flash(i18n.translate("This request is no longer waiting for a decision."), "info")
            return redirect(
                url_for("steward_requests.show", community_id=community_id, request_id=request_id)
            )  # type: ignore[return-value]
        except (ValidationFailed, UnknownCode) as exc:
            errors = flatten(exc.details) or {"form": [exc.message]}
    if errors:
        return _request_page(community_id, record, values=form, errors=errors, status=400)
    if decision == "grant":
        flash(i18n.translate("The request is granted: the approval is in force from now on."), "success")
    else:
        flash(
            i18n.translate("The request is refused. The requester can see the decision and your note."),
            "success",
        )
    return redirect(url_for("steward_requests.queue", community_id=community_id))  # type: ignore[return-value]
