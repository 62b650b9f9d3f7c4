from __future__ import annotations

from typing import Any

from flask.views import MethodView

from consent_service.schemas.vocabulary import VocabularyOut
from consent_service.views.common import ApiBlueprint, caller_with, services

blp = ApiBlueprint("vocabulary", __name__, url_prefix="/v1", description="Purposes and data categories")


@blp.route("/vocabulary")
class VocabularyView(MethodView):
    @blp.response(200, VocabularyOut)
    def get(self) -> dict[str, Any]:
        caller_with()
        vocabulary = services().policy.vocabulary

        def terms(section: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"code": t.code, "parent": t.parent, "label": t.label, "description": t.description,
                     "sensitive": t.sensitive}
                    for t in section.values()]

        return {"purposes": terms(vocabulary.purposes), "data_categories": terms(vocabulary.data_categories)}
