from __future__ import annotations

from marshmallow import fields, validate

from consent_service.schemas.common import StrictSchema


class ReceiptIn(StrictSchema):
    receipt = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32_000),
        metadata={"description": "a consent receipt or decision receipt (compact JWS)"},
    )


class ReceiptCheckOut(StrictSchema):
    """Dumps ``services.receipts.ReceiptCheck`` (``claims`` only of a ``ValidReceipt``)."""

    valid = fields.Boolean(required=True, metadata={"description": "signed by this service and unchanged"})
    type = fields.String(allow_none=True, metadata={"enum": ["consent-receipt", "decision-receipt", None]})
    kid = fields.String(allow_none=True, metadata={"description": "the signing key named by the receipt"})
    claims = fields.Dict(metadata={"description": "the receipt's content, only when valid"})
    problem = fields.String(allow_none=True)


class ReceiptPageQuery(StrictSchema):
    version = fields.Integer(
        validate=validate.Range(min=1, max=2**31 - 1),  # the column's range: more is a 400, not a 500
        metadata={"description": "the consent version; default the current one"},
    )
