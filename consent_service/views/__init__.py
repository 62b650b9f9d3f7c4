"""The HTTP API: one blueprint per resource, the token endpoint, limits, errors and headers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from consent_service.container import Services


def register(app: Flask, services: Services) -> None:
    """Mount the API on ``app``: the token server, the /v1 blueprints, rate limits, error bodies."""
    from consent_service.auth.clients import client_lookup
    from consent_service.auth.tokens import build_token_server
    from consent_service.extensions import make_api, make_limiter
    from consent_service.views import (
        access_requests,
        agreements,
        audit,
        authorize,
        communities,
        consent_files,
        consents,
        decisions,
        docs,
        errors,
        fhir,
        health,
        limits,
        memberships,
        oauth,
        observability,
        organizations,
        receipts,
        security,
        stewards,
        subjects,
        vocabulary,
        webhooks,
    )

    settings = services.settings
    app.extensions["consent_token_server"] = build_token_server(
        app,
        keys=services.keys,
        issuer=settings["TOKEN_ISSUER"],
        audience=settings["TOKEN_AUDIENCE"],
        expires_in=settings["TOKEN_EXPIRES_IN"],
        query_client=client_lookup(services.sessions),
        render_error=errors.render_oauth_error,
    )
    api = make_api()
    api.init_app(app)
    resources = (
        organizations,
        consent_files,
        consents,
        authorize,
        vocabulary,
        audit,
        communities,
        agreements,
        decisions,
        receipts,
        subjects,
        fhir,
        stewards,
        memberships,
        access_requests,
        webhooks,
    )
    for resource in resources:
        api.register_blueprint(resource.blp)
    app.register_blueprint(oauth.blp)
    app.register_blueprint(health.blp)
    app.register_blueprint(docs.blp)
    limits.configure(app, settings)
    limiter = make_limiter(limits.client_or_address)
    limiter.init_app(app)
    limits.apply(app, limiter, settings)
    app.extensions["consent_api"] = api
    errors.register(app)
    security.register(app)
    observability.register(app)  # last: its first hook times every other
