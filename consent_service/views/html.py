"""Printable HTML pages: autoescaped Jinja templates, no script, a strict Content-Security-Policy.

The pages' one stylesheet is inlined and allowed by its hash, so the policy can forbid every
other source (``default-src 'none'``) and the page still prints nicely offline. Their wording
(the reader's language, names, times in the deployment's zone) comes from the web pages' own
(``web._wording``, an app-wide template context).
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from flask import Response, render_template, request
from markupsafe import Markup

STYLESHEET = Path(__file__).resolve().parent.parent / "templates" / "print.css"


@cache
def _stylesheet() -> tuple[str, str]:
    css = STYLESHEET.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return css, digest


def content_security_policy() -> str:
    return (
        f"default-src 'none'; style-src 'sha256-{_stylesheet()[1]}'; img-src 'none'; script-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def wants_html(format_param: str | None) -> bool:
    """``?format=`` decides; otherwise the Accept header, JSON unless HTML is preferred."""
    if format_param is not None:
        return format_param == "html"
    accept = request.accept_mimetypes
    return (
        accept.best_match(["application/json", "text/html"]) == "text/html"
        and accept["text/html"] > accept["application/json"]
    )


def page(template: str, **context: Any) -> Response:
    css = _stylesheet()[0]
    html = render_template(template, stylesheet=Markup(css), **context)
    response = Response(html, status=200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["Cache-Control"] = "no-store"
    return response
