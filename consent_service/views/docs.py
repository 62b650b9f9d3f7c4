"""The API documentation page, ``/docs``: Swagger UI, served by this service from the
``swagger-ui-bundle`` package's own files, so it works without internet and loads nothing from
anyone else's server.

The page carries the same Content-Security-Policy as every other page (views/security.py: scripts
and styles from this origin only, no inline script); its one script of ours is
``static/docs-init.js``. Each script and style sheet is named with its Subresource Integrity hash,
and the package's files are served only while their SHA-384 is the one pinned below for the
version pyproject.toml allows: a changed or tampered file is refused (404) rather than run in a
page on the same origin as the signed-in pages. Upgrading swagger-ui-bundle means checking the
new files and pinning their hashes here (tests/test_offline_docs.py says which differ).

``/swagger`` (its former address) redirects to ``/docs``.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

blp = Blueprint("docs", __name__)

STATIC = Path(__file__).resolve().parent.parent / "static"
# swagger-ui-bundle 1.1.0 (Swagger UI 4.15.5): the files the page uses, and their SHA-384.
PINNED = {
    "swagger-ui-bundle.js": "sha384-GJoyyEnbeIyINXWDkEzUHpPPCZPcP2KrAg83c6DGAkTPr2tDHQ59DuqMRwAwsJwV",
    "swagger-ui-standalone-preset.js": (
        "sha384-LPIWB4adMa/c1eVa/Jc8ShfB3GG4sxupb/nSFLbjiIhnM78eY2zgZImCSGhpdBJA"
    ),
    "swagger-ui.css": "sha384-2/StnWvcTFa+ulN5XGsmRCRCHlS3w55zYM2opgTX9cGDkOHlC2PJMND08SWG4Bag",
    "favicon-32x32.png": "sha384-vCPruBEcPmxk2uv19KNJCkWttTDv8oQxBAzSuTndOepjsIyiKHSoLNlWOcQMpXdL",
}
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def bundle_folder() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


@cache
def verified(name: str) -> bytes | None:
    """The content of the package's file ``name`` if it is pinned and is the pinned content
    (kept: what is served is exactly what was checked)."""
    if name not in PINNED:
        return None
    path = bundle_folder() / name
    data = path.read_bytes() if path.is_file() else b""
    return data if sri(data) == PINNED[name] else None


@blp.get("/docs")
def page() -> ResponseReturnValue:
    integrity = {**PINNED, "docs-init.js": sri((STATIC / "docs-init.js").read_bytes())}
    return render_template("api_docs.html", integrity=integrity)


@blp.get("/swagger")
def former_address() -> ResponseReturnValue:
    return redirect(url_for("docs.page"), code=308)


@blp.get("/docs/assets/<name>")
def asset(name: str) -> ResponseReturnValue:
    data = verified(name)
    if data is None:
        abort(404)
    response = Response(data, mimetype=TYPES[Path(name).suffix])
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
