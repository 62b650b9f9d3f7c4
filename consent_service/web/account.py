"""Signing in and out, the start page, and the language switch.

Each of these that changes something on the server (a sign-in attempt, a sign-out, a signed-in
person's language) is recorded in the audit chain by ``services.users``; a language chosen before
signing in lives only in the cookie.
"""

from __future__ import annotations

from flask import Response, flash, redirect, request, session, url_for

from consent_service.container import current as services
from consent_service.core.permissions import Scope
from consent_service.services import stewardship, users
from consent_service.services.users import SignInRefused
from consent_service.web import i18n, oidc
from consent_service.web.render import blueprint, page
from consent_service.web.session import begin, current_user, end, now, signed_in

bp = blueprint("web", __name__, "/web")


def safe_next(target: str | None) -> str:
    """Only a path of these pages: never another site (an open redirect)."""
    if target and target.startswith(("/web/", "/me")) and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("web.home")


@bp.get("/")
def home() -> Response:
    user = signed_in()
    communities = stewardship.stewarded(services(), caller=user.caller) if user.has(Scope.RULES_WRITE) else []
    return page("home.html", communities=communities)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response:
    failed = False
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")
        try:
            user = users.sign_in(
                services(), email=email, password=request.form.get("password", ""), now=now()
            )
        except SignInRefused:
            failed = True
        else:
            begin(user)
            return redirect(safe_next(request.form.get("next")))  # type: ignore[return-value]
    elif current_user() is not None:
        return redirect(safe_next(request.args.get("next")))  # type: ignore[return-value]
    return sign_in_page(failed=failed, email=email, status=401 if failed else 200)


def sign_in_page(*, status: int, failed: bool = False, email: str = "", refused: str = "") -> Response:
    """The sign-in page: the password form unless LOCAL_PASSWORDS is off, the provider's button
    when one is configured, and why the last attempt was refused."""
    settings = services().settings
    return page(
        "sign_in.html",
        status=status,
        failed=failed,
        refused=refused,
        email=email,
        next=request.values.get("next", ""),
        threshold=settings["WEB_LOCKOUT_THRESHOLD"],
        minutes=settings["WEB_LOCKOUT_MINUTES"],
        passwords=bool(settings["LOCAL_PASSWORDS"]),
        provider=settings["OIDC_DISPLAY_NAME"] if settings["OIDC_ISSUER"] else "",
    )


@bp.post("/sign-out")
def sign_out() -> Response:
    user = current_user()
    id_token = session.get(oidc.ID_TOKEN)
    if user is not None:
        users.sign_out(services(), user_id=user.id, now=now())
    end()
    flash(i18n.translate("You have signed out."), "info")
    # Signed in through the provider: its session ends too, and it sends the browser back here.
    provider_sign_out = oidc.end_session_url(id_token) if isinstance(id_token, str) and id_token else None
    return redirect(provider_sign_out or url_for("web.sign_in"))  # type: ignore[return-value]


@bp.post("/language")
def choose_language() -> Response:
    language = request.form.get("language", "")
    if language in i18n.LANGUAGES:
        session["lang"] = language
        user = current_user()
        if user is not None:
            users.set_language(services(), user_id=user.id, language=language, now=now())
    return redirect(safe_next(request.form.get("next")))  # type: ignore[return-value]
