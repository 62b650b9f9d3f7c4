"""The subjects resource: identifier systems (``/v1/subject-systems``) and a person's own record
(``/v1/subjects/access-report``, ``/v1/subjects/rekey``; scope consents:read / consents:write, the
organization that recorded their consent)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.subjects import (
    AccessReportIn,
    AccessReportOut,
    FormatQuery,
    RekeyOut,
    SubjectSystemIn,
    SubjectSystemOut,
    SubjectSystemsOut,
)
from consent_service.services import subjects as cases
from consent_service.views import html
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint(
    "subjects",
    __name__,
    url_prefix="/v1",
    description="Subjects: identifier systems, and a person's own record",
)


@blp.route("/subjects/access-report")
class AccessReport(MethodView):
    @blp.arguments(AccessReportIn)
    @blp.arguments(FormatQuery, location="query")
    @blp.response(200, AccessReportOut)
    @blp.alt_response(
        200,
        schema={"type": "string"},
        content_type="text/html",
        success=True,
        description="the report; as text/html (?format=html or Accept: text/html), "
        "the same as a printable page",
    )
    def post(self, body: dict[str, Any], query: dict[str, Any]) -> cases.AccessReport | Response:
        """The person's consents with us (every version and revocation) and every decision about
        them: when, who asked, for what, which data, permit or deny, and why.

        ``?format=html`` (or ``Accept: text/html``) gives the same as a printable page in plain
        language, to hand to the person. 404 when your organization has recorded no consent of
        this person.
        """
        caller = caller_with(Scope.CONSENTS_READ)
        report = cases.report(services(), caller=caller, subject=body["subject"], now=now())
        if html.wants_html(query.get("format")):
            return html.page("access_report.html", report=report, labels=report.labels)
        return report


@blp.route("/subjects/rekey")
class Rekey(MethodView):
    @blp.arguments(AccessReportIn)
    @blp.response(200, RekeyOut)
    def post(self, body: dict[str, Any]) -> cases.Rekeyed:
        """Move a person recorded before identifiers were normalized to the normalized spelling.

        Send the identifier exactly as it was recorded then: the consents and memberships
        recorded under that spelling move to the key of its normalized spelling (audited), and
        its decisions stay in the person's access report. 404 unless your organization recorded
        a consent under that spelling (or when it is normalized already).
        """
        caller = caller_with(Scope.CONSENTS_WRITE)
        return cases.rekey(services(), caller=caller, subject=body["subject"], now=now())


@blp.route("/subject-systems")
class SubjectSystems(MethodView):
    @blp.arguments(SubjectSystemIn)
    @blp.response(201, SubjectSystemOut)
    def post(self, body: dict[str, Any]) -> cases.RegisteredSystem:
        """Register an identifier system to one organization, or as shared (admin); 409 if it exists.

        An organization records consents only under the systems registered to it or shared.
        """
        caller = caller_with(Scope.ADMIN)
        return cases.register(services(), caller=caller, now=now(), **body)

    @blp.response(200, SubjectSystemsOut)
    def get(self) -> cases.SubjectSystems:
        """Every registered subject system (any client: each needs to know which it may use)."""
        caller = caller_with()
        return cases.list_systems(services(), caller=caller)
