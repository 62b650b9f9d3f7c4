"""Steward pages of a community's self-governance: its stewards (changes proposed and confirmed
by two people), the clients that act for it, and its members (pending ones confirmed in bulk).

Every page needs the ``rules:write`` role and calls the same use cases as the API, which check
with Casbin that the person's organization is a steward of *this* community. The person is a
caller of their own (``user:<id>``), so a proposal they made is confirmed by someone else.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Response, flash, redirect, request, url_for
from marshmallow import ValidationError

from consent_service.container import current as services
from consent_service.core.permissions import Scope
from consent_service.core.wire import StewardChangeAction
from consent_service.errors import Conflict, UnknownCode, ValidationFailed
from consent_service.schemas.memberships import MembershipsConfirmIn
from consent_service.schemas.steward_changes import StewardChangeIn
from consent_service.services import memberships, organizations, stewardship
from consent_service.services import steward_changes as changes
from consent_service.web import i18n
from consent_service.web.forms import flatten
from consent_service.web.render import blueprint, page, words
from consent_service.web.session import caller_with, now

bp = blueprint("governance", __name__, "/web/communities")


def _back(endpoint: str, community_id: str) -> Response:
    return redirect(url_for(endpoint, community_id=community_id))  # type: ignore[return-value]


def _say(errors: dict[str, list[str]]) -> None:
    flash(" ".join(m for messages in errors.values() for m in messages), "error")


# -- stewards and clients --------------------------------------------------------------------------


@bp.get("/<community_id>/stewards")
def stewards(community_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    listed = changes.list_changes(
        services(), caller=caller, community_id=community_id, status=None, now=now()
    )
    clients = organizations.community_clients(services(), caller=caller, community_id=community_id)
    return page(
        "steward/stewards.html",
        community_id=community_id,
        community_name=words().community(community_id),
        stewards=listed.stewards,
        waiting=[asdict(c) for c in listed.changes if c.status == changes.PENDING],
        done=[asdict(c) for c in reversed(listed.changes) if c.status != changes.PENDING][:20],
        me=caller.client_id,
        clients=[asdict(c) for c in clients.clients],
        organizations=stewardship.names(services())["organizations"],
        actions=[str(a) for a in StewardChangeAction],
    )


@bp.post("/<community_id>/steward-changes")
def propose(community_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    form = request.form
    try:
        body = StewardChangeIn().load(
            {
                "action": form.get("action", ""),
                "organization": form.get("organization", ""),
                "reason": form.get("reason", "").strip() or None,
            }
        )
        changes.propose_change(services(), caller=caller, community_id=community_id, now=now(), **body)
        flash(i18n.translate("The change is proposed. Another steward must confirm it."), "success")
    except ValidationError as exc:
        _say(flatten(exc.messages))
    except (ValidationFailed, UnknownCode) as exc:
        _say(flatten(exc.details) or {"form": [exc.message]})
    except Conflict as exc:
        flash(exc.message, "error")
    return _back("governance.stewards", community_id)


@bp.post("/<community_id>/steward-changes/<change_id>/confirm")
def confirm(community_id: str, change_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    try:
        changes.confirm_change(
            services(), caller=caller, community_id=community_id, change_id=change_id, now=now()
        )
        flash(i18n.translate("The change is confirmed and applies now."), "success")
    except changes.OwnProposal:
        flash(i18n.translate("You proposed this change: another steward must confirm it."), "error")
    except Conflict as exc:
        flash(exc.message, "error")
    return _back("governance.stewards", community_id)


@bp.post("/<community_id>/clients/<client_id>/disable")
def disable_client(community_id: str, client_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    try:
        organizations.disable_client(
            services(), caller=caller, client_id=client_id, now=now(), community_id=community_id
        )
        flash(i18n.translate("The client is disabled. It can no longer act for the community."), "success")
    except Conflict:
        flash(i18n.translate("This client was already disabled."), "info")
    return _back("governance.stewards", community_id)


# -- members -------------------------------------------------------------------------------------


@bp.get("/<community_id>/members")
def members(community_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    seen = memberships.community_memberships(services(), caller=caller, community_id=community_id, now=now())
    return page(
        "steward/members.html",
        community_id=community_id,
        community_name=words().community(community_id),
        seen=seen,
    )


@bp.post("/<community_id>/memberships/confirm")
def confirm_members(community_id: str) -> Response:
    caller = caller_with(Scope.RULES_WRITE)
    try:
        body = MembershipsConfirmIn().load({"memberships": request.form.getlist("memberships")})
        done = memberships.confirm_memberships(
            services(), caller=caller, community_id=community_id, now=now(), **body
        )
        flash(
            i18n.translate("{count} membership(s) confirmed.", count=len(done.confirmed)),
            "success",
        )
    except ValidationError:
        flash(i18n.translate("Choose the memberships to confirm."), "error")
    except ValidationFailed:
        flash(i18n.translate("Some memberships are no longer waiting. Nothing was confirmed."), "error")
    except Conflict as exc:
        flash(exc.message, "error")
    return _back("governance.members", community_id)
