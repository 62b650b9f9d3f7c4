"""consent_service: consent and access control for social-sector data, with community rules."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from consent_service import config as service_config
from consent_service import log_hygiene

if TYPE_CHECKING:  # Flask is loaded by create_app, so importing a pure module loads no framework
    from flask import Flask


# flask-smorest's OpenAPI document. Its viewer, /docs, is served by views/docs.py from a
# package's own files (no CDN), not by flask-smorest's pages (which load theirs from one).
OPENAPI = {
    "API_TITLE": "consent_service",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Wire the app: configuration, the service container, the API, the pages for people."""
    from flask import Flask

    from consent_service import views, web
    from consent_service.container import EXTENSION, Services
    from consent_service.storage.urls import instance_path

    settings = service_config.load(test_config)
    log_hygiene.install()
    instance = Path(settings.get("INSTANCE_PATH") or instance_path())
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=True)
    app.config.update(MAX_CONTENT_LENGTH=settings["MAX_CONTENT_LENGTH"], **OPENAPI)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    services = Services.build(settings, instance)
    app.extensions[EXTENSION] = services
    views.register(app, services)  # the HTTP API under /v1, /oauth/token, /.well-known
    web.register(app)  # pages for people: sign-in, stewards, intake
    return app
