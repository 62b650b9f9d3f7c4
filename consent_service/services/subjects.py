"""Use cases of the subjects resource (``/v1/subject-systems``, ``/v1/subjects/*``): registering
and listing subject systems, re-keying, and the person's access report. They return the frozen
dataclasses below, which ``schemas.subjects`` dumps (answers and the registration's audit payload).
How an identifier becomes keys is :mod:`consent_service.services.subject_keys`.

* **Subject systems** (contract v1.1 section 4): an organization records consents only under
  a system registered to it or registered as shared; any other is 400 ``unknown_code``
  naming ``subject.system``. Registering is admin's; a system is never changed or removed.
* **Re-keying**: a subject recorded before normalization (v1 hashed the identifier as sent) is
  moved by its recording organization, which sends that spelling to ``POST /v1/subjects/rekey``
  (audited): its consents and memberships move to the normalized key, and its decisions are
  found through the alias left behind.
* **The person's access report** (docs/audit.md, "The person's access report"): what the
  recording organization may see, see :func:`report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from consent_service.container import Services
from consent_service.core import pseudonyms
from consent_service.core.caller import Caller
from consent_service.core.wire import AuditTag, ReasonCode
from consent_service.errors import Conflict, Forbidden, NotFound, UnknownCode, ValidationFailed
from consent_service.schemas.subjects import SubjectSystemOut
from consent_service.services import code_names
from consent_service.services import consents as consent_cases
from consent_service.storage import audit as audit_store
from consent_service.storage import consents as consent_store
from consent_service.storage import decisions as decision_store
from consent_service.storage import organizations as organization_store
from consent_service.storage import subjects as store
from consent_service.storage.models import SubjectSystem

OTHER_CONSENT = "A consent the person gave to another organization covered this use."
# The audit payload of a registration: the answer's schema without the time (the entry has it).
_REGISTERED_PAYLOAD = SubjectSystemOut(exclude=("created_at",))


@dataclass(frozen=True)
class RegisteredSystem:
    """A registered system as the API shows it (``SubjectSystemOut``)."""

    system: str
    organization: str | None
    shared: bool
    case_insensitive: bool
    created_at: datetime

    @classmethod
    def of(cls, row: SubjectSystem) -> RegisteredSystem:
        return cls(row.system, row.organization_id, row.shared, row.case_insensitive, row.created_at)


@dataclass(frozen=True)
class SubjectSystems:
    subject_systems: list[RegisteredSystem]


@dataclass(frozen=True)
class Rekeyed:
    """What a re-key moved (``RekeyOut``)."""

    pseudonym: str
    previous_pseudonym: str
    consents: list[str]
    communities: list[str]


def register(
    services: Services,
    *,
    caller: Caller | None,
    system: str,
    organization: str | None,
    shared: bool,
    case_insensitive: bool,
    now: datetime,
) -> RegisteredSystem:
    if caller is not None and not caller.is_admin:
        raise Forbidden("Only the service's administrators register subject systems.")
    if pseudonyms.system_problem(system):
        raise ValidationFailed(
            "The identifier system is not an absolute URI.",
            details={"system": [pseudonyms.system_problem(system) or "invalid"]},
        )
    if shared == (organization is not None):
        raise ValidationFailed(
            "Give either an organization or shared: true.",
            details={"organization": ["give an organization, or shared: true (not both)"]},
        )
    normalized = pseudonyms.normalize_system(system)
    with services.writing(caller) as session:
        if organization is not None and organization_store.get_organization(session, organization) is None:
            raise UnknownCode("No such organization.", details={"organization": [f"unknown: {organization}"]})
        if store.get_system(session, normalized) is not None:
            raise Conflict(f"The subject system {normalized} is registered already.")
        row = SubjectSystem(
            system=normalized,
            organization_id=organization,
            shared=shared,
            case_insensitive=case_insensitive,
            created_at=now,
            created_by=caller.organization if caller else "operator",
        )
        try:
            store.add_system(session, row)
        except IntegrityError as exc:
            raise Conflict(f"The subject system {normalized} is registered already.") from exc
        registered = RegisteredSystem.of(row)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.SUBJECT_SYSTEM_REGISTERED,
            caller=caller,
            object_id=None,
            payload=_REGISTERED_PAYLOAD.dump(registered),
        )
        session.commit()
    return registered


def list_systems(services: Services, *, caller: Caller | None) -> SubjectSystems:
    with services.reading(caller) as session:
        return SubjectSystems([RegisteredSystem.of(row) for row in store.list_systems(session)])


def rekey(services: Services, *, caller: Caller, subject: dict[str, str], now: datetime) -> Rekeyed:
    """Move a subject recorded under the spelling sent (before normalization) to its normalized key.

    Only an organization that recorded a consent under that spelling may (404 otherwise, as for
    an unknown person); nothing to move (the spelling is already normalized) is also 404.
    """
    with services.writing(caller) as session:
        ref = services.subjects.ref(session, system=subject["system"], value=subject["value"])
        if ref.as_given is None or not store.consents_under(
            session, [ref.as_given], recorded_by=caller.organization
        ):
            raise NotFound("Your organization has recorded no consent of this person under this spelling.")
        moved = store.rekey(session, old_key=ref.as_given, new_key=ref.key, by=caller.organization, at=now)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.SUBJECT_REKEYED,
            caller=caller,
            object_id=None,
            payload={"old_key": ref.as_given, "new_key": ref.key, **moved},
        )
        session.commit()
    return Rekeyed(
        pseudonym=ref.key,
        previous_pseudonym=ref.as_given,
        consents=moved["consents"],
        communities=moved["communities"],
    )


# -- The person's access report ------------------------------------------------------------------
# What the recording organization may see:
# * only if it has recorded at least one consent of this person; otherwise the answer is 404,
#   exactly as for a person the service has never heard of, so the report cannot be used to find
#   out whether someone is known to the service (under a system not registered to it, e.g. a
#   shared one, only what happened from its own first consent of the person on);
# * every version, amendment and revocation of the consents *it* recorded (not other
#   organizations' consents);
# * every decision about the person, whoever asked: when, which organization, for which purpose
#   and data categories, permit or deny, and why (reason codes and messages, community rule ids
#   and communities). Where the reason is a consent recorded by *another* organization, its id
#   is withheld and the message says only that another organization's consent covered the use.
# The worker hands this to the person: it is the person's own record of who asked for their data
# and why (as Estonia's Data Tracker shows its citizens).


@dataclass(frozen=True)
class ReportSubject:
    system: str
    value: str
    pseudonym: str


@dataclass(frozen=True)
class ReportVersion:
    version: int
    recorded_at: datetime
    purposes: list[str]
    data_categories: list[str]
    recipients: list[str]
    communities: list[str]
    expires_at: datetime | None
    method: str | None
    receipt_id: str


@dataclass(frozen=True)
class ReportEvent:
    kind: str
    version: int
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class ReportConsent:
    id: str
    status: str
    current_version: int
    created_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    versions: list[ReportVersion]
    events: list[ReportEvent]


@dataclass(frozen=True)
class ReportDecision:
    decision_id: str
    at: datetime
    requester: str
    purpose: str
    data_categories: list[str]
    decision: str
    reasons: list[dict[str, Any]]
    consent_id: str | None
    consent_version: int | None


@dataclass(frozen=True)
class ReportRequest:
    at: datetime
    organization: str | None


@dataclass(frozen=True)
class AccessReport:
    """The person's report (``AccessReportOut``, and the printable page)."""

    subject: ReportSubject
    organization: str
    generated_at: datetime
    consents: list[ReportConsent]
    decisions: list[ReportDecision]
    reports: list[ReportRequest]
    labels: dict[str, dict[str, str]]  # plain-language names of the codes above


def _reason(reason: dict[str, Any], own: set[str]) -> dict[str, Any]:
    out = dict(reason)
    consent_id = out.get("consent_id")
    if consent_id is not None and consent_id not in own:
        out.pop("consent_id")
        if out.get("code") == ReasonCode.CONSENT:
            out["message"] = OTHER_CONSENT
    return out


def _report_consent(consent: Any, versions: list[Any], events: list[Any], now: datetime) -> ReportConsent:
    current = next(v for v in versions if v.version == consent.current_version)
    status = str(consent_cases.status_of(consent, current, now))
    return ReportConsent(
        id=consent.id,
        status=status,
        current_version=consent.current_version,
        created_at=consent.created_at,
        revoked_at=consent.revoked_at,
        revoked_reason=consent.revoked_reason,
        versions=[
            ReportVersion(
                version=v.version,
                recorded_at=v.recorded_at,
                purposes=list(v.purposes),
                data_categories=list(v.data_categories),
                recipients=list(v.recipients),
                communities=list(v.communities),
                expires_at=v.expires_at,
                method=v.evidence.get("method"),
                receipt_id=v.receipt_id,
            )
            for v in versions
        ],
        events=[ReportEvent(kind=e.kind, version=e.version, at=e.at, reason=e.reason) for e in events],
    )


def _own_consents(session: Any, keys: list[str], organization: str) -> list[Any]:
    found = {c.id: c for k in keys for c in consent_store.for_subject(session, k, recorded_by=organization)}
    return sorted(found.values(), key=lambda c: (c.created_at, c.id))


def report(services: Services, *, caller: Caller, subject: dict[str, str], now: datetime) -> AccessReport:
    """The person's report for the caller's organization (contract v1.1 section 4).

    The person is looked up by every key they may be recorded under (services.subjects: the
    normalized one, the spelling as given, and the keys re-keyed into it). Under a system
    registered to the caller, every decision about the person is shown; under any other (a
    shared one, where anyone may record), only those from the caller's own first consent of
    the person on: recording a throwaway consent does not open the person's past. Asking is
    itself recorded (an audit entry) and listed in every later report, the caller's included.
    """
    with services.writing(caller) as session:
        ref = services.subject(session, system=subject["system"], value=subject["value"])
        keys = list(dict.fromkeys([*ref.keys, *store.old_keys(session, ref.key)]))
        found = _own_consents(session, keys, caller.organization)
        if not found:
            raise NotFound("Your organization has recorded no consent of this person.")
        own_ids = [c.id for c in found]
        first = min(c.created_at for c in found)
        entry = services.subjects.system(session, ref.system)
        since = None if entry is not None and entry.organization == caller.organization else first
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.SUBJECT_REPORTED,
            caller=caller,
            object_id=ref.key,
            payload={"organization": caller.organization},
        )
        session.commit()
    with services.reading(caller) as session:
        contents = contents_of(
            services,
            session,
            keys=keys,
            organization=caller.organization,
            own_ids=own_ids,
            since=since,
            now=now,
        )
    return AccessReport(
        subject=ReportSubject(system=ref.system, value=ref.value, pseudonym=ref.key),
        organization=caller.organization,
        generated_at=now,
        **vars(contents),
    )


@dataclass(frozen=True)
class ReportContents:
    """What a report shows (its consents, decisions, earlier reports and the codes' names)."""

    consents: list[ReportConsent]
    decisions: list[ReportDecision]
    reports: list[ReportRequest]
    labels: dict[str, dict[str, str]]


def contents_of(
    services: Services,
    session: Any,
    *,
    keys: list[str],
    organization: str,
    own_ids: list[str],
    since: datetime | None,
    now: datetime,
) -> ReportContents:
    """The report's contents for ``organization`` (inside the caller's snapshot): the consents
    ``own_ids`` it recorded, every decision about the person's ``keys`` (from ``since`` on, if
    given) with the reasons another organization's consent gave withheld, and every report asked.
    The person's own view (services.person) shows the same."""
    own = [c for c in (consent_store.get(session, i) for i in own_ids) if c is not None]
    consents = [
        _report_consent(c, consent_store.versions(session, c.id), consent_store.events(session, c.id), now)
        for c in own
    ]
    rows = sorted(
        {d.id: d for k in keys for d in decision_store.for_subject(session, k)}.values(),
        key=lambda d: (d.at, d.id),
    )
    decisions = [
        ReportDecision(
            decision_id=d.id,
            at=d.at,
            requester=d.requester,
            purpose=d.purpose,
            data_categories=list(d.data_categories),
            decision=d.outcome,
            reasons=[_reason(r, set(own_ids)) for r in d.reasons],
            consent_id=d.consent_id if d.consent_id in own_ids else None,
            consent_version=d.consent_version if d.consent_id in own_ids else None,
        )
        for d in rows
        if since is None or d.at >= since
    ]
    reports = [
        ReportRequest(at=e.at, organization=e.actor_org)
        for e in audit_store.entries_about(session, tag=str(AuditTag.SUBJECT_REPORTED), object_ids=keys)
        if since is None or e.at >= since
    ]

    versions = [v for c in consents for v in c.versions]
    purposes = {p for v in versions for p in v.purposes} | {d.purpose for d in decisions}
    categories = {x for v in versions for x in v.data_categories}
    categories |= {x for d in decisions for x in d.data_categories}
    organizations = {organization} | {d.requester for d in decisions}
    organizations |= {r.organization for r in reports if r.organization}
    organizations |= {r for v in versions for r in v.recipients}
    communities = {x for v in versions for x in v.communities}
    communities |= {r["community"] for d in decisions for r in d.reasons if r.get("community")}
    names = code_names.names(session, organizations=organizations, communities=communities)
    labels = code_names.labels(services, purposes=purposes, categories=categories)
    return ReportContents(consents=consents, decisions=decisions, reports=reports, labels={**labels, **names})
