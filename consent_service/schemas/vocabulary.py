from __future__ import annotations

from marshmallow import fields

from consent_service.schemas.common import StrictSchema


class TermOut(StrictSchema):
    code = fields.String(required=True)
    parent = fields.String(allow_none=True, required=True)
    label = fields.String(required=True)
    description = fields.String()
    sensitive = fields.Boolean(metadata={"description": "stands alone: covered only when named"})


class VocabularyOut(StrictSchema):
    purposes = fields.List(fields.Nested(TermOut))
    data_categories = fields.List(fields.Nested(TermOut))
