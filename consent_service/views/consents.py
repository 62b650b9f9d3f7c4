"""Individual consent: record, read, amend, revoke (scopes consents:write / consents:read)."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.consents import (
    AccessCodeOut,
    AmendIn,
    ConsentCreatedOut,
    ConsentHistoryOut,
    ConsentIn,
    ConsentOut,
    ConsentReviewsOut,
    RevokeIn,
)
from consent_service.services import consent_reviews, person
from consent_service.services import consents as cases
from consent_service.services.consent_reviews import ReviewItem
from consent_service.services.consents import ConsentState
from consent_service.views.common import ApiBlueprint, caller_with, idempotency_key, now, services

blp = ApiBlueprint("consents", __name__, url_prefix="/v1/consents", description="Individual consent")


@blp.route("")
class Consents(MethodView):
    @blp.arguments(ConsentIn)
    @blp.response(201, ConsentCreatedOut)
    def post(self, body: dict[str, Any]) -> ConsentState:
        caller = caller_with(Scope.CONSENTS_WRITE)
        idempotency = idempotency_key("record-consent", request.get_json(silent=True))
        subject = body.pop("subject")
        return cases.record(
            services(), caller=caller, subject=subject, terms=body, now=now(), idempotency=idempotency
        )


@blp.route("/reviews")
class ConsentReviews(MethodView):
    @blp.response(200, ConsentReviewsOut)
    def get(self) -> dict[str, list[ReviewItem]]:
        """Consents this organization recorded whose meaning a release changed: ask the person again."""
        caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE, Scope.ADMIN)
        return {"consents": consent_reviews.list_for(services(), caller=caller)}


@blp.route("/<consent_id>")
class ConsentById(MethodView):
    @blp.response(200, ConsentOut)
    def get(self, consent_id: str) -> ConsentState:
        caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE, Scope.ADMIN)
        return cases.get(services(), caller=caller, consent_id=consent_id, now=now())


@blp.route("/<consent_id>/history")
class ConsentHistory(MethodView):
    @blp.response(200, ConsentHistoryOut)
    def get(self, consent_id: str) -> cases.ConsentHistory:
        caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE, Scope.ADMIN)
        return cases.history(services(), caller=caller, consent_id=consent_id)


@blp.route("/<consent_id>/amend")
class AmendConsent(MethodView):
    @blp.arguments(AmendIn)
    @blp.response(200, ConsentOut)
    def post(self, body: dict[str, Any], consent_id: str) -> ConsentState:
        caller = caller_with(Scope.CONSENTS_WRITE)
        expected = body.pop("version", None)
        return cases.amend(
            services(), caller=caller, consent_id=consent_id, terms=body, expected_version=expected, now=now()
        )


@blp.route("/<consent_id>/revoke")
class RevokeConsent(MethodView):
    @blp.arguments(RevokeIn)
    @blp.response(200, ConsentOut)
    def post(self, body: dict[str, Any], consent_id: str) -> ConsentState:
        caller = caller_with(Scope.CONSENTS_WRITE)
        idempotency = idempotency_key(f"revoke-consent:{consent_id}", request.get_json(silent=True))
        return cases.revoke(
            services(),
            caller=caller,
            consent_id=consent_id,
            reason=body.get("reason"),
            now=now(),
            idempotency=idempotency,
        )


@blp.route("/<consent_id>/access-code")
class AccessCode(MethodView):
    @blp.response(201, AccessCodeOut)
    def post(self, consent_id: str) -> person.NewAccessCode:
        """A new access code to the person's own view, for a lost one: every earlier code of the
        person at this organization stops working. Shown in this answer only."""
        caller = caller_with(Scope.CONSENTS_WRITE)
        return person.rotate(services(), caller=caller, consent_id=consent_id, now=now())
