"""Response headers every answer carries.

API answers are personal data or decisions about people: never cached (``no-store``), never
sniffed. HTML pages get a Content-Security-Policy without inline scripts and may not be framed.
The API documentation pages load their viewer from a CDN and are the one exception allowed.
"""

from __future__ import annotations

from flask import Flask, Response, request

HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://cdn.jsdelivr.net; "
    "worker-src blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/swagger"})


def register(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        if "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        if response.mimetype == "text/html":
            headers.setdefault(
                "Content-Security-Policy", DOCS_CSP if request.path in DOCS_PATHS else HTML_CSP
            )
        return response
