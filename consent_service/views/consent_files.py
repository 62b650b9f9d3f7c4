"""Bulk import and export of consents (scopes consents:write / consents:read)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, request
from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.errors import ValidationFailed
from consent_service.schemas.consent_files import ExportArgs, ImportArgs, ImportReportOut
from consent_service.services import consent_export, consent_import
from consent_service.services.fhir import FHIR_JSON
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint("consent_files", __name__, url_prefix="/v1/consents", description="Import and export")

MEDIA = {"text/csv": "csv", FHIR_JSON: "fhir", "application/json": "fhir"}


def _file_sized_body(view: Callable[..., Any]) -> Callable[..., Any]:
    """A file of consents does not fit the service-wide body limit: this route alone gets a larger one."""

    def with_larger_limit(*args: Any, **kwargs: Any) -> Any:
        request.max_content_length = services().settings["IMPORT_MAX_CONTENT_LENGTH"]
        return view(*args, **kwargs)

    return with_larger_limit


@blp.route("/import")
class ImportConsents(MethodView):
    decorators = [_file_sized_body]

    @blp.arguments(ImportArgs, location="query")
    @blp.response(201, ImportReportOut)
    def post(self, args: dict[str, Any]) -> consent_import.ImportReport:
        """Record the consents of a CSV file (``text/csv``) or a FHIR R4 Bundle (``application/fhir+json``).

        Every row is checked as ``POST /v1/consents`` checks one before anything is written. Any
        bad row: 400, nothing written, ``details.rows`` names each (line, field, message); with
        ``skip_bad=true`` the good rows are written and the bad ones listed. Rows recorded by an
        earlier import are not recorded again (``already``).
        """
        caller = caller_with(Scope.CONSENTS_WRITE)
        fmt = args["format"] or MEDIA.get(request.mimetype)
        if fmt is None:
            raise ValidationFailed(
                "Send the file as text/csv or application/fhir+json.",
                details={"Content-Type": [f"not an import format: {request.mimetype or 'none'}"]},
            )
        return consent_import.import_file(
            services(),
            caller=caller,
            data=request.get_data(cache=False),
            fmt=fmt,
            skip_bad=args["skip_bad"],
            now=now(),
        )


@blp.route("/export")
class ExportConsents(MethodView):
    @blp.arguments(ExportArgs, location="query")
    @blp.response(200, description="CSV (the import's header) or a FHIR R4 Bundle, streamed")
    def get(self, args: dict[str, Any]) -> Response:
        """The consents your organization recorded, streamed: CSV that imports back, or a FHIR R4
        Bundle of Consent resources and an AuditEvent per decision that read one of them."""
        caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE, Scope.ADMIN)
        fmt = args["format"]
        the_services, at = services(), now()
        the_services.check(caller)  # a disabled client is refused before the stream starts
        lines = (consent_export.export_csv if fmt == "csv" else consent_export.export_fhir)(
            the_services, caller=caller, now=at
        )
        return Response(
            lines,  # needs no request context: it holds its services and caller
            status=200,
            mimetype=consent_export.MEDIA_TYPES[fmt],
            headers={
                "Content-Disposition": f'attachment; filename="consents.{"csv" if fmt == "csv" else "json"}"'
            },
        )
