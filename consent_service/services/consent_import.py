"""Bulk import of consents: a CSV file or a FHIR R4 Bundle, all rows checked before any is written.

Every row goes through what ``POST /v1/consents`` does to one consent: the same schema
(``schemas.consents.ConsentIn``), the subject system check, the code checks and the
deployment's safeguards (``consents.check_terms``). Then, in one transaction:

* a row with a problem: nothing is written and every bad row is named (line, field, message);
  with ``skip_bad`` the good rows are written and the bad ones listed;
* a row recorded by an earlier import (same organization, same person, same terms: its
  ``row_key``, a keyed hash) or naming a consent of the organization (``consent_id``, as an
  export has it) is counted as ``already`` and written again never;
* each new consent gets version 1 with its signed receipt, its ``recorded`` event, its
  intake memberships (``pending``) and one ``consent:recorded`` audit entry binding its rows
  (the ``import`` and ``line`` it came from in the payload), exactly as one recorded alone.

No access code is issued per imported row (the person was not at the desk to be handed one):
a worker issues one with ``POST /v1/consents/{id}/access-code`` when the person asks.
The rows are written with one multi-row statement per table (PostgreSQL: ``COPY``).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from consent_service.container import Services
from consent_service.core import consent_files, receipts
from consent_service.core.audit_chain import canonical_text
from consent_service.core.caller import Caller
from consent_service.core.consent_files import FileRefused, Problem, Row
from consent_service.core.deployment import DEFAULT_SETTING
from consent_service.core.json_text import Template
from consent_service.core.keys import claims_text
from consent_service.core.wire import AuditTag, ConsentStatus
from consent_service.errors import Conflict, ServiceError, ValidationFailed
from consent_service.schemas.common import SubjectSchema
from consent_service.schemas.consents import RECORDED_FIELDS, ConsentIn, ConsentTermsIn
from consent_service.services import audit_rows, consents
from consent_service.storage import audit_rows as bound
from consent_service.storage import consent_import as store
from consent_service.storage.models import (
    Consent,
    ConsentEvent,
    ConsentImportRow,
    ConsentVersion,
    Membership,
    ProtectedGrant,
)

FORMATS = ("csv", "fhir")
MAX_PROBLEMS = 1000  # bad rows named in one answer (the count says how many there were)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ImportReport:
    import_id: str
    format: str
    rows: int  # rows read (bad ones included)
    recorded: int  # consents recorded by this import
    already: int  # rows an earlier import recorded, or naming a consent already on file
    bad: int
    problems: tuple[Problem, ...]
    written: bool
    consent_ids: tuple[str, ...] = ()


class ImportRefused(ValidationFailed):
    """Bad rows and no ``skip_bad``: nothing was written; ``details.rows`` names each of them."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(
            f"{report.bad} of {report.rows} rows are bad; nothing was imported "
            "(fix them, or import the good rows only with skip_bad).",
            details=problem_details(report.problems),
        )
        self.report = report


def problem_details(problems: Iterable[Problem]) -> dict[str, list[str]]:
    """The error's ``details`` (field -> messages, as every 400): ``"line N"`` -> ``"field: message"``."""
    details: dict[str, list[str]] = {}
    for p in problems:
        details.setdefault(f"line {p.line}", []).append(f"{p.field}: {p.message}")
    return details


@dataclass
class _Good:
    line: int
    subject_key: str
    terms: dict[str, Any]
    row_key: str


@dataclass
class _Checked:
    good: list[_Good] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    already: int = 0
    rows: int = 0


def read_rows(data: bytes, fmt: str, *, issuer: str) -> list[Row | Problem]:
    """The file's rows; a file that cannot be read at all is a 400 naming the line and field."""
    if fmt not in FORMATS:
        raise ValidationFailed("Unknown format.", details={"format": [f"one of {', '.join(FORMATS)}"]})
    try:
        rows = consent_files.csv_rows(data) if fmt == "csv" else consent_files.fhir_rows(data, issuer=issuer)
        return list(rows)
    except FileRefused as refused:
        p = refused.problem
        raise ValidationFailed(
            f"The file cannot be imported: line {p.line}, {p.field}: {p.message}. Nothing was imported.",
            details=problem_details([p]),
        ) from None


def _messages(line: int, messages: Any, path: str = "") -> list[Problem]:
    """marshmallow's nested messages as one problem per field (named as the file names it)."""
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out.extend(_messages(line, value, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        return [Problem(line, consent_files.field_of(path), "; ".join(messages))]
    if isinstance(messages, list):
        return [p for m in messages for p in _messages(line, m, path)]
    return [Problem(line, consent_files.field_of(path), str(messages))]


def _refusal(line: int, error: ServiceError) -> list[Problem]:
    if not error.details:
        return [Problem(line, "row", error.message)]
    return [
        Problem(
            line,
            consent_files.field_of(name),
            "; ".join(map(str, said)) if isinstance(said, list) else str(said),
        )
        for name, said in error.details.items()
    ]


def _row_key(services: Services, organization: str, subject_key: str, terms_text: str) -> str:
    """The row's idempotency key: a keyed hash of the organization, the person and the terms."""
    text = f"{organization}\x00{subject_key}\x00{terms_text}".encode()
    return hmac.new(services.idempotency_key, b"consent-import\x00" + text, hashlib.sha256).hexdigest()


# ``ConsentIn`` is ``ConsentTermsIn`` plus the nested ``subject``: a row is loaded as the two
# parts, so that the terms, which the rows of a file share, are loaded once per distinct set.
_TERMS = ConsentTermsIn()
_SUBJECT = SubjectSchema()
_SUBJECT_FIELD = "subject"
assert set(ConsentIn().fields) == {*_TERMS.fields, _SUBJECT_FIELD}


def _load(row: Row, memo: dict[Any, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The row's subject and terms as ``ConsentIn`` loads them; raises ``ValidationError``."""
    rest = {name: value for name, value in row.body.items() if name != _SUBJECT_FIELD}
    key = row.terms_key if row.terms_key is not None else json.dumps(rest, sort_keys=True, default=str)
    terms = memo.get(key)
    if terms is None:
        try:
            loaded = _TERMS.load(rest)
        except ValidationError as exc:
            loaded = exc
        else:  # each list keeps its first occurrences only, in order (as consents._new_version)
            loaded = {n: list(dict.fromkeys(v)) if isinstance(v, list) else v for n, v in loaded.items()}
        terms = memo[key] = loaded
    problems: dict[str, Any] = {}
    subject: dict[str, str] = {}
    if _SUBJECT_FIELD not in row.body:
        problems[_SUBJECT_FIELD] = ["Missing data for required field."]
    else:
        try:
            subject = _SUBJECT.load(row.body[_SUBJECT_FIELD])
        except ValidationError as exc:
            problems[_SUBJECT_FIELD] = exc.messages
    if isinstance(terms, ValidationError):
        problems.update(terms.messages if isinstance(terms.messages, dict) else {"row": terms.messages})
    if problems:
        raise ValidationError(problems)
    return subject, terms


def _check(
    services: Services,
    session: Any,
    *,
    caller: Caller,
    rows: Iterable[Row | Problem],
    now: datetime,
    progress: Progress | None,
) -> _Checked:
    """Every row checked as ``POST /v1/consents`` checks one; nothing is written here."""
    out = _Checked()
    checked_codes: set[Any] = set()
    loaded: dict[Any, Any] = {}
    texts: dict[int, str] = {}  # id of loaded terms (kept alive by ``loaded``) -> their JSON
    mine: list[tuple[int, str]] = []
    seen: set[str] = set()
    for row in rows:
        out.rows += 1
        if progress is not None:
            progress(1)
        if isinstance(row, Problem):
            out.problems.append(row)
            continue
        if row.consent_id is not None:
            mine.append((row.line, row.consent_id))
            continue
        try:
            subject, terms = _load(row, loaded)
        except ValidationError as exc:
            out.problems.extend(_messages(row.line, exc.messages))
            continue
        try:
            ref = services.subject(session, system=subject["system"], value=subject["value"])
            services.subjects.check_may_record(session, organization=caller.organization, ref=ref)
            consents.check_terms(session, services, terms, now, checked_codes=checked_codes)
        except ServiceError as error:
            out.problems.extend(_refusal(row.line, error))
            continue
        terms_text = texts.get(id(terms))
        if terms_text is None:  # the loaded terms are shared by the rows that share them
            terms_text = texts[id(terms)] = json.dumps(terms, sort_keys=True, default=str)
        key = _row_key(services, caller.organization, ref.key, terms_text)
        if key in seen:  # the same row twice in one file: recorded once
            out.already += 1
            continue
        seen.add(key)
        out.good.append(_Good(row.line, ref.key, terms, key))
    owned = store.owned_consents(session, caller.organization, [cid for _, cid in mine])
    for line, consent_id in mine:
        if consent_id in owned:
            out.already += 1
        else:
            out.problems.append(
                Problem(line, "consent_id", "no consent of yours has this id (leave it empty to record one)")
            )
    earlier = store.imported_keys(session, caller.organization, [g.row_key for g in out.good])
    if earlier:
        out.already += sum(1 for g in out.good if g.row_key in earlier)
        out.good = [g for g in out.good if g.row_key not in earlier]
    return out


def import_file(
    services: Services,
    *,
    caller: Caller,
    data: bytes,
    fmt: str,
    skip_bad: bool,
    now: datetime,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the file's consents (see the module's text); raises ``ImportRefused`` for bad rows
    without ``skip_bad`` (nothing written), ``ValidationFailed`` for a file that cannot be read,
    ``Conflict`` when a concurrent import of the same rows committed first (run it again: the
    rows it recorded are then ``already``)."""
    try:
        with _collector_paused():
            return _import_file(
                services, caller=caller, data=data, fmt=fmt, skip_bad=skip_bad, now=now, progress=progress
            )
    except IntegrityError:
        raise Conflict(
            "Another import recorded some of these rows at the same time; nothing of this one was "
            "written. Run it again: the rows already recorded are counted, not recorded twice."
        ) from None


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the import, back as it was after.

    An import keeps tens of objects per row alive until its commit (rows, namings, entries), so
    the collector's full passes, each walking every object of the process, kept coming back: four
    of them took ~65 us per consent of a 10,000-row import, a quarter of its CPU. Nothing here
    builds reference cycles that need collecting meanwhile; what the import frees is freed by
    reference counting as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _import_file(
    services: Services,
    *,
    caller: Caller,
    data: bytes,
    fmt: str,
    skip_bad: bool,
    now: datetime,
    progress: Progress | None,
) -> ImportReport:
    rows = read_rows(data, fmt, issuer=services.settings["TOKEN_ISSUER"])
    import_id = str(uuid.uuid4())
    with services.writing(caller) as session:
        checked = _check(services, session, caller=caller, rows=rows, now=now, progress=progress)
        problems = tuple(sorted(checked.problems, key=lambda p: p.line))
        bad = len({p.line for p in problems})

        def report(recorded: list[str], written: bool) -> ImportReport:
            return ImportReport(
                import_id=import_id,
                format=fmt,
                rows=checked.rows,
                recorded=len(recorded),
                already=checked.already,
                bad=bad,
                problems=problems[:MAX_PROBLEMS],
                written=written,
                consent_ids=tuple(recorded),
            )

        if problems and not skip_bad:
            session.rollback()
            raise ImportRefused(report([], False))
        recorded = _write(services, session, caller=caller, good=checked.good, import_id=import_id, now=now)
        session.commit()
        return report(recorded, bool(recorded))


def _write(
    services: Services, session: Any, *, caller: Caller, good: list[_Good], import_id: str, now: datetime
) -> list[str]:
    if not good:
        return []
    issuer = services.settings["TOKEN_ISSUER"]
    org_name = store.organization_name(session, caller.organization)
    protected = services.policy.deployment.protected_purposes
    event_ids = store.next_event_ids(session, len(good))
    members = store.memberships_of(session, {g.subject_key for g in good})
    consent_rows: list[dict[str, Any]] = []
    version_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    membership_rows: list[dict[str, Any]] = []
    import_rows: list[dict[str, Any]] = []
    grant_rows: list[dict[str, Any]] = []
    entries: list[tuple[datetime, str, str | None, str]] = []
    claims_of: list[str] = []
    per_row: list[tuple[int, _Texts, list[dict[str, Any]]]] = []
    texts: dict[int, _Texts] = {}  # id of loaded terms (kept alive by ``good``) -> their templates
    controller = {"id": caller.organization, "name": org_name}
    # The columns every row of a table has the same value in, this import: in each row stored,
    # and written once into the template of the table's row digests (audit_rows.digests).
    fixed_consent = {
        "recorded_by": caller.organization,
        "status": str(ConsentStatus.ACTIVE),
        "current_version": 1,
        "created_at": now,
        "updated_at": now,
        "revoked_at": None,
        "revoked_reason": None,
    }
    fixed_version = {"version": 1, "recorded_at": now, "recorded_by_client": caller.client_id}
    fixed_event = {
        "kind": "recorded",
        "version": 1,
        "at": now,
        "actor_org": caller.organization,
        "actor_client": caller.client_id,
        "reason": None,
    }
    fixed_member = {"created_at": now, "status": "pending", "ended_at": None}
    fixed_import = {"organization_id": caller.organization, "import_id": import_id, "imported_at": now}
    for g, event_id in zip(good, event_ids, strict=True):
        consent_id = str(uuid.uuid4())
        receipt_id = str(uuid.uuid4())
        t = g.terms
        evidence = t["evidence"]  # shared by the rows with these terms (never changed)
        made = texts.get(id(t))
        if made is None:  # the first row with these terms: their claims' and payload's templates
            made = texts[id(t)] = _Texts.of(
                t, issuer=issuer, now=now, controller=controller, protected=protected
            )
        consent = {"id": consent_id, "subject_key": g.subject_key, **fixed_consent}
        version = {
            "consent_id": consent_id,
            "purposes": t["purposes"],
            "data_categories": t["data_categories"],
            "recipients": t["recipients"],
            "communities": t["communities"],
            "expires_at": t.get("expires_at"),
            "evidence": evidence,
            "receipt_id": receipt_id,
            "receipt": "",  # signed below, all at once
            **fixed_version,
        }
        event = {"id": event_id, "consent_id": consent_id, **fixed_event}
        have = members.setdefault(g.subject_key, {})  # community -> current (not ended)
        new_members = [
            {
                "subject_key": g.subject_key,
                "community_id": community,
                "consent_id": consent_id,
                "id": str(uuid.uuid4()),
                **fixed_member,
            }
            for community in sorted(set(t["communities"]) - have.keys())
        ]
        have.update((member["community_id"], True) for member in new_members)
        imported = {"row_key": g.row_key, "consent_id": consent_id, **fixed_import}
        claims_of.append(made.claims.fill((consent_id, receipt_id, g.subject_key)))
        granted = made.granted
        if granted:
            grant_rows.extend(
                {
                    "community_id": community,
                    "consent_id": consent_id,
                    "consent_version": 1,
                    "purposes": granted,
                    "recipients": list(t["recipients"]),
                    "recorded_by": caller.organization,
                    "setting": evidence.get("setting") or DEFAULT_SETTING,
                    "at": now,
                }
                for community, current in sorted(have.items())
                if current
            )
        per_row.append((g.line, made, new_members))
        consent_rows.append(consent)
        version_rows.append(version)
        event_rows.append(event)
        membership_rows.extend(new_members)
        import_rows.append(imported)
    # The rows that need nothing more are written while the receipts are signed and the rows
    # digested, and the versions once they carry their receipts (PostgreSQL: on another core,
    # storage.bulk_insert.meanwhile); the audit entries last.
    meanwhile = [
        (_table(Consent), consent_rows),
        (_table(ConsentEvent), event_rows),
        (_table(Membership), membership_rows),
        (_table(ConsentImportRow), import_rows),
    ]
    with store.inserting(session, meanwhile) as later:
        # Every receipt at once (one signer), then the digests of the rows as they will be stored,
        # table by table: each table's fixed columns written once (audit_rows.digests).
        signed = services.keys.sign_serialized(claims_of, typ=receipts.RECEIPT_TYP)
        for version, receipt in zip(version_rows, signed, strict=True):
            version["receipt"] = receipt
        later(_table(ConsentVersion), version_rows)  # complete now
        memo: dict[int, str] = {}

        def namings(model: Any, rows: list[dict[str, Any]], fixed: dict[str, Any]) -> list[list[Any]]:
            table = bound.BOUND[model.__tablename__]
            keys = [c.name for c in table.primary_key.columns]
            found = audit_rows.digests(services.rows_key, table, rows, memo, same=frozenset(fixed))
            return [[table.name, [row[k] for k in keys], d, None] for row, d in zip(rows, found, strict=True)]

        consent_named = namings(Consent, consent_rows, fixed_consent)
        version_named = namings(ConsentVersion, version_rows, fixed_version)
        event_named = namings(ConsentEvent, event_rows, fixed_event)
        import_named = namings(ConsentImportRow, import_rows, fixed_import)
        member_named = iter(namings(Membership, membership_rows, fixed_member))
        tag = str(AuditTag.CONSENT_RECORDED)
        for n, (line, made, new_members) in enumerate(per_row):
            consent, version = consent_rows[n], version_rows[n]
            named = [
                consent_named[n],
                version_named[n],
                event_named[n],
                *(next(member_named) for _ in new_members),
                import_named[n],
            ]
            payload = made.payload.fill(
                (consent["subject_key"], version["receipt_id"], import_id, line, named)
            )
            entries.append((now, tag, str(consent["id"]), payload))
    if grant_rows:
        store.insert(session, _table(ProtectedGrant), grant_rows, autoincrement=True)
    # One entry per consent, as a consent recorded alone has (its history, the person's view and
    # the audit export read it by the consent's id); each payload serialized once, for its link
    # and its row.
    services.append_audit_serialized(session, caller=caller, entries=entries)
    return [c["id"] for c in consent_rows]


def _table(model: Any) -> Any:
    return model.__table__


def _audit_payload(
    terms: dict[str, Any], *, subject: str, receipt_id: str, protected: list[str]
) -> dict[str, Any]:
    """What ``schemas.consents.consent_recorded_audit`` makes of a consent recorded alone."""
    expires_at = terms.get("expires_at")
    payload: dict[str, Any] = {
        "subject": subject,
        "version": 1,
        "purposes": terms["purposes"],
        "data_categories": terms["data_categories"],
        "recipients": terms["recipients"],
        "communities": terms["communities"],
        "expires_at": expires_at.isoformat() if expires_at is not None else None,
        "method": terms["evidence"].get("method"),
        "setting": terms["evidence"].get("setting") or DEFAULT_SETTING,
        "receipt_id": receipt_id,
    }
    assert len(payload) == len(RECORDED_FIELDS)
    if protected:
        payload["protected_purposes"] = protected
    return payload


@dataclass(frozen=True)
class _Texts:
    """What the rows with the same terms share: the protected purposes they grant, and the JSON
    text of their receipt's claims and of their audit payload, serialized once (``json_text``)
    with the parts that differ per row filled in: the same text as serializing each row's."""

    granted: list[str]
    claims: Template  # (consent id, receipt id, subject) -> keys.claims_text of receipt_claims
    payload: Template  # (subject, receipt id, import, line, rows) -> canonical_text of the payload

    @classmethod
    def of(
        cls,
        terms: dict[str, Any],
        *,
        issuer: str,
        now: datetime,
        controller: dict[str, str],
        protected: Iterable[str],
    ) -> _Texts:
        wanted = set(protected)
        granted = [p for p in terms["purposes"] if p in wanted]

        def claims(consent_id: str, receipt_id: str, subject: str) -> dict[str, Any]:
            return receipts.receipt_claims(
                issuer=issuer,
                receipt_id=receipt_id,
                consent_id=consent_id,
                version=1,
                issued_at=now,
                consent_recorded_at=now,
                controller=controller,
                subject_pseudonym=subject,
                purposes=terms["purposes"],
                data_categories=terms["data_categories"],
                recipients=terms["recipients"],
                communities=terms["communities"],
                expires_at=terms.get("expires_at"),
                method=terms["evidence"]["method"],
            )

        def payload(subject: str, receipt_id: str, import_id: str, line: Any, rows: Any) -> dict[str, Any]:
            made = _audit_payload(terms, subject=subject, receipt_id=receipt_id, protected=granted)
            made.update({"import": import_id, "line": line, audit_rows.ROWS: rows})
            return made

        return cls(granted, Template(claims, 3, claims_text), Template(payload, 5, canonical_text))
