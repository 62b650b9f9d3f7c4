"""Response headers every answer carries, and the one input check every request gets.

API answers are personal data or decisions about people: never cached (``no-store``), never
sniffed. HTML pages get a Content-Security-Policy without inline scripts and may not be framed; the API
documentation page (/docs, views/docs.py) too: its viewer is served from this origin.

A NUL character (``%00``) in the path, the query or a form is refused with 400 before anything
reads it: PostgreSQL cannot store or compare text containing NUL, and the driver's refusal would
otherwise surface as a 503 (JSON bodies are checked by ``extensions.ContractParser``).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from consent_service.container import EXTENSION
from consent_service.core import idp
from consent_service.errors import ValidationFailed

HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def html_csp(issuer: str) -> str:
    """The pages' policy; with an OpenID provider, its origin may also receive a form's redirect:
    the sign-out form's answer sends the browser on to the provider's end-session endpoint, and
    browsers hold a form's redirects to ``form-action`` too."""
    if not issuer:
        return HTML_CSP
    return HTML_CSP.replace("form-action 'self'", f"form-action 'self' {idp.origin(issuer)}")


FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _has_nul(values: Any) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values.getlist(key)) for key in values)


def register(app: Flask) -> None:
    page_csp = html_csp(str(app.extensions[EXTENSION].settings.get("OIDC_ISSUER") or ""))

    @app.before_request
    def _refuse_nul() -> None:
        form = request.mimetype in FORM_TYPES and _has_nul(request.form)
        if "\x00" in request.path or _has_nul(request.args) or form:
            raise ValidationFailed(
                "The request contains a NUL character.",
                details={"_request": ["must not contain NUL (%00) characters"]},
            )

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        if "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", page_csp)
        return response
