"""Export of an organization's own consents, streamed: CSV (the import's header, so the file
imports back) or a FHIR R4 Bundle of Consent resources and an AuditEvent per decision that
read one of them.

The rows are read in keyset pages inside one read snapshot and written out as they are read:
no list of every consent is ever held. Only the caller's organization's consents (admin too
exports its own organization's only: an export is a custodian's copy, not oversight).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import consent_files
from consent_service.core.caller import Caller
from consent_service.errors import ValidationFailed
from consent_service.services import fhir
from consent_service.services.consents import status_of
from consent_service.storage import consent_import as store
from consent_service.storage.models import Consent, ConsentVersion

FORMATS = ("csv", "fhir")
MEDIA_TYPES = {"csv": "text/csv", "fhir": fhir.FHIR_JSON}
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
AUDIT_OUTCOME = {"permit": "0", "deny": "4"}  # success / minor failure (the use was refused)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValidationFailed("Unknown export format.", details={"format": [f"one of {', '.join(FORMATS)}"]})
    return fmt


def _csv_values(consent: Consent, version: ConsentVersion, now: datetime) -> dict[str, Any]:
    evidence = version.evidence or {}
    return {
        "consent_id": consent.id,
        "subject_pseudonym": consent.subject_key,
        "purposes": version.purposes,
        "data_categories": version.data_categories,
        "recipients": version.recipients,
        "communities": version.communities,
        "expires_at": version.expires_at.isoformat() if version.expires_at else None,
        **{f"evidence_{k}": v for k, v in evidence.items()},
        "version": version.version,
        "status": str(status_of(consent, version, now)),
        "recorded_at": version.recorded_at.isoformat(),
        "revoked_at": consent.revoked_at.isoformat() if consent.revoked_at else None,
        "receipt_id": version.receipt_id,
    }


def export_csv(services: Services, *, caller: Caller, now: datetime) -> Iterator[str]:
    """The organization's consents as CSV, a page at a time (the subject's identifier is never
    kept, so its columns are empty; ``consent_id`` names each consent on a re-import)."""
    yield consent_files.csv_header()
    with services.reading(caller) as session:
        for consent, version in store.consents_of(session, caller.organization):
            yield consent_files.csv_line(_csv_values(consent, version, now))


def _consent_resource(
    services: Services, consent: Consent, version: ConsentVersion, now: datetime
) -> dict[str, Any]:
    """A Consent resource from the rows alone (services.fhir adds the community deny provisions
    for one consent; an export is the organization's own record of what it holds)."""
    issuer = services.settings["TOKEN_ISSUER"]

    def organization(org_id: str) -> dict[str, Any]:
        return {
            "type": "Organization",
            "identifier": {"system": fhir.code_system(issuer, "organization"), "value": org_id},
        }

    status = status_of(consent, version, now)
    ends = [t for t in (version.expires_at, consent.revoked_at) if t is not None]
    period = {"start": version.recorded_at.isoformat()}
    if ends:
        period["end"] = min(ends).isoformat()
    person = {
        "type": "Patient",
        "identifier": {"system": fhir.code_system(issuer, "subject-pseudonym"), "value": consent.subject_key},
    }
    return {
        "resourceType": "Consent",
        "id": consent.id,
        "meta": {"versionId": str(version.version), "lastUpdated": consent.updated_at.isoformat()},
        "extension": consent_files.evidence_extension(issuer, version.evidence or {}, version.communities),
        "identifier": [{"system": fhir.code_system(issuer, "consent"), "value": consent.id}],
        "status": "active" if status == "active" else "inactive",
        "scope": {"coding": [{"system": fhir.CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": fhir.LOINC, "code": "59284-0"}]}],
        "patient": person,
        "dateTime": version.recorded_at.isoformat(),
        "performer": [person],
        "organization": [organization(consent.recorded_by)],
        "sourceAttachment": {
            "contentType": "application/jose",
            "title": "Signed consent receipt",
            "url": f"urn:uuid:{version.receipt_id}",
            "data": base64.b64encode(version.receipt.encode("ascii")).decode("ascii"),
        },
        "policyRule": {"coding": [{"system": fhir.ACT_CODE, "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "period": period,
            "actor": [
                {
                    "role": {"coding": [{"system": fhir.PARTICIPATION, "code": consent_files.IRCP}]},
                    "reference": organization(org_id),
                }
                for org_id in version.recipients
            ],
            "action": [{"coding": [{"system": fhir.CONSENT_ACTION, "code": "use"}]}],
            "purpose": [{"system": fhir.code_system(issuer, "purpose"), "code": c} for c in version.purposes],
            "class": [
                {"system": fhir.code_system(issuer, "data-category"), "code": c}
                for c in version.data_categories
            ],
        },
    }


def _audit_event(issuer: str, row: Any) -> dict[str, Any]:
    """A decision that read one of the organization's consents, as an R4 AuditEvent."""
    return {
        "resourceType": "AuditEvent",
        "id": row.id,
        "type": {"system": DCM, "code": "110106", "display": "Export"},
        "subtype": [{"system": fhir.code_system(issuer, "decision"), "code": "authorize"}],
        "action": "E",
        "recorded": row.at.isoformat(),
        "outcome": AUDIT_OUTCOME.get(row.outcome, "8"),
        "outcomeDesc": row.outcome,
        "purposeOfEvent": [
            {"coding": [{"system": fhir.code_system(issuer, "purpose"), "code": row.purpose}]}
        ],
        "agent": [
            {
                "who": {
                    "identifier": {"system": fhir.code_system(issuer, "organization"), "value": row.requester}
                },
                "requestor": True,
            }
        ],
        "source": {"observer": {"display": issuer}},
        "entity": [
            {
                "what": {"reference": f"Consent/{row.consent_id}"},
                "detail": [
                    {"type": "consent_version", "valueString": str(row.consent_version)},
                    {"type": "data_categories", "valueString": " ".join(row.data_categories)},
                ],
            }
        ],
    }


def export_fhir(services: Services, *, caller: Caller, now: datetime) -> Iterator[str]:
    """A FHIR R4 Bundle (type collection), written entry by entry."""
    issuer = services.settings["TOKEN_ISSUER"]
    yield json.dumps({"resourceType": "Bundle", "type": "collection", "timestamp": now.isoformat()})[:-1]
    yield ', "entry": ['
    first = True
    with services.reading(caller) as session:
        for consent, version in store.consents_of(session, caller.organization):
            resource = _consent_resource(services, consent, version, now)
            entry = {"fullUrl": f"urn:uuid:{consent.id}", "resource": resource}
            yield ("" if first else ",") + json.dumps(entry, ensure_ascii=False)
            first = False
        for row in store.decisions_about(session, caller.organization):
            entry = {"fullUrl": f"urn:uuid:{row.id}", "resource": _audit_event(issuer, row)}
            yield ("" if first else ",") + json.dumps(entry, ensure_ascii=False)
            first = False
    yield "]}"
