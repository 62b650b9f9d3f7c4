"""Bulk import and export of consents (issue 15 items 2 and 4): CSV and FHIR R4, API and CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from api_helpers import table_counts
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent as FhirConsent
from trust_helpers import cli_json, run_cli

from consent_service.container import EXTENSION
from consent_service.core import receipts
from consent_service.core.consent_files import code_system
from consent_service.services import audit as audit_log

ORG = "outreach-org"
SYSTEM = "urn:outreach-org:client"
HEADER = (
    "subject_system,subject_value,purposes,data_categories,recipients,communities,expires_at,"
    "evidence_method,evidence_obtained_by,evidence_notes,evidence_setting"
)


def line(value: str, purposes: str = "service-delivery|service-planning", **cells: str) -> str:
    row = {
        "subject_system": SYSTEM,
        "subject_value": value,
        "purposes": purposes,
        "data_categories": "housing|health",
        "recipients": "outreach-org|gla",
        "communities": "",
        "expires_at": "2031-01-01T00:00:00+00:00",
        "evidence_method": "written",
        "evidence_obtained_by": "worker-7",
        "evidence_notes": 'said "yes", twice',
        "evidence_setting": "office",
        **cells,
    }
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([row[name] for name in HEADER.split(",")])
    return out.getvalue()


def csv_file(*rows: str) -> bytes:
    return (HEADER + "\n" + "".join(rows)).encode("utf-8")


GOOD = csv_file(*(line(f"C-{n}") for n in range(1, 6)))
# Lines 3, 5 and 6 are bad (line 1 is the header): an unknown purpose, a protected purpose the
# deployment refuses, and an evidence method that is not one.
BAD = csv_file(
    line("C-1"),
    line("C-2", purposes="no-such-purpose"),
    line("C-3"),
    line("C-4", purposes="immigration-enforcement"),
    line("C-5", evidence_method="telepathy"),
    line("C-6"),
)


@pytest.fixture
def orgs(world) -> Any:
    world.org(ORG)
    world.org("gla", "government")
    world.headers(ORG, "consents:write")  # its client and token made before any count is taken
    return world


def post_import(client, world, data: bytes, *, media: str = "text/csv", query: str = "", org: str = ORG):
    return client.post(
        f"/v1/consents/import{query}",
        data=data,
        content_type=media,
        headers=world.headers(org, "consents:write"),
    )


def named(response) -> set[tuple[int, str]]:
    """(line, field) of every problem a refused import names (details: "line N" -> "field: message")."""
    details = response.get_json()["error"]["details"]
    return {
        (int(key.removeprefix("line ")), said.split(": ", 1)[0])
        for key, messages in details.items()
        for said in messages
    }


def consents_written(app) -> int:
    return table_counts(app)["consent"]


def verify_ok(app) -> None:
    result = audit_log.verify(app.extensions[EXTENSION])
    assert result.ok, result


class TestCsvImport:
    def test_a_good_file_records_every_consent_with_its_receipt_and_audit(self, app, client, orgs):
        response = post_import(client, orgs, GOOD)
        assert response.status_code == 201, response.get_json()
        report = response.get_json()
        assert (report["rows"], report["recorded"], report["already"], report["bad"]) == (5, 5, 0, 0)
        assert consents_written(app) == 5
        services = app.extensions[EXTENSION]
        for consent_id in report["consent_ids"]:
            consent = client.get(f"/v1/consents/{consent_id}", headers=orgs.headers(ORG, "consents:read"))
            body = consent.get_json()
            assert body["purposes"] == ["service-delivery", "service-planning"]
            assert body["evidence"]["notes"] == 'said "yes", twice'
            _, claims = receipts.verify(services.keys, body["receipt"])
            assert claims["consent_id"] == consent_id
        with services.sessions() as session:
            from consent_service.storage import audit as audit_store

            entries = audit_store.entries_about(
                session, tag="consent:recorded", object_ids=report["consent_ids"]
            )
        assert len(entries) == 5 and {e.payload["import"] for e in entries} == {report["import_id"]}
        assert all(e.actor_org == ORG for e in entries)
        verify_ok(app)

    def test_bad_rows_write_nothing_and_are_named_exactly(self, app, client, orgs):
        before = table_counts(app)
        response = post_import(client, orgs, BAD)
        assert response.status_code == 400
        found = named(response)
        assert {line for line, _ in found} == {3, 5, 6}
        assert (3, "purposes") in found and (6, "evidence_method") in found
        assert table_counts(app) == before

    def test_skip_bad_writes_the_good_rows_and_lists_the_bad(self, app, client, orgs):
        response = post_import(client, orgs, BAD, query="?skip_bad=true")
        assert response.status_code == 201, response.get_json()
        report = response.get_json()
        assert (report["recorded"], report["bad"]) == (3, 3)
        assert sorted({p["line"] for p in report["problems"]}) == [3, 5, 6]
        assert consents_written(app) == 3
        verify_ok(app)

    def test_the_same_file_twice_records_nothing_twice(self, app, client, orgs):
        assert post_import(client, orgs, GOOD).status_code == 201
        again = post_import(client, orgs, GOOD)
        assert again.status_code == 201
        assert (again.get_json()["recorded"], again.get_json()["already"]) == (0, 5)
        assert consents_written(app) == 5
        # The same rows in another order, and one more: only the new one is recorded.
        more = csv_file(line("C-9"), *(line(f"C-{n}") for n in range(5, 0, -1)))
        assert post_import(client, orgs, more).get_json()["recorded"] == 1
        assert consents_written(app) == 6
        verify_ok(app)

    def test_rows_a_concurrent_import_recorded_first_are_a_conflict_and_nothing_is_written(
        self, app, client, orgs, monkeypatch
    ):
        """Two imports of the same rows at once both find them new; the one that commits second
        hits the row keys' unique index while writing: a 409, nothing of it written, and running
        it again counts the rows as already recorded."""
        from consent_service.storage import consent_import as import_store

        assert post_import(client, orgs, GOOD).status_code == 201
        before = table_counts(app)
        monkeypatch.setattr(import_store, "imported_keys", lambda *args: set())  # not seen yet
        raced = post_import(client, orgs, csv_file(line("C-9"), *(line(f"C-{n}") for n in range(1, 6))))
        assert raced.status_code == 409, raced.get_json()
        assert "Run it again" in raced.get_json()["error"]["message"]
        assert table_counts(app) == before
        monkeypatch.undo()
        again = post_import(client, orgs, csv_file(line("C-9"), *(line(f"C-{n}") for n in range(1, 6))))
        assert (again.get_json()["recorded"], again.get_json()["already"]) == (1, 5)
        verify_ok(app)

    def test_memberships_named_in_a_file_are_pending(self, app, client, orgs):
        from trust_helpers import add_community

        community = add_community(client, orgs)
        response = post_import(client, orgs, csv_file(line("C-1", communities=community)))
        assert response.status_code == 201, response.get_json()
        consent_id = response.get_json()["consent_ids"][0]
        memberships = client.get(
            f"/v1/consents/{consent_id}/memberships", headers=orgs.headers(ORG, "consents:read")
        ).get_json()
        assert [m["status"] for m in memberships["memberships"]] == ["pending"]
        verify_ok(app)

    @pytest.mark.parametrize(
        ("table", "change"),
        [
            ("consent", {"status": "revoked"}),
            ("consent_version", {"purposes": ["service-delivery", "immigration-enforcement"]}),
            ("consent_event", {"kind": "amended"}),
            ("membership", {"status": "confirmed"}),
            ("consent_import_row", {"import_id": "another-import"}),
            ("consent_version", None),  # deleted
            ("membership", None),
            ("consent_import_row", None),
        ],
    )
    def test_an_edit_or_deletion_of_any_imported_row_is_found_and_named(
        self, app, client, orgs, table, change
    ):
        """Each imported row is bound by its consent's entry: audit verify names a changed one."""
        from sqlalchemy import delete, update
        from trust_helpers import add_community, engine_of

        from consent_service.storage.audit_rows import BOUND

        community = add_community(client, orgs)
        rows = (line(f"C-{n}", communities=community) for n in range(1, 4))
        response = post_import(client, orgs, csv_file(*rows))
        assert response.status_code == 201, response.get_json()
        consent_id = response.get_json()["consent_ids"][1]
        verify_ok(app)
        bound = BOUND[table]
        where = (bound.c.id if table == "consent" else bound.c.consent_id) == consent_id
        with engine_of(app).begin() as conn:
            conn.execute(
                update(bound).where(where).values(**change) if change else delete(bound).where(where)
            )
        result = audit_log.verify(app.extensions[EXTENSION])
        assert result.ok is False and result.table == table, result
        with app.extensions[EXTENSION].sessions() as session:
            from consent_service.storage import audit as audit_store

            (entry,) = audit_store.entries_about(session, tag="consent:recorded", object_ids=[consent_id])
        assert [p["seq"] for p in result.rows] == [entry.seq], "named as the row that consent's entry bound"
        assert ("deleted" if change is None else "edited") in result.problem

    def test_an_imported_consent_has_the_receipt_and_entry_of_one_recorded_alone(self, app, client, orgs):
        """The import writes each receipt's claims and each entry's payload from templates of the
        rows' shared terms: what it signs and records is what recording the consent alone would."""
        from consent_service.storage import audit as audit_store

        response = post_import(client, orgs, csv_file(line("C-1")))
        imported = response.get_json()["consent_ids"][0]
        alone = client.post(
            "/v1/consents",
            json={
                "subject": {"system": SYSTEM, "value": "C-2"},
                "purposes": ["service-delivery", "service-planning"],
                "data_categories": ["housing", "health"],
                "recipients": ["outreach-org", "gla"],
                "expires_at": "2031-01-01T00:00:00+00:00",
                "evidence": {
                    "method": "written",
                    "obtained_by": "worker-7",
                    "notes": 'said "yes", twice',
                    "setting": "office",
                },
            },
            headers=orgs.headers(ORG, "consents:write"),
        )
        assert alone.status_code == 201, alone.get_json()
        recorded = alone.get_json()["id"]
        services = app.extensions[EXTENSION]
        headers = orgs.headers(ORG, "consents:read")

        def claims_of(consent_id: str) -> dict[str, Any]:
            body = client.get(f"/v1/consents/{consent_id}", headers=headers).get_json()
            _, claims = receipts.verify(services.keys, body["receipt"])
            assert claims["consent_id"] == consent_id and claims["jti"] == claims["receipt_id"]
            assert claims["subject"]["pseudonym"] == body["subject_pseudonym"]
            text = json.dumps(claims).replace(consent_id, "<id>").replace(claims["receipt_id"], "<receipt>")
            mine = json.loads(text.replace(body["subject_pseudonym"], "<subject>"))
            return {k: v for k, v in mine.items() if k not in ("iat", "consent_timestamp")}

        assert claims_of(imported) == claims_of(recorded)
        with services.sessions() as session:
            entries = {
                e.object_id: e.payload
                for e in audit_store.entries_about(
                    session, tag="consent:recorded", object_ids=[imported, recorded]
                )
            }
        ours, theirs = entries[imported], entries[recorded]
        assert ours.pop("line") == 2 and ours.pop("import") == response.get_json()["import_id"]
        tables = ["consent", "consent_version", "consent_event"]
        assert [row[0] for row in ours.pop("rows")] == [*tables, "consent_import_row"]
        assert [row[0] for row in theirs.pop("rows")][:3] == tables  # and its access code
        for consent_id, payload in ((imported, ours), (recorded, theirs)):
            body = client.get(f"/v1/consents/{consent_id}", headers=headers).get_json()
            assert (payload.pop("subject"), payload.pop("receipt_id")) == (
                body["subject_pseudonym"],
                body["receipt_id"],
            )
        assert ours == theirs
        verify_ok(app)

    def test_another_organizations_subject_system_is_refused(self, app, client, orgs):
        orgs.org("other-org")
        response = post_import(client, orgs, csv_file(line("C-1", subject_system="urn:other-org:client")))
        assert response.status_code == 400
        assert named(response) == {(2, "subject_system")}
        assert consents_written(app) == 0

    def test_a_token_without_consents_write_is_refused(self, app, client, orgs):
        response = client.post(
            "/v1/consents/import",
            data=GOOD,
            content_type="text/csv",
            headers=orgs.headers(ORG, "consents:read"),
        )
        assert response.status_code == 403
        assert consents_written(app) == 0


MALFORMED = {
    "wrong header": (b"subject,purposes\nx,y\n", 1, "header"),
    "not utf-8": (
        HEADER.encode() + b"\n" + line("C-1").encode() + line("C-\xe9").encode("latin-1"),
        3,
        "file",
    ),
    "unbalanced quotes": (csv_file(line("C-1"), 'urn:outreach-org:client,"C-2,research\n'), 3, "file"),
    "a 10 MB line": (csv_file(line("C-1"), line("C-" + "x" * (10 * 1024 * 1024))), 3, "file"),
    "too few cells": (csv_file(line("C-1"), "urn:outreach-org:client,C-2\n"), 3, "row"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_refused_naming_the_line_and_nothing_is_written(app, client, orgs, case):
    data, line_number, field = MALFORMED[case]
    before = table_counts(app)
    response = post_import(client, orgs, data)
    assert response.status_code in (400, 413), response.get_data(as_text=True)[:300]
    if response.status_code == 400:
        assert named(response) == {(line_number, field)}
    assert table_counts(app) == before


def test_a_file_over_the_size_limit_is_refused(app_config, orgs, client, app):
    app.extensions[EXTENSION].settings["IMPORT_MAX_CONTENT_LENGTH"] = 1024
    response = post_import(client, orgs, GOOD + b"\n" * 2000)
    assert response.status_code == 413
    assert consents_written(app) == 0


class TestCli:
    def test_import_export_and_skip_bad(self, app, app_config, orgs, tmp_path: Path):
        bad = tmp_path / "bad.csv"
        bad.write_bytes(BAD)
        refused = run_cli(app_config, "consents", "import", str(bad), "--org", ORG)
        assert refused.exit_code == 1
        assert "line 3: purposes" in refused.output and "line 6: evidence_method" in refused.output
        assert consents_written(app) == 0
        skipped = run_cli(app_config, "consents", "import", str(bad), "--org", ORG, "--skip-bad", "--json")
        assert skipped.exit_code == 0, skipped.output
        assert (cli_json(skipped)["recorded"], cli_json(skipped)["bad"]) == (3, 3)
        again = run_cli(app_config, "consents", "import", str(bad), "--org", ORG, "--skip-bad", "--json")
        assert (cli_json(again)["recorded"], cli_json(again)["already"]) == (0, 3)
        out = tmp_path / "out.csv"
        exported = run_cli(app_config, "consents", "export", "--org", ORG, "--output", str(out))
        assert exported.exit_code == 0, exported.output
        assert len(list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))) == 3
        verify_ok(app)

    def test_an_unknown_organization_is_refused(self, app_config, orgs, tmp_path: Path):
        path = tmp_path / "good.csv"
        path.write_bytes(GOOD)
        result = run_cli(app_config, "consents", "import", str(path), "--org", "nobody")
        assert result.exit_code == 1 and "No such organization" in result.output


class TestExport:
    def test_csv_round_trips_and_holds_only_the_organizations_own(self, app, client, orgs):
        assert post_import(client, orgs, GOOD).status_code == 201
        orgs.org("other-org")
        other = csv_file(line("O-1", subject_system="urn:other-org:client", recipients="other-org"))
        assert post_import(client, orgs, other, org="other-org").status_code == 201
        response = client.get("/v1/consents/export?format=csv", headers=orgs.headers(ORG, "consents:read"))
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.is_streamed
        text = response.get_data(as_text=True)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 5
        assert {r["recipients"] for r in rows} == {"outreach-org|gla"}
        assert {r["evidence_notes"] for r in rows} == {'said "yes", twice'}
        # The export imports back: every row names a consent already recorded, nothing twice.
        back = post_import(client, orgs, text.encode())
        assert back.status_code == 201, back.get_json()
        assert (back.get_json()["recorded"], back.get_json()["already"]) == (0, 5)
        # Another organization cannot import (claim) them.
        stolen = post_import(client, orgs, text.encode(), org="other-org")
        assert stolen.status_code == 400
        assert {field for _, field in named(stolen)} == {"consent_id"}
        assert consents_written(app) == 6

    def test_fhir_bundle_of_consents_and_audit_events_validates(self, app, client, orgs):
        report = post_import(client, orgs, GOOD).get_json()
        decision = client.post(
            "/v1/authorize",
            json={
                "subject": {"system": SYSTEM, "value": "C-1"},
                "purpose": "service-planning",
                "data_categories": ["housing"],
            },
            headers=orgs.headers("gla", "authorize"),
        )
        assert decision.status_code == 200 and decision.get_json()["decision"] == "permit"
        response = client.get("/v1/consents/export?format=fhir", headers=orgs.headers(ORG, "consents:read"))
        assert response.status_code == 200 and response.mimetype == "application/fhir+json"
        body = json.loads(response.get_data(as_text=True))
        Bundle.model_validate(body)
        kinds = [e["resource"]["resourceType"] for e in body["entry"]]
        assert kinds.count("Consent") == 5 and kinds.count("AuditEvent") == 1
        for entry in body["entry"]:
            model = FhirConsent if entry["resource"]["resourceType"] == "Consent" else AuditEvent
            model.model_validate(entry["resource"])
        assert {
            e["resource"]["id"] for e in body["entry"] if e["resource"]["resourceType"] == "Consent"
        } == set(report["consent_ids"])
        # Other organizations see nothing of it.
        orgs.org("other-org")
        theirs = client.get(
            "/v1/consents/export?format=fhir", headers=orgs.headers("other-org", "consents:read")
        )
        assert json.loads(theirs.get_data(as_text=True)).get("entry") == []
        # The bundle imports back as consents already recorded.
        back = post_import(client, orgs, response.get_data(), media="application/fhir+json")
        assert (back.get_json()["recorded"], back.get_json()["already"]) == (0, 5)


def fhir_consent(value: str, *, purpose_system: str | None = None, purpose: str = "service-planning") -> dict:
    issuer = "urn:consent-service"
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": SYSTEM, "value": value}},
        "policyRule": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
        },
        "extension": [
            {
                "url": code_system(issuer, "evidence"),
                "extension": [
                    {"url": "method", "valueString": "written"},
                    {"url": "obtained_by", "valueString": "worker-7"},
                ],
            }
        ],
        "provision": {
            "type": "permit",
            "period": {"end": "2031-01-01T00:00:00+00:00"},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {
                        "identifier": {"system": code_system(issuer, "organization"), "value": "gla"}
                    },
                }
            ],
            "purpose": [{"system": purpose_system or code_system(issuer, "purpose"), "code": purpose}],
            "class": [{"system": code_system(issuer, "data-category"), "code": "housing"}],
        },
    }


class TestFhirImport:
    def bundle(self, *resources: dict) -> bytes:
        body = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
        for resource in resources:
            FhirConsent.model_validate(resource)  # the test's own input is valid R4
        return json.dumps(body).encode()

    def test_a_bundle_of_consents_is_recorded(self, app, client, orgs):
        response = post_import(
            client, orgs, self.bundle(fhir_consent("F-1"), fhir_consent("F-2")), media="application/fhir+json"
        )
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["recorded"] == 2
        consent = client.get(
            f"/v1/consents/{response.get_json()['consent_ids'][0]}",
            headers=orgs.headers(ORG, "consents:read"),
        ).get_json()
        assert (consent["purposes"], consent["recipients"]) == (["service-planning"], ["gla"])
        verify_ok(app)

    def test_unknown_codes_and_code_systems_name_the_entry_and_write_nothing(self, app, client, orgs):
        data = self.bundle(
            fhir_consent("F-1"),
            fhir_consent("F-2", purpose_system="http://example.org/purposes"),
            fhir_consent("F-3", purpose="no-such-purpose"),
        )
        response = post_import(client, orgs, data, media="application/fhir+json")
        assert response.status_code == 400
        assert named(response) == {(2, "provision.purpose[0].system"), (3, "purposes")}
        assert consents_written(app) == 0

    def test_mistyped_elements_are_bad_rows_not_errors(self, app, client, orgs):
        broken = fhir_consent("F-2")
        broken["provision"]["actor"][0]["role"] = "IRCP"  # a string where R4 has a CodeableConcept
        broken["extension"] = "evidence"
        body = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": fhir_consent("F-1")}]}
        body["entry"].append({"resource": broken})
        body["entry"].append("not an entry")
        response = post_import(client, orgs, json.dumps(body).encode(), media="application/fhir+json")
        assert response.status_code == 400
        assert {line for line, _ in named(response)} == {2, 3}
        assert consents_written(app) == 0

    def test_not_a_bundle_is_refused(self, app, client, orgs):
        response = post_import(client, orgs, b'{"resourceType": "Patient"}', media="application/fhir+json")
        assert response.status_code == 400
        assert named(response) == {(1, "resourceType")}
