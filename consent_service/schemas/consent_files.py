"""Bulk import and export of consents: the query arguments and the import's report."""

from __future__ import annotations

from marshmallow import fields, validate

from consent_service.schemas.common import StrictSchema


class ImportArgs(StrictSchema):
    skip_bad = fields.Boolean(
        load_default=False,
        metadata={"description": "write the good rows and list the bad ones (else: nothing if any is bad)"},
    )
    format = fields.String(
        validate=validate.OneOf(["csv", "fhir"]),
        load_default=None,
        metadata={"description": "csv | fhir; left out: from the Content-Type"},
    )


class ExportArgs(StrictSchema):
    format = fields.String(validate=validate.OneOf(["csv", "fhir"]), load_default="csv")


class RowProblemOut(StrictSchema):
    line = fields.Integer(metadata={"description": "the line in the file (FHIR: the Bundle entry, from 1)"})
    field = fields.String(metadata={"description": "the column (FHIR: the element) at fault"})
    message = fields.String()


class ImportReportOut(StrictSchema):
    import_id = fields.String()
    format = fields.String()
    rows = fields.Integer(metadata={"description": "rows read, bad ones included"})
    recorded = fields.Integer(metadata={"description": "consents recorded by this import"})
    already = fields.Integer(
        metadata={"description": "rows an earlier import recorded, or naming a consent of yours: not again"}
    )
    bad = fields.Integer(metadata={"description": "bad rows (not written)"})
    problems = fields.List(fields.Nested(RowProblemOut))
    consent_ids = fields.List(fields.String())
