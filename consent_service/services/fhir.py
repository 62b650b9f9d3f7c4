"""A consent as an HL7 FHIR R4 ``Consent`` resource, for systems that speak FHIR.

Mapping (docs/audit.md, "FHIR export"):

* ``status`` active, or inactive once revoked or expired; ``scope`` patient-privacy;
  ``category`` LOINC 59284-0 (patient consent); ``policyRule`` OPTIN;
* ``patient`` and ``performer`` (the person, who grants the consent) are the pseudonymous
  subject key as an identifier, never the raw subject identifier; ``organization`` is the
  recording organization (the custodian); ``sourceAttachment`` is the signed consent receipt;
* ``provision``: type permit, ``period`` from recording to expiry (or revocation), recipients
  as ``actor`` (role IRCP), purposes as ``purpose`` and data categories as ``class``, both
  codings in the service's own code systems (a code covers its descendants, as in the API);
* nested ``provision`` of type deny, one per active community ``deny`` rule of every community
  the person belongs to (membership belongs to the person, so these apply to this consent
  whichever consent recorded it); ``*`` leaves ``class`` or ``actor`` out (all data, anyone).
  Only to a reader that may see them (``disclosure``): a recording organization that no
  consent in force of the person names as a recipient gets none; the community's id is given
  only where the community shows it. Admin (oversight) gets them all.
  ``require_approval`` rules are not exported: FHIR cannot say "unless the community approves".
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import disclosure
from consent_service.core.caller import Caller
from consent_service.core.decision_record import consent_terms
from consent_service.core.wire import WILDCARD, ConsentStatus, RuleEffect
from consent_service.errors import NotFound
from consent_service.storage import bulk
from consent_service.storage import communities as community_store
from consent_service.storage import consents as consent_store
from consent_service.storage import organizations as organization_store

FHIR_JSON = "application/fhir+json"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
LOINC = "http://loinc.org"


def code_system(issuer: str, name: str) -> str:
    """The service's own code systems, named under its issuer URI."""
    return f"{issuer}:{name}" if issuer.startswith("urn:") else f"{issuer.rstrip('/')}/fhir/CodeSystem/{name}"


def _instant(value: datetime) -> str:
    return value.isoformat()


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _reader(session: Any, *, caller: Caller, subject_key: str, now: datetime) -> disclosure.Audience:
    """The caller as a reader of the person's community rules: as authorize would tell it."""
    showing: set[str] = set()
    versions = bulk.memberships_with_versions(session, [subject_key], showing=showing).get(subject_key, ())
    consents = [
        consent_terms(row)
        for row in bulk.current_terms_for_subjects(session, [subject_key]).get(subject_key, ())
    ]
    return disclosure.audience(
        consents,
        requester=caller.organization,
        now=now,
        communities=[cid for cid, _ in versions],
        showing=frozenset(showing),
    )


def consent_resource(services: Services, *, caller: Caller, consent_id: str, now: datetime) -> dict[str, Any]:
    """The current version of a consent as FHIR R4 JSON (recording organization or admin only)."""
    issuer = services.settings["TOKEN_ISSUER"]
    vocabulary = services.policy.vocabulary
    with services.reading(caller) as session:
        consent = consent_store.get(session, consent_id)
        if consent is None or (consent.recorded_by != caller.organization and not caller.is_admin):
            raise NotFound("No such consent.")
        version = consent_store.version(session, consent.id, consent.current_version)
        assert version is not None  # current_version always points at a stored version
        org_names = {}
        for org_id in {consent.recorded_by, *version.recipients}:
            org = organization_store.get_organization(session, org_id)
            org_names[org_id] = org.name if org else org_id
        memberships = community_store.memberships_with_versions(session, consent.subject_key)
        all_rules = [
            rule
            for row in memberships
            for rule in community_store.active_rules(session, row.id)
            if rule.effect == RuleEffect.DENY
        ]
        # Admin (oversight) sees every rule; a recording organization what a requester would be told.
        reader = (
            disclosure.Audience(named=True, shown=frozenset(r.community_id for r in all_rules))
            if caller.is_admin
            else _reader(session, caller=caller, subject_key=consent.subject_key, now=now)
        )
        rules = disclosure.visible_rules(all_rules, audience=reader)
        for rule, _ in rules:
            for org_id in rule.requesters:
                if org_id != WILDCARD and org_id not in org_names:
                    org = organization_store.get_organization(session, org_id)
                    org_names[org_id] = org.name if org else org_id

        def organization(org_id: str) -> dict[str, Any]:
            return {
                "type": "Organization",
                "identifier": {"system": code_system(issuer, "organization"), "value": org_id},
                "display": org_names[org_id],
            }

        def recipient(org_id: str) -> dict[str, Any]:
            return {
                "role": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
                "reference": organization(org_id),
            }

        def purposes(codes: list[str]) -> list[dict[str, Any]]:
            terms = vocabulary.purposes
            return [
                _coding(code_system(issuer, "purpose"), code, terms[code].label if code in terms else None)
                for code in codes
            ]

        def classes(codes: list[str]) -> list[dict[str, Any]]:
            terms = vocabulary.data_categories
            return [
                _coding(
                    code_system(issuer, "data-category"), code, terms[code].label if code in terms else None
                )
                for code in codes
            ]

        expired = version.expires_at is not None and version.expires_at <= now
        active = consent.status == ConsentStatus.ACTIVE and not expired
        ends = [t for t in (version.expires_at, consent.revoked_at) if t is not None]
        period: dict[str, str] = {"start": _instant(version.recorded_at)}
        if ends:
            period["end"] = _instant(min(ends))
        person = {
            "type": "Patient",
            "identifier": {"system": code_system(issuer, "subject-pseudonym"), "value": consent.subject_key},
        }
        denies = []
        for rule, community_shown in rules:
            about = [{"url": "rule", "valueString": rule.id}, {"url": "reason", "valueString": rule.reason}]
            if community_shown:
                about.insert(0, {"url": "community", "valueString": rule.community_id})
            deny: dict[str, Any] = {
                "id": f"rule-{rule.id}",
                "extension": [{"url": code_system(issuer, "community-rule"), "extension": about}],
                "type": "deny",
                "period": {"start": _instant(rule.created_at)},
                "purpose": purposes(list(rule.purposes)),
            }
            if WILDCARD not in rule.data_categories:
                deny["class"] = classes(list(rule.data_categories))
            if WILDCARD not in rule.requesters:
                deny["actor"] = [recipient(org_id) for org_id in rule.requesters]
            denies.append(deny)

        provision: dict[str, Any] = {
            "type": "permit",
            "period": period,
            "actor": [recipient(org_id) for org_id in version.recipients],
            "action": [{"coding": [_coding(CONSENT_ACTION, "use", "Use")]}],
            "purpose": purposes(list(version.purposes)),
            "class": classes(list(version.data_categories)),
        }
        if denies:
            provision["provision"] = denies
        return {
            "resourceType": "Consent",
            "id": consent.id,
            "meta": {"versionId": str(version.version), "lastUpdated": _instant(consent.updated_at)},
            "identifier": [{"system": code_system(issuer, "consent"), "value": consent.id}],
            "status": "active" if active else "inactive",
            "scope": {"coding": [_coding(CONSENT_SCOPE, "patient-privacy", "Privacy Consent")]},
            "category": [{"coding": [_coding(LOINC, "59284-0", "Patient Consent")]}],
            "patient": person,
            "dateTime": _instant(version.recorded_at),
            "performer": [person],
            "organization": [organization(consent.recorded_by)],
            "sourceAttachment": {
                "contentType": "application/jose",
                "title": "Signed consent receipt",
                "data": base64.b64encode(version.receipt.encode("ascii")).decode("ascii"),
                "creation": _instant(version.recorded_at),
            },
            "policyRule": {"coding": [_coding(ACT_CODE, "OPTIN", "opt-in")]},
            "provision": provision,
        }
