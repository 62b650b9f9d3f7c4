"""The codes requests and consents use (any valid token)."""

from __future__ import annotations

from flask.views import MethodView

from consent_service.schemas.vocabulary import VocabularyOut
from consent_service.services import vocabulary as cases
from consent_service.views.common import ApiBlueprint, caller_with, services

blp = ApiBlueprint("vocabulary", __name__, url_prefix="/v1", description="Purposes and data categories")


@blp.route("/vocabulary")
class VocabularyView(MethodView):
    @blp.response(200, VocabularyOut)
    def get(self) -> cases.Terms:
        return cases.terms(services(), caller=caller_with())
