"""Consents in files: the import CSV's header and its rows, and FHIR R4 Consent resources, as
the request bodies ``POST /v1/consents`` takes (docs/reference.md, "Import and export").

Pure: bytes in, one ``(line, body)`` or ``(line, problem)`` per row out; what a body means is
checked by the same schema and code checks as a consent recorded alone (services/consent_import.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

SEPARATOR = "|"  # between the codes of a list cell ("research|service-planning")
MAX_ROW_CHARS = 64 * 1024  # one row, all its cells together
MAX_ROWS = 200_000  # one file

SUBJECT_COLUMNS = ("subject_system", "subject_value")
LIST_COLUMNS = ("purposes", "data_categories", "recipients", "communities")
EVIDENCE_COLUMNS = (
    "evidence_method",
    "evidence_obtained_by",
    "evidence_notes",
    "evidence_setting",
    "evidence_witness",
    "evidence_confirmed_protected_purposes",
)
REQUIRED = (
    *SUBJECT_COLUMNS,
    "purposes",
    "data_categories",
    "recipients",
    "evidence_method",
    "evidence_obtained_by",
)
# What the header may name: the import's columns, and what an export adds (consent_id names a
# consent already recorded; the others are informative and not read).
COLUMNS = (
    "consent_id",
    *SUBJECT_COLUMNS,
    *LIST_COLUMNS,
    "expires_at",
    *EVIDENCE_COLUMNS,
)
EXPORT_ONLY = ("subject_pseudonym", "version", "status", "recorded_at", "revoked_at", "receipt_id")
EXPORT_COLUMNS = (*COLUMNS, *EXPORT_ONLY)


@dataclass(frozen=True)
class Problem:
    """What is wrong with one row (``line``: its line in the file, or its entry in a Bundle)."""

    line: int
    field: str
    message: str


@dataclass(frozen=True)
class Row:
    """One row as a ``POST /v1/consents`` body; ``consent_id``: it names a consent already recorded."""

    line: int
    body: dict[str, Any]
    consent_id: str | None = None
    # The row's cells other than the subject's: rows with equal keys have equal terms (loaded once).
    terms_key: tuple[Any, ...] | None = None


class FileRefused(Exception):
    """The file as a whole cannot be read (its header, its encoding): nothing in it is imported."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"line {problem.line}: {problem.field}: {problem.message}")
        self.problem = problem


def field_of(path: str) -> str:
    """A body's field path (``evidence.method``, ``purposes.0``) as the CSV column it came from."""
    parts = [p for p in path.split(".") if not p.isdigit()]
    if parts and parts[0] in ("subject", "evidence") and len(parts) > 1:
        return f"{parts[0]}_{parts[1]}"
    return parts[0] if parts else path


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileRefused(Problem(line, "file", "not UTF-8 text (save the file as UTF-8)")) from None


def _codes(cell: str) -> list[str]:
    return [code.strip() for code in cell.split(SEPARATOR) if code.strip()]


def csv_rows(data: bytes) -> Iterator[Row | Problem]:
    """The file's rows after its header. A header that is not this format's refuses the file."""
    reader = csv.reader(io.StringIO(_text(data), newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise FileRefused(Problem(1, "header", f"not CSV: {exc}")) from None
    if header is None:
        raise FileRefused(Problem(1, "header", "the file is empty"))
    names = [name.strip() for name in header]
    unknown = [name for name in names if name not in EXPORT_COLUMNS]
    missing = [name for name in REQUIRED if name not in names]
    doubled = sorted({name for name in names if names.count(name) > 1})
    if unknown or missing or doubled:
        said = [
            *(f"unknown column {name!r}" for name in unknown),
            *(f"missing column {name!r}" for name in missing),
            *(f"column {name!r} twice" for name in doubled),
        ]
        raise FileRefused(Problem(1, "header", "; ".join(said) + f" (columns: {', '.join(COLUMNS)})"))
    count = 0
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader cannot go on past broken quoting or an oversized field: the file stops here.
            raise FileRefused(Problem(line, "file", f"not CSV: {exc}")) from None
        if not any(cell.strip() for cell in cells):
            continue
        count += 1
        if count > MAX_ROWS:
            raise FileRefused(Problem(line, "file", f"more than {MAX_ROWS} rows: split the file"))
        if len(cells) != len(names):
            yield Problem(line, "row", f"{len(cells)} cells where the header has {len(names)}")
            continue
        if sum(len(cell) for cell in cells) > MAX_ROW_CHARS:
            yield Problem(line, "row", f"longer than {MAX_ROW_CHARS} characters")
            continue
        yield row_of(line, dict(zip(names, cells, strict=True)))


def row_of(line: int, cells: Mapping[str, str]) -> Row:
    """One CSV row's cells as a consent body: empty cells are left out, lists split on ``|``."""
    get = {name: value.strip() for name, value in cells.items()}
    body: dict[str, Any] = {"subject": {"system": get["subject_system"], "value": get["subject_value"]}}
    for name in LIST_COLUMNS:
        if name in get and (get[name] or name != "communities"):
            body[name] = _codes(get[name])
    if get.get("expires_at"):
        body["expires_at"] = get["expires_at"]
    evidence: dict[str, Any] = {}
    for name in EVIDENCE_COLUMNS:
        key = name.removeprefix("evidence_")
        value = get.get(name, "")
        if value or name in REQUIRED:
            evidence[key] = _codes(value) if key == "confirmed_protected_purposes" else value
    body["evidence"] = evidence
    terms_key = tuple(sorted((n, v) for n, v in get.items() if n not in SUBJECT_COLUMNS))
    return Row(line=line, body=body, consent_id=get.get("consent_id") or None, terms_key=terms_key)


def csv_header() -> str:
    return _csv_line(EXPORT_COLUMNS)


def _csv_line(cells: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(["" if cell is None else cell for cell in cells])
    return out.getvalue()


def csv_line(values: Mapping[str, Any]) -> str:
    """One export row: ``values`` by column name; lists joined with ``|``, missing cells empty."""

    def cell(name: str) -> Any:
        value = values.get(name)
        return SEPARATOR.join(value) if isinstance(value, list | tuple) else value

    return _csv_line(cell(name) for name in EXPORT_COLUMNS)


# -- FHIR R4 ---------------------------------------------------------------------------------------

IRCP = "IRCP"


def code_system(issuer: str, name: str) -> str:
    """The service's own code systems, named under its issuer URI (as services/fhir.py names them)."""
    return f"{issuer}:{name}" if issuer.startswith("urn:") else f"{issuer.rstrip('/')}/fhir/CodeSystem/{name}"


def evidence_extension(
    issuer: str, evidence: Mapping[str, Any], communities: Iterable[str]
) -> list[dict[str, Any]]:
    """How the consent was given, and the communities it names: extensions of the Consent."""
    parts: list[dict[str, Any]] = []
    for key in ("method", "obtained_by", "notes", "setting", "witness"):
        if evidence.get(key):
            parts.append({"url": key, "valueString": str(evidence[key])})
    parts.extend(
        {"url": "confirmed_protected_purpose", "valueString": code}
        for code in evidence.get("confirmed_protected_purposes") or ()
    )
    out = [{"url": code_system(issuer, "evidence"), "extension": parts}]
    out.extend({"url": code_system(issuer, "community"), "valueString": c} for c in communities)
    return out


def _codings(issuer: str, items: Any, name: str, where: str, problems: list[Problem], line: int) -> list[str]:
    wanted = code_system(issuer, name)
    codes: list[str] = []
    if not isinstance(items, list):
        problems.append(Problem(line, where, "must be a list"))
        return codes
    for i, item in enumerate(items):
        coding = item if isinstance(item, dict) else {}
        if coding.get("system") != wanted:
            problems.append(
                Problem(
                    line,
                    f"{where}[{i}].system",
                    f"unknown code system {coding.get('system')!r} (use {wanted})",
                )
            )
        elif not isinstance(coding.get("code"), str):
            problems.append(Problem(line, f"{where}[{i}].code", "missing"))
        else:
            codes.append(coding["code"])
    return codes


def fhir_rows(data: bytes, *, issuer: str) -> Iterator[Row | Problem]:
    """The Consent resources of a FHIR R4 Bundle, one per entry (``line``: the entry, from 1)."""
    try:
        bundle = json.loads(_text(data))
    except json.JSONDecodeError as exc:
        raise FileRefused(Problem(exc.lineno, "file", f"not JSON: {exc.msg}")) from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FileRefused(Problem(1, "resourceType", "must be a FHIR Bundle"))
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise FileRefused(Problem(1, "entry", "must be a list"))
    if len(entries) > MAX_ROWS:
        raise FileRefused(Problem(1, "entry", f"more than {MAX_ROWS} entries: split the bundle"))
    for number, entry in enumerate(entries, start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            yield Problem(number, "resource", "missing")
            continue
        if resource.get("resourceType") == "AuditEvent":
            continue  # an export's decisions: not consents, nothing to import
        found = consent_row(number, resource, issuer=issuer)
        if isinstance(found, Row):
            yield found
        else:
            yield from found


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (a missing or mistyped element)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def consent_row(line: int, resource: Mapping[str, Any], *, issuer: str) -> Row | list[Problem]:
    """A FHIR R4 Consent as a consent body, or its problems (an unknown code system, a role)."""
    problems: list[Problem] = []
    if resource.get("resourceType") != "Consent":
        return [Problem(line, "resourceType", f"{resource.get('resourceType')!r} is not a Consent")]
    consent_id = resource.get("id") if isinstance(resource.get("id"), str) else None
    identifier = _obj(_obj(resource.get("patient")).get("identifier"))
    if consent_id is None and identifier.get("system") == code_system(issuer, "subject-pseudonym"):
        return [Problem(line, "patient.identifier", "a pseudonym names no one: give the person's identifier")]
    body: dict[str, Any] = {"subject": {"system": identifier.get("system"), "value": identifier.get("value")}}
    provision = _obj(resource.get("provision"))
    if provision.get("type", "permit") != "permit":
        problems.append(Problem(line, "provision.type", "only permit provisions are imported"))
    body["purposes"] = _codings(
        issuer, provision.get("purpose", []), "purpose", "provision.purpose", problems, line
    )
    body["data_categories"] = _codings(
        issuer, provision.get("class", []), "data-category", "provision.class", problems, line
    )
    recipients = []
    for i, item in enumerate(_list(provision.get("actor"))):
        actor = _obj(item)
        codings = _list(_obj(actor.get("role")).get("coding")) or [{}]
        if _obj(codings[0]).get("code") != IRCP:
            problems.append(Problem(line, f"provision.actor[{i}].role", "unknown role (use IRCP)"))
            continue
        ident = _obj(_obj(actor.get("reference")).get("identifier"))
        if ident.get("system") != code_system(issuer, "organization"):
            problems.append(
                Problem(
                    line,
                    f"provision.actor[{i}].reference.identifier.system",
                    f"unknown code system {ident.get('system')!r}",
                )
            )
            continue
        recipients.append(ident.get("value"))
    body["recipients"] = recipients
    end = _obj(provision.get("period")).get("end")
    if end:
        body["expires_at"] = end
    evidence: dict[str, Any] = {}
    communities: list[str] = []
    for item in _list(resource.get("extension")):
        ext = _obj(item)
        if ext.get("url") == code_system(issuer, "evidence"):
            for part in map(_obj, _list(ext.get("extension"))):
                key, value = part.get("url"), part.get("valueString")
                if key == "confirmed_protected_purpose":
                    evidence.setdefault("confirmed_protected_purposes", []).append(value)
                elif key in ("method", "obtained_by", "notes", "setting", "witness"):
                    evidence[key] = value
                else:
                    problems.append(Problem(line, f"extension.evidence.{key}", "unknown"))
        elif ext.get("url") == code_system(issuer, "community"):
            communities.append(ext.get("valueString"))  # type: ignore[arg-type]
        else:
            problems.append(Problem(line, "extension", f"unknown extension {ext.get('url')!r}"))
    body["evidence"] = evidence
    if communities:
        body["communities"] = communities
    if problems:
        return problems
    return Row(line=line, body=body, consent_id=consent_id)


def fhir_consent(body: Mapping[str, Any], *, issuer: str) -> dict[str, Any]:
    """A ``POST /v1/consents`` body as the FHIR R4 Consent :func:`fhir_rows` reads back (to
    write an import file; an export's Consents carry the pseudonym and the consent's id)."""
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [
            {
                "role": {"coding": [{"system": PARTICIPATION, "code": IRCP}]},
                "reference": {"identifier": {"system": code_system(issuer, "organization"), "value": org}},
            }
            for org in body["recipients"]
        ],
        "purpose": [{"system": code_system(issuer, "purpose"), "code": c} for c in body["purposes"]],
        "class": [
            {"system": code_system(issuer, "data-category"), "code": c} for c in body["data_categories"]
        ],
    }
    if body.get("expires_at"):
        provision["period"] = {"end": str(body["expires_at"])}
    return {
        "resourceType": "Consent",
        "extension": evidence_extension(issuer, body["evidence"], body.get("communities") or ()),
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"identifier": dict(body["subject"])},
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": provision,
    }


def fhir_bundle(resources: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
LOINC = "http://loinc.org"
