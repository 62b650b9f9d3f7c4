"""consent_service: consent and access control for social-sector data, with community rules."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from consent_service import config as service_config
from consent_service import log_hygiene

if TYPE_CHECKING:  # Flask is loaded by create_app, so importing a pure module loads no framework
    from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Wire the app: configuration, storage, keys, policies, token server, blueprints, errors."""
    from flask import Flask

    from consent_service import web
    from consent_service.auth.clients import ClientCredentials
    from consent_service.auth.tokens import build_token_server
    from consent_service.container import EXTENSION, Services
    from consent_service.core.keys import SigningKeys, load_secret
    from consent_service.core.policy import PolicyBase
    from consent_service.extensions import make_api, make_limiter
    from consent_service.storage import organizations as organization_store
    from consent_service.storage.db import make_engine, read_snapshot, session_factory
    from consent_service.storage.urls import database_url, instance_path
    from consent_service.views import (
        audit,
        authorize,
        communities,
        consents,
        decisions,
        errors,
        fhir,
        health,
        limits,
        oauth,
        receipts,
        security,
        subjects,
        vocabulary,
    )
    from consent_service.views import organizations as admin

    settings = service_config.load(test_config)
    log_hygiene.install()
    instance = Path(settings.get("INSTANCE_PATH") or instance_path())
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=True)
    app.config.update(
        MAX_CONTENT_LENGTH=settings["MAX_CONTENT_LENGTH"],
        API_TITLE="consent_service",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_REDOC_PATH="/docs",
        OPENAPI_REDOC_URL="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js",
        OPENAPI_SWAGGER_UI_PATH="/swagger",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]

    engine = make_engine(
        database_url(settings, instance),
        busy_timeout_ms=settings["SQLITE_BUSY_TIMEOUT_MS"],
        statement_timeout_ms=settings["PG_STATEMENT_TIMEOUT_MS"],
        pool_size=settings["DB_POOL_SIZE"],
        schema=settings["DB_SCHEMA"],
    )
    services = Services(
        sessions=session_factory(engine),
        policy=PolicyBase(settings["POLICIES_DIR"]),
        keys=SigningKeys.load(settings["SIGNING_KEYS"], instance),
        secret=load_secret(settings["SECRET_KEY"], instance),
        settings=settings,
    )
    app.extensions[EXTENSION] = services

    def query_client(client_id: str) -> ClientCredentials | None:
        with read_snapshot(services.sessions) as session:
            row = organization_store.get_client(session, client_id)
            if row is None or row.disabled_at is not None:
                return None
            return ClientCredentials(
                client_id=row.client_id,
                secret_hash=row.secret_hash,
                organization=row.organization_id,
                scopes=frozenset(row.scopes.split()),
            )

    app.extensions["consent_token_server"] = build_token_server(
        app,
        keys=services.keys,
        issuer=settings["TOKEN_ISSUER"],
        audience=settings["TOKEN_AUDIENCE"],
        expires_in=settings["TOKEN_EXPIRES_IN"],
        query_client=query_client,
        render_error=errors.render_oauth_error,
    )

    api = make_api()
    api.init_app(app)
    for module in (
        admin,
        consents,
        authorize,
        vocabulary,
        audit,
        communities,
        decisions,
        receipts,
        subjects,
        fhir,
    ):
        api.register_blueprint(module.blp)
    app.register_blueprint(oauth.blp)
    app.register_blueprint(health.blp)
    limits.configure(app, settings)
    limiter = make_limiter(limits.client_or_address)
    limiter.init_app(app)
    limits.apply(app, limiter, settings)
    app.extensions["consent_api"] = api
    errors.register(app)
    security.register(app)
    web.register(app)  # pages for people: sign-in, stewards, intake
    return app
