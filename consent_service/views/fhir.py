"""Consents in HL7 FHIR R4, for systems that already speak it."""

from __future__ import annotations

import json

from flask import Response
from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.services import fhir as cases
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint("fhir", __name__, url_prefix="/v1/consents", description="FHIR export")


@blp.route("/<consent_id>/fhir")
class ConsentAsFhir(MethodView):
    @blp.response(200, description="an HL7 FHIR R4 Consent resource", content_type=cases.FHIR_JSON)
    def get(self, consent_id: str) -> Response:
        """The consent's current version as a FHIR R4 Consent (the recording organization, or admin).

        Community deny rules that apply to the person are nested deny provisions.
        """
        caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE, Scope.ADMIN)
        resource = cases.consent_resource(services(), caller=caller, consent_id=consent_id, now=now())
        return Response(json.dumps(resource, ensure_ascii=False), status=200, mimetype=cases.FHIR_JSON)
