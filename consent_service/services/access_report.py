"""The person's access report, and the printable consent receipt page.

What the recording organization may see (docs/audit.md, "The person's access report"):

* only if it has recorded at least one consent of this person; otherwise the answer is 404,
  (under a system not registered to it, e.g. a shared one, only what happened from its own
  first consent of the person on; see :func:`report`),
  exactly as for a person the service has never heard of, so the report cannot be used to
  find out whether someone is known to the service;
* every version, amendment and revocation of the consents *it* recorded (not other
  organizations' consents);
* every decision about the person, whoever asked: when, which organization, for which purpose
  and data categories, permit or deny, and why (reason codes and messages, community rule ids
  and communities). Where the reason is a consent recorded by *another* organization, its id
  is withheld and the message says only that another organization's consent covered the use.

The worker hands this to the person: it is the person's own record of who asked for their
data and why (as Estonia's Data Tracker shows its citizens).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import receipts
from consent_service.core.caller import Caller
from consent_service.core.keys import InvalidSignature
from consent_service.core.wire import AuditTag, ReasonCode
from consent_service.errors import NotFound
from consent_service.services import consents as consent_cases
from consent_service.storage import audit as audit_store
from consent_service.storage import communities as community_store
from consent_service.storage import consents as consent_store
from consent_service.storage import decisions as decision_store
from consent_service.storage import organizations as organization_store
from consent_service.storage import subjects as subject_store
from consent_service.storage.db import read_snapshot, write

OTHER_CONSENT = "A consent the person gave to another organization covered this use."


def _labels(services: Services, *, purposes: set[str], categories: set[str]) -> dict[str, dict[str, str]]:
    vocabulary = services.policy.vocabulary

    def label(terms: dict[str, Any], code: str) -> str:
        return terms[code].label if code in terms else code

    return {"purposes": {c: label(vocabulary.purposes, c) for c in sorted(purposes)},
            "data_categories": {c: label(vocabulary.data_categories, c) for c in sorted(categories)}}


def _names(session: Any, *, organizations: set[str], communities: set[str]) -> dict[str, dict[str, str]]:
    orgs = {}
    for org_id in sorted(organizations):
        org = organization_store.get_organization(session, org_id)
        orgs[org_id] = org.name if org else org_id
    comms = {}
    for community_id in sorted(communities):
        community = community_store.get(session, community_id)
        comms[community_id] = community.name if community else community_id
    return {"organizations": orgs, "communities": comms}


def _reason(reason: dict[str, Any], own: set[str]) -> dict[str, Any]:
    out = dict(reason)
    consent_id = out.get("consent_id")
    if consent_id is not None and consent_id not in own:
        out.pop("consent_id")
        if out.get("code") == ReasonCode.CONSENT:
            out["message"] = OTHER_CONSENT
    return out


def _consent_entry(consent: Any, versions: list[Any], events: list[Any], now: datetime) -> dict[str, Any]:
    current = next(v for v in versions if v.version == consent.current_version)
    return {
        "id": consent.id, "status": str(consent_cases.status_of(consent, current, now)),
        "current_version": consent.current_version,
        "created_at": consent.created_at, "revoked_at": consent.revoked_at,
        "revoked_reason": consent.revoked_reason,
        "versions": [{"version": v.version, "recorded_at": v.recorded_at, "purposes": list(v.purposes),
                      "data_categories": list(v.data_categories), "recipients": list(v.recipients),
                      "communities": list(v.communities), "expires_at": v.expires_at,
                      "method": v.evidence.get("method"), "receipt_id": v.receipt_id} for v in versions],
        "events": [{"kind": e.kind, "version": e.version, "at": e.at, "reason": e.reason} for e in events],
    }


def _own_consents(session: Any, keys: list[str], organization: str) -> list[Any]:
    found = {c.id: c for k in keys for c in consent_store.for_subject(session, k, recorded_by=organization)}
    return sorted(found.values(), key=lambda c: (c.created_at, c.id))


def report(services: Services, *, caller: Caller, subject: dict[str, str], now: datetime) -> dict[str, Any]:
    """The person's report for the caller's organization (contract v1.1 section 4).

    The person is looked up by every key they may be recorded under (services.subjects: the
    normalized one, the spelling as given, and the keys re-keyed into it). Under a system
    registered to the caller, every decision about the person is shown; under any other (a
    shared one, where anyone may record), only those from the caller's own first consent of
    the person on: recording a throwaway consent does not open the person's past. Asking is
    itself recorded (an audit entry) and listed in every later report, the caller's included.
    """
    with write(services.sessions) as session:
        ref = services.subject(session, system=subject["system"], value=subject["value"])
        keys = list(dict.fromkeys([*ref.keys, *subject_store.old_keys(session, ref.key)]))
        found = _own_consents(session, keys, caller.organization)
        if not found:
            raise NotFound("Your organization has recorded no consent of this person.")
        own_ids = [c.id for c in found]
        first = min(c.created_at for c in found)
        entry = services.subjects.system(session, ref.system)
        since = None if entry is not None and entry.organization == caller.organization else first
        services.append_audit(session, at=now, tag=AuditTag.SUBJECT_REPORTED, caller=caller,
                              object_id=ref.key, payload={"organization": caller.organization})
        session.commit()
    with read_snapshot(services.sessions) as session:
        own = [c for c in (consent_store.get(session, i) for i in own_ids) if c is not None]
        consents = [_consent_entry(c, consent_store.versions(session, c.id),
                                   consent_store.events(session, c.id), now) for c in own]
        rows = sorted({d.id: d for k in keys for d in decision_store.for_subject(session, k)}.values(),
                      key=lambda d: (d.at, d.id))
        decisions: list[dict[str, Any]] = [{
            "decision_id": d.id, "at": d.at, "requester": d.requester, "purpose": d.purpose,
            "data_categories": list(d.data_categories), "decision": d.outcome,
            "reasons": [_reason(r, set(own_ids)) for r in d.reasons],
            "consent_id": d.consent_id if d.consent_id in own_ids else None,
            "consent_version": d.consent_version if d.consent_id in own_ids else None,
        } for d in rows if since is None or d.at >= since]
        reports = [{"at": e.at, "organization": e.actor_org}
                   for e in audit_store.entries_about(session, tag=str(AuditTag.SUBJECT_REPORTED),
                                                      object_ids=keys)
                   if since is None or e.at >= since]

        purposes = {p for c in consents for v in c["versions"] for p in v["purposes"]}
        purposes |= {d["purpose"] for d in decisions}
        categories = {x for c in consents for v in c["versions"] for x in v["data_categories"]}
        categories |= {x for d in decisions for x in d["data_categories"]}
        organizations = {caller.organization} | {d["requester"] for d in decisions}
        organizations |= {r["organization"] for r in reports if r["organization"]}
        organizations |= {r for c in consents for v in c["versions"] for r in v["recipients"]}
        communities = {x for c in consents for v in c["versions"] for x in v["communities"]}
        communities |= {r["community"] for d in decisions for r in d["reasons"] if r.get("community")}
        names = _names(session, organizations=organizations, communities=communities)
    return {
        "subject": {"system": ref.system, "value": ref.value, "pseudonym": ref.key},
        "organization": caller.organization, "generated_at": now,
        "consents": consents, "decisions": decisions, "reports": reports,
        "labels": {**_labels(services, purposes=purposes, categories=categories), **names},
    }


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


def receipt_page(services: Services, *, caller: Caller, consent_id: str, version: int | None,
                 now: datetime) -> ReceiptPage:
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
        names = _names(session, organizations={consent.recorded_by, *row.recipients},
                       communities=set(row.communities))
        labels = _labels(services, purposes=set(row.purposes), categories=set(row.data_categories))
        return ReceiptPage(
            consent=consent_cases.ConsentState.of(consent, row, now), version=row.version,
            current_version=consent.current_version, superseded=row.version != consent.current_version,
            claims=claims, kid=header.get("kid"), recorded_at=row.recorded_at, expires_at=row.expires_at,
            receipt=row.receipt, generated_at=now, labels={**labels, **names},
        )
