"""Receipts: check one without a JOSE library; the printable consent receipt page."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from consent_service.core.permissions import Scope
from consent_service.schemas.receipts import ReceiptCheckOut, ReceiptIn, ReceiptPageQuery
from consent_service.services import access_report
from consent_service.services import receipts as receipt_check
from consent_service.views import html
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint("receipts", __name__, url_prefix="/v1", description="Consent and decision receipts")


@blp.route("/receipts/verify")
class VerifyReceipt(MethodView):
    @blp.arguments(ReceiptIn)
    @blp.response(200, ReceiptCheckOut)
    def post(self, body: dict[str, Any]) -> receipt_check.ReceiptCheck:
        """Is this consent or decision receipt signed by this service and unchanged?

        Any valid token may ask. An invalid receipt is ``valid: false`` with a ``problem``, never
        an error. Valid says nothing about whether a consent is still in force: ask its recorder.
        """
        return receipt_check.verify(services(), caller=caller_with(), token=body["receipt"])


@blp.route("/consents/<consent_id>/receipt.html")
class ReceiptPage(MethodView):
    @blp.arguments(ReceiptPageQuery, location="query")
    @blp.response(200, description="a printable HTML page", content_type="text/html")
    def get(self, query: dict[str, Any], consent_id: str) -> Response:
        """The consent receipt as a printable page for the person (the recording organization only).

        ``?version=`` picks an earlier version's receipt; default the current one.
        """
        caller = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE)
        receipt = access_report.receipt_page(
            services(), caller=caller, consent_id=consent_id, version=query.get("version"), now=now()
        )
        # The person's own page, where the access code given with their first receipt opens.
        own_page = url_for("person.start", _external=True)
        return html.page("consent_receipt.html", **vars(receipt), person_page=own_page)
