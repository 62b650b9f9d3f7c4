"""A community's data sharing agreements and duties (its stewards): rules:write changes,
community:read (or rules:write) reads. The document is uploaded as the raw request body with
its own Content-Type (``PUT .../document?name=...``), up to the deployment's limit."""

from __future__ import annotations

import base64
from typing import Any

from flask import Response, request
from flask.views import MethodView
from marshmallow import RAISE

from consent_service.config import DEFAULTS
from consent_service.core.permissions import Scope
from consent_service.schemas.agreements import (
    AgreementIn,
    AgreementListOut,
    AgreementOut,
    AgreementsQuery,
    DocumentQuery,
    DutyIn,
    DutyMetIn,
    DutyOut,
    RenewIn,
)
from consent_service.services import agreements
from consent_service.views.common import ApiBlueprint, caller_with, now, services

DOCUMENT_LIMIT = DEFAULTS["AGREEMENT_MAX_BYTES"]  # documented; a deployment may set another

blp = ApiBlueprint(
    "agreements",
    __name__,
    url_prefix="/v1/communities",
    description="A community's data sharing agreements and the duties they carry (its stewards)",
)


@blp.route("/<community_id>/agreements")
class Agreements(MethodView):
    @blp.arguments(AgreementIn)
    @blp.response(201, AgreementOut)
    def post(self, body: dict[str, Any], community_id: str) -> agreements.AgreementRecord:
        """Record an agreement: parties, legal authority, review date, the approvals granted under
        it and its duties. Past its review date, unrenewed, its approvals stop permitting."""
        caller = caller_with(Scope.RULES_WRITE)
        return agreements.create_agreement(
            services(), caller=caller, community_id=community_id, now=now(), **body
        )

    @blp.arguments(AgreementsQuery, location="query", unknown=RAISE)
    @blp.response(200, AgreementListOut)
    def get(self, query: dict[str, Any], community_id: str) -> agreements.AgreementList:
        """The community's agreements, soonest review first (``review_due_within``: the reminders)."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return agreements.list_agreements(
            services(), caller=caller, community_id=community_id, now=now(), **query
        )


@blp.route("/<community_id>/agreements/<agreement_id>")
class AgreementById(MethodView):
    @blp.response(200, AgreementOut)
    def get(self, community_id: str, agreement_id: str) -> agreements.AgreementRecord:
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        return agreements.get_agreement(
            services(), caller=caller, community_id=community_id, agreement_id=agreement_id, now=now()
        )


@blp.route("/<community_id>/agreements/<agreement_id>/renew")
class RenewAgreement(MethodView):
    @blp.arguments(RenewIn)
    @blp.response(200, AgreementOut)
    def post(self, body: dict[str, Any], community_id: str, agreement_id: str) -> agreements.AgreementRecord:
        """The community reviewed the agreement: its next review date (audited)."""
        caller = caller_with(Scope.RULES_WRITE)
        return agreements.renew_agreement(
            services(), caller=caller, community_id=community_id, agreement_id=agreement_id, now=now(), **body
        )


def _document_sized_body(view: Any) -> Any:
    """A document may be larger than the service-wide body limit: this route reads up to the
    deployment's document limit (and one byte more, so that a larger one is refused, not cut)."""

    def with_document_limit(*args: Any, **kwargs: Any) -> Any:
        request.max_content_length = services().settings["AGREEMENT_MAX_BYTES"] + 1
        return view(*args, **kwargs)

    return with_document_limit


@blp.route("/<community_id>/agreements/<agreement_id>/document")
class AgreementDocument(MethodView):
    decorators = [_document_sized_body]

    @blp.arguments(DocumentQuery, location="query", unknown=RAISE)
    @blp.response(200, AgreementOut)
    @blp.doc(
        requestBody={
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string", "maxLength": DOCUMENT_LIMIT}}},
            "description": "the document's bytes with its own Content-Type: one of the deployment's "
            "AGREEMENT_MEDIA_TYPES (by default application/pdf, text/plain and .docx)",
        }
    )
    def put(self, query: dict[str, Any], community_id: str, agreement_id: str) -> agreements.AgreementRecord:
        """Upload the agreement's document (replacing an earlier one); its SHA-256 is audited."""
        caller = caller_with(Scope.RULES_WRITE)
        return agreements.attach_document(
            services(),
            caller=caller,
            community_id=community_id,
            agreement_id=agreement_id,
            content=request.get_data(cache=False),
            media_type=request.content_type or "",
            name=query["name"],
            now=now(),
        )

    @blp.response(200, {"type": "string", "format": "binary"}, content_type="application/octet-stream")
    def get(self, community_id: str, agreement_id: str) -> Response:
        """The document as uploaded, as an attachment of type application/octet-stream (never shown
        inline); its SHA-256 in ``Repr-Digest`` (RFC 9530) and its type in ``X-Document-Type``."""
        caller = caller_with(Scope.COMMUNITY_READ, Scope.RULES_WRITE)
        document = agreements.read_document(
            services(), caller=caller, community_id=community_id, agreement_id=agreement_id
        )
        answer = Response(document.content, mimetype="application/octet-stream")
        answer.headers["X-Document-Type"] = document.media_type
        answer.headers["Repr-Digest"] = f"sha-256=:{_b64(document.sha256)}:"
        answer.headers["Content-Disposition"] = "attachment"
        return answer


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


@blp.route("/<community_id>/agreements/<agreement_id>/duties")
class Duties(MethodView):
    @blp.arguments(DutyIn)
    @blp.response(201, DutyOut)
    def post(self, body: dict[str, Any], community_id: str, agreement_id: str) -> agreements.DutyRecord:
        """Add a duty a party owes the community under the agreement (audited)."""
        caller = caller_with(Scope.RULES_WRITE)
        return agreements.add_duty(
            services(),
            caller=caller,
            community_id=community_id,
            agreement_id=agreement_id,
            terms=body,
            now=now(),
        )


@blp.route("/<community_id>/agreements/<agreement_id>/duties/<duty_id>/met")
class DutyMet(MethodView):
    @blp.arguments(DutyMetIn)
    @blp.response(200, DutyOut)
    def post(
        self, body: dict[str, Any], community_id: str, agreement_id: str, duty_id: str
    ) -> agreements.DutyRecord:
        """The community received what the duty asked: it no longer holds the party's approvals."""
        caller = caller_with(Scope.RULES_WRITE)
        return agreements.mark_duty_met(
            services(),
            caller=caller,
            community_id=community_id,
            agreement_id=agreement_id,
            duty_id=duty_id,
            note=body["note"],
            now=now(),
        )
