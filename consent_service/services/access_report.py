"""The printable consent receipt page (a consent version's signed receipt, decoded, with names).

The person's access report moved to :mod:`consent_service.services.subjects` (the subjects
resource, ``/v1/subjects/access-report``); this module keeps only the receipt page, which belongs
to the consents resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import receipts
from consent_service.core.caller import Caller
from consent_service.core.keys import InvalidSignature
from consent_service.errors import NotFound
from consent_service.services import consents as consent_cases
from consent_service.services.code_names import labels as _labels
from consent_service.services.code_names import names as _names
from consent_service.storage import consents as consent_store


@dataclass(frozen=True)
class ReceiptPage:
    """What the printable consent receipt shows: one version's signed receipt, decoded, and the
    names and labels of the codes in it (the template's context, ``vars(page)``)."""

    consent: consent_cases.ConsentState
    version: int
    current_version: int
    superseded: bool
    claims: dict[str, Any]
    kid: str | None
    recorded_at: datetime
    expires_at: datetime | None
    receipt: str
    generated_at: datetime
    labels: dict[str, dict[str, str]]


def receipt_page(
    services: Services, *, caller: Caller, consent_id: str, version: int | None, now: datetime
) -> ReceiptPage:
    """A consent version's signed receipt, decoded, for the printable page (recording org only)."""
    with services.reading(caller) as session:
        consent = consent_store.get(session, consent_id)
        if consent is None or consent.recorded_by != caller.organization:
            raise NotFound("No such consent.")
        row = consent_store.version(session, consent.id, version or consent.current_version)
        if row is None:
            raise NotFound("No such version of this consent.")
        try:
            header, claims = receipts.verify(services.keys, row.receipt)
        except InvalidSignature as exc:  # our own stored receipt: a failure here is a real fault
            raise RuntimeError(f"the stored receipt of consent {consent.id} does not verify") from exc
        names = _names(
            session, organizations={consent.recorded_by, *row.recipients}, communities=set(row.communities)
        )
        labels = _labels(services, purposes=set(row.purposes), categories=set(row.data_categories))
        return ReceiptPage(
            consent=consent_cases.ConsentState.of(consent, row, now),
            version=row.version,
            current_version=consent.current_version,
            superseded=row.version != consent.current_version,
            claims=claims,
            kid=header.get("kid"),
            recorded_at=row.recorded_at,
            expires_at=row.expires_at,
            receipt=row.receipt,
            generated_at=now,
            labels={**labels, **names},
        )
