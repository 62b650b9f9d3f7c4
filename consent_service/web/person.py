"""The person's own view (``/me``): their consents, every request for their data with the answer
and why, and withdrawing a consent in two steps, with the access code of their receipt and no
account. What a code opens is ``services.person``'s (docs/security.md).

* The code travels only in a form body (POST), never in a URL, so it stays out of access logs,
  browser history and ``Referer`` headers. The receipt's QR code holds ``/me#<code>``: a
  fragment is never sent to a server nor put in a ``Referer``; the page's script moves it
  into the form, removes it from the address bar and submits the form (without a script, the
  person types it). Nothing here logs it.
* The session it opens is the signed cookie of the web pages, begun afresh (a worker signed in
  on the same browser is signed out), holding the code's id and when it was entered: it ends
  ``PERSON_SESSION_MINUTES`` after the code was entered, whatever the use, and at once when a
  worker replaces the code (every use case re-checks the code, ``container.require_active``).
* The form is rate-limited per address (``RATELIMIT_PERSON_CODE``) and, for wrong codes, for
  all addresses together (``RATELIMIT_PERSON_CODE_FAILURES``), see ``web.register``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Response, flash, redirect, request, session, url_for
from marshmallow import ValidationError

from consent_service.container import current as services
from consent_service.core.caller import Caller
from consent_service.errors import Conflict, Unauthorized
from consent_service.schemas.consents import RevokeIn
from consent_service.services import person
from consent_service.services.person import CodeRefused
from consent_service.web import i18n
from consent_service.web.forms import flatten
from consent_service.web.render import blueprint, page
from consent_service.web.session import now

bp = blueprint("person", __name__, "/me")
SESSION_KEY = "me"


class PersonSignInNeeded(Exception):
    """No code entered in this session, or its time is up, or the code was replaced."""


def _minutes() -> int:
    return int(services().settings["PERSON_SESSION_MINUTES"])


def _begin(caller: Caller) -> None:
    """A fresh session for the person (nothing of an earlier session, a worker's included, is kept)."""
    language = session.get("lang")
    session.clear()
    session.permanent = True
    code = person.code_id(caller)
    session[SESSION_KEY] = {"code": code, "org": caller.organization, "at": int(time.time())}
    if language:
        session["lang"] = language


def _end() -> None:
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def _signed_in() -> Caller | None:
    held: Any = session.get(SESSION_KEY)
    if not isinstance(held, dict):
        return None
    code, org, at = held.get("code"), held.get("org"), held.get("at")
    if not (isinstance(code, str) and isinstance(org, str) and isinstance(at, int)):
        return None
    if not 0 <= time.time() - at < _minutes() * 60:
        return None
    caller = person.caller_of(code, org)
    return caller if person.is_current(services(), caller=caller) else None


def _caller() -> Caller:
    caller = _signed_in()
    if caller is None:
        raise PersonSignInNeeded
    return caller


@bp.errorhandler(PersonSignInNeeded)
@bp.errorhandler(Unauthorized)  # the code was replaced while the page was open
def _closed(_: Exception) -> Response:
    had = SESSION_KEY in session
    _end()
    if had:
        flash(i18n.translate("Your page closed. Enter your code again to open it."), "info")
    return redirect(url_for("person.start"))  # type: ignore[return-value]


@bp.route("", methods=["GET", "POST"])
def start() -> Response:
    """Enter the code (typed, or carried from the QR code's fragment by the page's script)."""
    refused = False
    if request.method == "POST":
        try:
            caller = person.sign_in(services(), typed=request.form.get("code", ""), now=now())
        except CodeRefused:
            refused = True
        else:
            _begin(caller)
            return redirect(url_for("person.mine"), code=303)  # type: ignore[return-value]
    elif _signed_in() is not None:
        return redirect(url_for("person.mine"))  # type: ignore[return-value]
    return page("person/start.html", status=401 if refused else 200, refused=refused, minutes=_minutes())


@bp.get("/consents")
def mine() -> Response:
    caller = _caller()
    shown = person.view(services(), caller=caller, now=now())
    report = shown.contents
    return page(
        "person/view.html",
        view=shown,
        report=report,
        labels=report.labels,
        minutes=_minutes(),
    )


@bp.route("/consents/<consent_id>/withdraw", methods=["GET", "POST"])
def withdraw(consent_id: str) -> Response:
    """Step 1 is the button beside the consent on the person's page; this is step 2: confirm."""
    caller = _caller()
    consent = person.consent(services(), caller=caller, consent_id=consent_id, now=now())
    if consent.status == "revoked":
        flash(i18n.translate("This consent is already withdrawn."), "info")
        return redirect(url_for("person.mine"))  # type: ignore[return-value]
    if request.method == "GET":
        return page("person/withdraw.html", consent=consent, errors={})
    try:
        body = RevokeIn().load({"reason": request.form.get("reason", "").strip() or None})
    except ValidationError as exc:
        return page("person/withdraw.html", status=400, consent=consent, errors=flatten(exc.messages))
    try:
        person.withdraw(services(), caller=caller, consent_id=consent_id, reason=body["reason"], now=now())
        flash(i18n.translate("You have withdrawn this consent."), "success")
    except Conflict:
        flash(i18n.translate("This consent is already withdrawn."), "info")
    return redirect(url_for("person.mine"), code=303)  # type: ignore[return-value]


@bp.post("/sign-out")
def sign_out() -> Response:
    _end()
    flash(i18n.translate("Your page is closed."), "info")
    return redirect(url_for("person.start"), code=303)  # type: ignore[return-value]
