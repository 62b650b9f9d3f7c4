"""Intake pages for service-provider staff: record a consent, show and print its receipt, find a
person's consents, withdraw one in two steps, print the person's access report, list the
consents to ask about again.

Recording asks where consent is given first (a GET form: the setting is no personal data), then
offers only what a consent given there may grant (``safeguarding``); a protected purpose the
deployment allows adds a confirmation step. Every step is a plain form that works without script.

Each form (``web.forms``) is checked by the API's own schema (``ConsentIn``) and handed to the API's own use
cases with the signed-in person as the caller, so the pages accept exactly what the API would.
A person's identifier travels only in form bodies (POST), never in a URL, so it stays out of
access logs and browser history.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from flask import Response, flash, redirect, request, session, url_for
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from consent_service.container import current as services
from consent_service.core import access_codes, pseudonyms
from consent_service.core.deployment import Setting
from consent_service.core.permissions import Scope
from consent_service.core.vocabulary import Term
from consent_service.core.wire import EvidenceMethod
from consent_service.errors import (
    Conflict,
    CrisisSettingRefused,
    NotFound,
    ProtectedPurposeRefused,
    UnknownCode,
    ValidationFailed,
)
from consent_service.schemas.consents import ConsentIn, RevokeIn
from consent_service.services import access_report, consent_reviews, consents, person, subjects
from consent_service.views import html
from consent_service.web import i18n, safeguarding
from consent_service.web.forms import ConsentForm, flatten, loaded
from consent_service.web.qr import qr_svg
from consent_service.web.render import blueprint, page, words
from consent_service.web.session import caller_with, now, signed_in

bp = blueprint("intake", __name__, "/web/intake")


def tree(terms: Mapping[str, Term]) -> list[tuple[Term, int]]:
    """Terms in file order with each parent followed by its children, and each one's depth."""
    out: list[tuple[Term, int]] = []

    def visit(parent: str | None, depth: int) -> None:
        for term in terms.values():
            if term.parent == parent:
                out.append((term, depth))
                visit(term.code, depth + 1)

    visit(None, 0)
    return out


def _setting(code: str | None) -> Setting | None:
    """The deployment's setting ``code``; None when none is given or it is not one of them."""
    return services().policy.deployment.setting(code) if code else None


def _choose_setting(
    *, values: Mapping[str, str] | None = None, errors: dict[str, list[str]] | None = None, status: int = 200
) -> Response:
    """Step 1: where the person is giving consent, which decides what the form may offer."""
    return page(
        "intake/setting.html",
        status=status,
        values=values or {},
        errors=errors or {},
        settings=list(services().policy.deployment.settings.values()),
    )


def _form(
    setting: Setting,
    *,
    values: MultiDict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    """Step 2: the consent, offering what a consent given in ``setting`` may grant."""
    user = signed_in()
    policy = services().policy
    vocabulary = policy.vocabulary
    values = (
        values
        if values is not None
        else MultiDict(
            {
                "system": f"urn:{user.organization}:client",
                "obtained_by": user.name,
                "recipients": user.organization,
            }
        )
    )
    categories = tree(vocabulary.data_categories)
    return page(
        "intake/record.html",
        status=status,
        values=values,
        errors=errors or {},
        setting=setting,
        purposes=safeguarding.offered_purposes(policy.deployment, tree(vocabulary.purposes), setting),
        protected=[
            (term, 0) for term, _ in safeguarding.protected_offered(policy.deployment, vocabulary, setting)
        ],
        categories=[(term, depth) for term, depth in categories if not term.sensitive],
        sensitive=[term for term, _ in categories if term.sensitive],
        methods=[str(m) for m in EvidenceMethod],
        today=words().local(now()).date(),
    )


def _confirm(
    setting: Setting,
    protected: list[str],
    *,
    values: MultiDict[str, str],
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    """Step 3, only for a protected purpose the deployment allows: its conditions and the person's
    explicit agreement, with everything else of the form carried along unchanged."""
    deployment = services().policy.deployment
    return page(
        "intake/confirm.html",
        status=status,
        values=values,
        errors=errors or {},
        setting=setting,
        protected=[safeguarding.conditions(deployment, code, words()) for code in protected],
        carried=safeguarding.carried(values, leave_out=("witness", "confirmed_protected_purposes")),
    )


@bp.get("/")
def start() -> Response:
    return redirect(url_for("intake.record"))  # type: ignore[return-value]


@bp.route("/consents/new", methods=["GET", "POST"])
def record() -> Response:
    """Where consent is given (step 1), then the consent (step 2), then, for a protected purpose
    the deployment allows, its confirmation (step 3). Every step is a plain form."""
    caller = caller_with(Scope.CONSENTS_WRITE)
    form: MultiDict[str, str] = request.args if request.method == "GET" else request.form
    if request.method == "GET" and "setting" not in form:
        return _choose_setting()
    setting = _setting(form.get("setting", "").strip())
    if setting is None:
        message = i18n.translate("Choose where the person is giving consent.")
        return _choose_setting(values=form, errors={"setting": [message]}, status=400)
    if request.method == "GET" or form.get("step") == "edit":
        return _form(setting, values=None if request.method == "GET" else _without_confirmation(form))
    consent_form = ConsentForm(formdata=form)
    errors = consent_form.problems()
    body = loaded(ConsentIn(), consent_form.body(words().zone), errors)
    if errors:
        return _form(setting, values=_without_confirmation(form), errors=errors, status=400)
    deployment = services().policy.deployment
    protected = safeguarding.protected_ticked(deployment, form)
    allowed = [code for code in protected if deployment.protected_purposes[code].allowed]
    if allowed and form.get("step") != "confirm":
        return _confirm(setting, allowed, values=form)
    subject = body.pop("subject")
    try:
        created = consents.record(services(), caller=caller, subject=subject, terms=body, now=now())
    except (ProtectedPurposeRefused, CrisisSettingRefused) as exc:
        errors = safeguarding.refusal(exc, deployment=deployment, words=words(), form=form, setting=setting)
        if allowed and set(errors) <= safeguarding.CONFIRM_FIELDS:
            return _confirm(setting, allowed, values=form, errors=errors, status=400)
        # The form has no fields of the confirmation step: their messages go in the summary.
        for field in safeguarding.CONFIRM_FIELDS & set(errors):
            errors.setdefault("form", []).extend(errors.pop(field))
    except (ValidationFailed, UnknownCode) as exc:
        errors = flatten(exc.details) or {"form": [exc.message]}
    else:
        _hand_over(created.id, created.access_code)
        return redirect(url_for("intake.receipt", consent_id=created.id))  # type: ignore[return-value]
    return _form(setting, values=_without_confirmation(form), errors=errors, status=400)


def _without_confirmation(form: MultiDict[str, str]) -> MultiDict[str, str]:
    """The form's values without the confirmation step's: the worker confirms again each time."""
    return MultiDict(safeguarding.carried(form, leave_out=("witness", "confirmed_protected_purposes")))


# -- the person's access code, handed over once ---------------------------------------------------
# Recording (or a new code) redirects to the receipt page, which shows the code once. Between the
# two it rides in the worker's session cookie, which is signed but readable: so it is encrypted
# there (Fernet, key derived from the service secret), and taken out when the page shows it.
HANDOVER = "handover"


def _fernet() -> Fernet:
    key = pseudonyms.derive_key(services().secret, "person-code-handover")
    return Fernet(base64.urlsafe_b64encode(key))


def _hand_over(consent_id: str, code: str | None) -> None:
    if code:
        session[HANDOVER] = {"consent": consent_id, "code": _fernet().encrypt(code.encode()).decode()}


def _handed_over(consent_id: str) -> str | None:
    """The code to show on this consent's receipt, once (then it is gone from the session)."""
    held = session.get(HANDOVER)
    if not isinstance(held, dict) or held.get("consent") != consent_id:
        return None
    session.pop(HANDOVER, None)
    try:
        return _fernet().decrypt(str(held.get("code", "")).encode()).decode()
    except InvalidToken:
        return None


@bp.get("/consents/<consent_id>/receipt")
def receipt(consent_id: str) -> Response:
    caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE)
    context = access_report.receipt_page(
        services(), caller=caller, consent_id=consent_id, version=None, now=now()
    )
    expires_at = context.expires_at
    code = _handed_over(consent_id)
    page_url = url_for("person.start", _external=True)
    response = page(
        "intake/receipt.html",
        **vars(context),
        valid_through=(expires_at - timedelta(microseconds=1)) if expires_at else None,
        qr=qr_svg(context.receipt, title=i18n.translate("Signed receipt (QR code)")),
        setting=_setting(context.consent.evidence.get("setting")),
        access_code=access_codes.display(code) if code else None,
        person_page=page_url,
        access_qr=(
            qr_svg(
                f"{page_url}#{access_codes.display(code)}",
                title=i18n.translate("Access code (QR code)"),
                element_id="access-qr-title",
            )
            if code
            else None
        ),
    )
    if code:  # shown once: never kept by a cache or shown again by the Back button
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/consents/<consent_id>/access-code")
def new_access_code(consent_id: str) -> Response:
    """The person lost their code: a new one, shown once on the receipt; the old ones stop working."""
    caller = caller_with(Scope.CONSENTS_WRITE)
    made = person.rotate(services(), caller=caller, consent_id=consent_id, now=now())
    _hand_over(consent_id, made.access_code)
    flash(
        i18n.translate("A new access code is made. Give it to the person: the old one no longer works."),
        "success",
    )
    return redirect(url_for("intake.receipt", consent_id=consent_id))  # type: ignore[return-value]


@bp.route("/consents/<consent_id>/withdraw", methods=["GET", "POST"])
def withdraw(consent_id: str) -> Response:
    """Step 1 is the button beside the consent; this page is step 2: confirm, with a reason."""
    caller = caller_with(Scope.CONSENTS_WRITE)
    if request.method == "POST":
        try:
            body = RevokeIn().load({"reason": request.form.get("reason", "").strip() or None})
        except ValidationError as exc:
            consent = consents.get(services(), caller=caller, consent_id=consent_id, now=now())
            return page("intake/withdraw.html", status=400, consent=consent, errors=flatten(exc.messages))
        try:
            consents.revoke(
                services(), caller=caller, consent_id=consent_id, reason=body["reason"], now=now()
            )
            flash(i18n.translate("The consent is withdrawn."), "success")
        except Conflict:
            flash(i18n.translate("This consent is already withdrawn."), "info")
        return redirect(url_for("intake.receipt", consent_id=consent_id))  # type: ignore[return-value]
    consent = consents.get(services(), caller=caller, consent_id=consent_id, now=now())
    if consent.status == "revoked":
        flash(i18n.translate("This consent is already withdrawn."), "info")
        return redirect(url_for("intake.receipt", consent_id=consent_id))  # type: ignore[return-value]
    return page("intake/withdraw.html", consent=consent, errors={})


def _subject(form: MultiDict[str, str]) -> tuple[dict[str, str] | None, dict[str, list[str]]]:
    subject = {"system": form.get("system", "").strip(), "value": form.get("value", "").strip()}
    errors = {name: [i18n.translate("Fill this in.")] for name, value in subject.items() if not value}
    return (None if errors else subject), errors


@bp.route("/find", methods=["GET", "POST"])
def find() -> Response:
    caller = caller_with(Scope.CONSENTS_READ)
    user = signed_in()
    if request.method == "GET":
        return page(
            "intake/find.html",
            values={"system": f"urn:{user.organization}:client"},
            errors={},
            report=None,
            searched=False,
        )
    subject, errors = _subject(request.form)
    report = None
    if subject is not None:
        try:
            report = subjects.report(services(), caller=caller, subject=subject, now=now())
        except NotFound:
            report = None
        except ValidationFailed as exc:  # a system that is not a urn:/https: URI
            errors.update(flatten(exc.details))
    return page(
        "intake/find.html",
        status=400 if errors else 200,
        values=request.form,
        errors=errors,
        report=report,
        searched=subject is not None,
    )


@bp.post("/access-report")
def print_access_report() -> Response:
    """The person's access report, the same printable page the API gives with ``?format=html``."""
    caller = caller_with(Scope.CONSENTS_READ)
    subject, errors = _subject(request.form)
    if subject is None:
        return page(
            "intake/find.html", status=400, values=request.form, errors=errors, report=None, searched=False
        )
    report = subjects.report(services(), caller=caller, subject=subject, now=now())
    return html.page("access_report.html", report=report, labels=report.labels)


@bp.get("/reviews")
def reviews() -> Response:
    """Consents of this organization whose meaning a release changed: ask the person again."""
    caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE)
    listed = consent_reviews.list_for(services(), caller=caller)
    return page("intake/reviews.html", reviews=[r for r in listed if r.recorded_by == caller.organization])
