"""Issue 11, the service side: sensitive categories stand alone, the deployment policy
(protected purposes, settings and crisis settings, obligations on every permit), and the
consents migration 0005 lists for review. Both backends; bad input writes nothing."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from api_helpers import (
    CONSENT,
    DEFAULT_OBLIGATIONS,
    NATIONALITY_AGGREGATE,
    ask,
    assert_error,
    assert_ok,
    body_with,
    engine_of,
    record_consent,
    rough_sleeper_orgs,
    unchanged_tables,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from consent_service import create_app
from consent_service.container import EXTENSION
from consent_service.core.deployment import DeploymentPolicyError
from consent_service.core.policy import PolicyBase
from consent_service.core.vocabulary import VocabularyError
from consent_service.services import audit as audit_log
from consent_service.services import consent_reviews
from consent_service.storage import audit_rows
from consent_service.storage.migrate import alembic_config, upgrade
from consent_service.storage.models import AuditEntry, ConsentReview, ConsentVersion

POLICIES = Path(__file__).resolve().parents[1] / "policies"
BASE = PolicyBase(POLICIES)
DEPLOYMENT = BASE.deployment
SENSITIVE = sorted(BASE.vocabulary.sensitive_categories)
PLAIN_CATEGORIES = sorted(set(BASE.vocabulary.data_categories) - set(SENSITIVE))
ORDINARY_PURPOSES = sorted(set(BASE.vocabulary.purposes) - set(DEPLOYMENT.protected_purposes))
CRISIS = sorted(code for code, s in DEPLOYMENT.settings.items() if s.crisis)
SERIAL = count()


@pytest.fixture
def outreach(world) -> dict[str, str]:
    rough_sleeper_orgs(world)
    return world.headers("outreach-org", "consents:write", "consents:read", "authorize")


def terms(**changes: Any) -> dict[str, Any]:
    return body_with(CONSENT, **changes)


def refused(client: Any, headers: dict[str, str], code: str, **changes: Any) -> dict[str, Any]:
    """POST /v1/consents with the example terms changed so; the 400 error body with ``code``."""
    return assert_error(client.post("/v1/consents", headers=headers, json=terms(**changes)), 400, code)


def evidence(**changes: Any) -> dict[str, Any]:
    return {**CONSENT["evidence"], **changes}


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def policies_copy(tmp_path: Path, *, vocabulary: str | None = None, deployment: str | None = None) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    if vocabulary is not None:
        (target / "vocabulary.toml").write_text(vocabulary)
    if deployment is not None:
        (target / "deployment.toml").write_text(deployment)
    return target


# -- sensitive categories ---------------------------------------------------------------------


class TestSensitiveCategories:
    def test_the_vocabulary_marks_them_and_they_stand_alone(self, client, world):
        answer = assert_ok(client.get("/v1/vocabulary", headers=world.headers("anyone", "consents:read")))
        flags = {t["code"]: (t["sensitive"], t["parent"]) for t in answer["data_categories"]}
        assert flags["nationality"] == (True, None) and flags["indigenous-identity"] == (True, None)
        assert flags["demographic"] == (False, None) and flags["mental-health"] == (False, "health")
        assert not any(t["parent"] in SENSITIVE for t in answer["data_categories"])

    @pytest.mark.parametrize("sensitive", SENSITIVE)
    def test_demographics_no_longer_lets_the_planner_read_it(self, client, outreach, world, sensitive):
        record_consent(
            client,
            outreach,
            purposes=["service-planning"],
            data_categories=["demographic"],
            recipients=["gla"],
        )
        gla = world.headers("gla", "authorize")
        assert ask(client, gla, "service-planning", "demographic")["decision"] == "permit"
        answer = ask(client, gla, "service-planning", sensitive)
        assert answer["decision"] == "deny" and answer["reasons"][0]["code"] == "no_consent"

    def test_a_consent_naming_it_covers_it(self, client, outreach, world):
        record_consent(
            client,
            outreach,
            purposes=["service-planning"],
            data_categories=["demographic", "nationality"],
            recipients=["gla"],
        )
        assert (
            ask(client, world.headers("gla", "authorize"), "service-planning", "nationality")["decision"]
            == "permit"
        )

    @pytest.mark.parametrize(
        ("text", "named"),
        [
            (
                '[data_categories.demographic]\nlabel = "D"\n'
                '[data_categories.nationality]\nsensitive = true\nparent = "demographic"\n',
                "'nationality' is sensitive and may not have a parent",
            ),
            (
                "[data_categories.nationality]\nsensitive = true\n"
                '[data_categories.passport]\nparent = "nationality"\n',
                "'passport' names sensitive 'nationality' as its parent",
            ),
            ('[data_categories.nationality]\nsensitive = "yes"\n', "'nationality' has sensitive = 'yes'"),
        ],
    )
    def test_the_loader_refuses_a_sensitive_code_with_a_parent_or_children(self, tmp_path, text, named):
        vocabulary = (POLICIES / "vocabulary.toml").read_text().split("[data_categories.identity]")[0] + text
        with pytest.raises(VocabularyError, match=named.replace("(", r"\(")):
            PolicyBase(policies_copy(tmp_path, vocabulary=vocabulary))


# -- hypothesis: what a consent that does not name a sensitive code covers --------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    categories=st.lists(st.sampled_from(PLAIN_CATEGORIES), min_size=1, max_size=4, unique=True),
    purposes=st.lists(st.sampled_from(ORDINARY_PURPOSES), min_size=1, max_size=3, unique=True),
    sensitive=st.sampled_from(SENSITIVE),
    extra=st.lists(st.sampled_from(PLAIN_CATEGORIES), max_size=2),
)
def test_no_consent_that_does_not_name_a_sensitive_code_ever_covers_it(
    client, outreach, world, categories, purposes, sensitive, extra
):
    subject = {"system": "urn:outreach-org:client", "value": f"P-{next(SERIAL)}"}
    record_consent(
        client,
        outreach,
        subject=subject,
        purposes=purposes,
        data_categories=categories,
        recipients=["gla", "outreach-org"],
    )
    for requester in ("gla", "outreach-org"):
        for purpose in purposes:
            answer = ask(
                client, world.headers(requester, "authorize"), purpose, sensitive, *extra, subject=subject
            )
            assert answer["decision"] == "deny"


# -- the deployment policy file -----------------------------------------------------------------

BAD_POLICIES = [
    ("default_obligations = [\n", "not valid TOML"),
    ("protected_purposes = 3\n", "protected_purposes must be a table"),
    (
        "[protected_purposes.deportation]\nallowed = false\n[settings.other]\n",
        "line 1: protected_purposes names unknown purpose 'deportation'",
    ),
    (
        'default_obligations = ["no_onward_disclosure", "tell_no_one"]\n[settings.other]\n',
        "line 1: default_obligations: 'tell_no_one'",
    ),
    (
        '[[category_obligations]]\ncategory = "passport"\nobligations = { no_linkage = true }\n'
        "[settings.other]\n",
        "line 2: category_obligations: unknown data category 'passport'",
    ),
    (
        '[[category_obligations]]\ncategory = "nationality"\nobligations = { min_cell_size = 10 }\n'
        "[settings.other]\n",
        "min_cell_size needs aggregate_only: true",
    ),
    ('[settings.office]\nlabel = "Office"\n', "settings must include 'other'"),
    (
        "[settings.other]\n[settings.tent]\ncrisis = true\n"
        'purposes = ["service-delivery", "housing-search"]\n',
        "line 4: \\[settings.tent\\] purposes names unknown purpose 'housing-search'",
    ),
    ('[settings.other]\ncolour = "red"\n', "line 2: \\[settings.other\\]: unknown key 'colour'"),
    (
        '[protected_purposes.law-enforcement]\nallowed = true\nsettings = ["street-outreach"]\n'
        "[settings.other]\n[settings.street-outreach]\ncrisis = true\n",
        "names crisis setting 'street-outreach'",
    ),
    (
        "[protected_purposes.law-enforcement]\nallowed = true\n[settings.other]\n[settings.street-outreach]\n"
        'crisis = true\npurposes = ["law-enforcement"]\n',
        "would grant protected purpose 'law-enforcement'",
    ),
]


class TestDeploymentPolicyFile:
    def test_the_built_in_policy(self):
        assert DEPLOYMENT.default_obligations == ("no_onward_disclosure", "purpose_limited")
        assert DEPLOYMENT.refused_purposes == {"immigration-enforcement", "law-enforcement"}
        assert set(DEPLOYMENT.settings) == {
            "office",
            "phone",
            "street-outreach",
            "emergency-shelter",
            "hospital-emergency",
            "other",
        }
        assert all(s.label_in("fr") != s.label for s in DEPLOYMENT.settings.values())
        assert set(CRISIS) == {"street-outreach", "emergency-shelter", "hospital-emergency"}
        assert DEPLOYMENT.settings["street-outreach"].allowed == {
            "service-delivery",
            "care-coordination",
            "referral",
        }

    @pytest.mark.parametrize(("text", "message"), BAD_POLICIES)
    def test_a_bad_file_stops_the_service_naming_the_line(self, tmp_path, text, message):
        with pytest.raises(DeploymentPolicyError, match=message):
            PolicyBase(policies_copy(tmp_path, deployment=text))

    def test_the_app_does_not_start_on_a_bad_policy(self, tmp_path, app_config):
        policies = policies_copy(tmp_path, deployment="[protected_purposes.deportation]\n")
        with pytest.raises(DeploymentPolicyError, match="line 1"):
            create_app({**app_config, "POLICIES_DIR": str(policies)})


# -- protected purposes --------------------------------------------------------------------------


class TestProtectedPurposes:
    @pytest.mark.parametrize("purpose", ["immigration-enforcement", "law-enforcement"])
    def test_refused_at_recording_naming_it_and_nothing_written(self, app, client, outreach, purpose):
        with unchanged_tables(app):
            body = refused(
                client,
                outreach,
                "protected_purpose",
                purposes=["service-delivery", purpose],
                recipients=["home-office"],
            )
        assert any(purpose in message for message in body["details"]["purposes"])

    def test_refused_at_amend(self, app, client, outreach):
        consent = record_consent(client, outreach)
        amend = {k: v for k, v in terms(purposes=["immigration-enforcement"]).items() if k != "subject"}
        with unchanged_tables(app):
            assert_error(
                client.post(f"/v1/consents/{consent['id']}/amend", json=amend, headers=outreach),
                400,
                "protected_purpose",
            )

    def test_a_consent_recorded_before_is_never_honoured(self, app, client, outreach, world):
        consent = record_consent(client, outreach, recipients=["home-office"])
        services = app.extensions[EXTENSION]
        with services.sessions() as session:
            session.execute(
                update(ConsentVersion)
                .where(ConsentVersion.consent_id == consent["id"])
                .values(purposes=["immigration-enforcement"])
            )
            session.commit()
        answer = ask(
            client, world.headers("home-office", "authorize"), "immigration-enforcement", "nationality"
        )
        assert answer["decision"] == "deny"


PARENT_VOCABULARY = (
    (POLICIES / "vocabulary.toml")
    .read_text()
    .replace(
        "[purposes.immigration-enforcement]\n",
        '[purposes.enforcement]\nlabel = "Enforcement"\n\n'
        '[purposes.immigration-enforcement]\nparent = "enforcement"\n',
    )
)
ALLOWED_DEPLOYMENT = (
    (POLICIES / "deployment.toml")
    .read_text()
    .replace(
        "[protected_purposes.law-enforcement]\nallowed = false\n",
        '[protected_purposes.law-enforcement]\nallowed = true\nevidence_methods = ["written"]\n'
        'witness_required = true\nsettings = ["office"]\n',
    )
)


class TestAProtectedPurposeUnderAParent:
    @pytest.fixture
    def app_config(self, app_config, tmp_path):
        return {**app_config, "POLICIES_DIR": str(policies_copy(tmp_path, vocabulary=PARENT_VOCABULARY))}

    def test_naming_the_parent_is_refused(self, app, client, outreach):
        with unchanged_tables(app):
            body = refused(client, outreach, "protected_purpose", purposes=["enforcement"])
        assert (
            "enforcement would cover protected purpose immigration-enforcement"
            in body["details"]["purposes"][0]
        )


def two_nations_and_the_police(client: Any, world: Any) -> None:
    """Nation A and Nation B, each stewarded by its council, and the police as a recipient."""
    world.org("police", "government")
    world.org("nation-a-council", "community-governance")
    world.org("nation-b-council", "community-governance")
    for nation in ("nation-a", "nation-b"):
        assert_ok(
            client.post(
                "/v1/communities",
                headers=world.admin(),
                json={"id": nation, "name": nation, "stewards": [f"{nation}-council"]},
            ),
            201,
        )


class TestAnAllowedProtectedPurpose:
    """A deployment that allows law enforcement: written evidence, a witness, in an office only."""

    @pytest.fixture
    def app_config(self, app_config, tmp_path):
        return {**app_config, "POLICIES_DIR": str(policies_copy(tmp_path, deployment=ALLOWED_DEPLOYMENT))}

    FULL = {
        "method": "written",
        "obtained_by": "worker-17",
        "witness": "worker-22",
        "setting": "office",
        "confirmed_protected_purposes": ["law-enforcement"],
    }

    def test_recorded_when_every_condition_holds_and_visible_to_oversight(self, app, client, outreach, world):
        world.org("police", "government")
        consent = record_consent(
            client, outreach, purposes=["law-enforcement"], recipients=["police"], evidence=self.FULL
        )
        services = app.extensions[EXTENSION]
        with services.sessions() as session:
            payload = session.scalars(
                select(AuditEntry.payload).where(AuditEntry.object_id == consent["id"])
            ).one()
        assert payload["protected_purposes"] == ["law-enforcement"] and payload["setting"] == "office"
        answer = ask(client, world.headers("police", "authorize"), "law-enforcement", "nationality")
        assert answer["decision"] == "permit"

    @pytest.mark.parametrize(
        ("change", "unmet"),
        [
            ({"confirmed_protected_purposes": []}, "explicit confirmation"),
            ({"method": "verbal"}, "evidence.method must be written"),
            ({"witness": None}, "a second worker must witness it"),
            ({"witness": "worker-17"}, "a second worker must witness it"),
            ({"witness": "Worker-17 "}, "a second worker must witness it"),  # the same worker, retyped
            ({"setting": "phone"}, "granted only in office"),
            ({"setting": "street-outreach"}, "never granted in a crisis setting"),
        ],
    )
    def test_refused_when_a_condition_is_unmet(self, app, client, outreach, world, change, unmet):
        world.org("police", "government")
        with unchanged_tables(app):
            body = refused(
                client,
                outreach,
                "protected_purpose",
                purposes=["law-enforcement"],
                recipients=["police"],
                evidence={**self.FULL, **change},
            )
        assert any(unmet in message for message in body["details"]["purposes"])

    def test_each_grant_is_listed_to_the_persons_communities_without_identity(self, client, outreach, world):
        two_nations_and_the_police(client, world)
        council = world.headers("nation-a-council", "rules:write")
        record_consent(client, outreach, communities=["nation-a"])  # a membership from before
        consent = record_consent(
            client, outreach, purposes=["law-enforcement"], recipients=["police"], evidence=self.FULL
        )
        listed = assert_ok(client.get("/v1/communities/nation-a/protected-grants", headers=council))
        assert [
            (g["purposes"], g["recipients"], g["recorded_by"], g["setting"]) for g in listed["grants"]
        ] == [(["law-enforcement"], ["police"], "outreach-org", "office")]
        assert consent["id"] not in json.dumps(listed) and consent["subject_pseudonym"] not in json.dumps(
            listed
        )
        other = world.headers("nation-b-council", "rules:write")
        assert (
            assert_ok(client.get("/v1/communities/nation-b/protected-grants", headers=other))["grants"] == []
        )
        assert client.get("/v1/communities/nation-a/protected-grants", headers=other).status_code in (
            403,
            404,
        )

    @pytest.mark.parametrize("recorded", ["alone", "imported"])
    def test_a_community_the_person_left_is_not_told_of_a_later_grant(
        self, client, outreach, world, recorded
    ):
        """Ending a membership is the person's choice to leave: a grant recorded afterwards, one
        at a time or in a bulk import, is listed to the communities they still belong to only."""
        two_nations_and_the_police(client, world)
        left = record_consent(client, outreach, communities=["nation-a", "nation-b"])
        assert_ok(client.post(f"/v1/consents/{left['id']}/memberships/nation-a/end", headers=outreach))
        if recorded == "alone":
            record_consent(
                client, outreach, purposes=["law-enforcement"], recipients=["police"], evidence=self.FULL
            )
        else:
            subject = terms()["subject"]
            header = (
                "subject_system,subject_value,purposes,data_categories,recipients,evidence_method,"
                "evidence_obtained_by,evidence_setting,evidence_witness,evidence_confirmed_protected_purposes"
            )
            row = (
                f"{subject['system']},{subject['value']},law-enforcement,nationality,police,written,"
                "worker-17,office,worker-22,law-enforcement"
            )
            imported = client.post(
                "/v1/consents/import",
                data=f"{header}\n{row}\n".encode(),
                content_type="text/csv",
                headers=outreach,
            )
            assert imported.status_code in (200, 201), imported.get_json()
            assert imported.get_json()["recorded"] == 1, imported.get_json()
        nation_a = world.headers("nation-a-council", "rules:write")
        nation_b = world.headers("nation-b-council", "rules:write")
        told = assert_ok(client.get("/v1/communities/nation-a/protected-grants", headers=nation_a))
        assert told["grants"] == []
        still = assert_ok(client.get("/v1/communities/nation-b/protected-grants", headers=nation_b))["grants"]
        assert [(g["purposes"], g["recipients"]) for g in still] == [(["law-enforcement"], ["police"])]

    def test_immigration_enforcement_stays_refused(self, client, outreach):
        refused(
            client,
            outreach,
            "protected_purpose",
            purposes=["immigration-enforcement"],
            evidence={**self.FULL, "confirmed_protected_purposes": ["immigration-enforcement"]},
        )


# -- settings and crisis settings -----------------------------------------------------------------


class TestSettings:
    @pytest.mark.parametrize("setting", ["tent", "", "Office"])
    def test_an_unknown_setting_is_a_validation_error_naming_it(self, app, client, outreach, setting):
        with unchanged_tables(app):
            body = refused(client, outreach, "validation_error", evidence=evidence(setting=setting))
        assert "setting" in body["details"]["evidence"][0]

    @pytest.mark.parametrize("setting", [None, "other", "office", "phone"])
    def test_a_setting_that_is_not_crisis_grants_what_the_person_agreed(
        self, client, outreach, world, setting
    ):
        record_consent(client, outreach, evidence=evidence(setting=setting))
        assert (
            ask(client, world.headers("gla", "authorize"), "service-planning", "housing")["decision"]
            == "permit"
        )

    @pytest.mark.parametrize("setting", CRISIS)
    def test_a_crisis_setting_refuses_planning_naming_it(self, app, client, outreach, setting):
        with unchanged_tables(app):
            body = refused(client, outreach, "crisis_setting", evidence=evidence(setting=setting))
        assert body["details"]["purposes"] == [f"not granted in crisis setting {setting}: service-planning"]

    def test_a_crisis_setting_grants_service_delivery(self, client, outreach, world):
        record_consent(
            client, outreach, purposes=["service-delivery"], evidence=evidence(setting="street-outreach")
        )
        assert ask(client, outreach, "referral", "health")["decision"] == "permit"

    def test_protected_comes_before_crisis(self, client, outreach):
        refused(
            client,
            outreach,
            "protected_purpose",
            purposes=["immigration-enforcement"],
            recipients=["home-office"],
            evidence=evidence(setting="street-outreach"),
        )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    setting=st.sampled_from(CRISIS),
    purposes=st.lists(st.sampled_from(ORDINARY_PURPOSES), min_size=1, max_size=3, unique=True),
    asked=st.sampled_from(sorted(BASE.vocabulary.purposes)),
)
def test_no_consent_recorded_in_a_crisis_setting_permits_a_purpose_outside_its_list(
    client, outreach, setting, purposes, asked
):
    subject = {"system": "urn:outreach-org:client", "value": f"C-{next(SERIAL)}"}
    response = client.post(
        "/v1/consents",
        headers=outreach,
        json=terms(
            subject=subject,
            purposes=purposes,
            recipients=["outreach-org"],
            evidence=evidence(setting=setting),
        ),
    )
    allowed = DEPLOYMENT.settings[setting].allowed
    if not set(purposes) <= allowed:
        assert_error(response, 400, "crisis_setting")
    else:
        assert response.status_code == 201
    answer = ask(client, outreach, asked, "health", subject=subject)
    if answer["decision"] == "permit":
        assert asked in allowed


# -- obligations on every permit ------------------------------------------------------------------


class TestObligations:
    def test_single_permit_and_its_signed_receipt_carry_them(self, client, outreach, world):
        record_consent(client, outreach)
        answer = ask(client, world.headers("gla", "authorize"), "service-planning", "nationality", "housing")
        assert answer["obligations"] == [*DEFAULT_OBLIGATIONS, NATIONALITY_AGGREGATE]
        assert claims_of(answer["receipt"])["obligations"] == answer["obligations"]

    def test_nationality_for_service_delivery_is_not_aggregate_only(self, client, outreach):
        record_consent(client, outreach)
        assert ask(client, outreach, "referral", "nationality")["obligations"] == DEFAULT_OBLIGATIONS

    def test_a_deny_carries_none(self, client, outreach, world):
        record_consent(client, outreach)
        assert ask(client, world.headers("gla", "authorize"), "research", "housing")["obligations"] == []

    def test_batch_permits_carry_them_and_nationality_is_gated_below_10(self, client, outreach, world):
        subjects = [{"system": "urn:outreach-org:client", "value": f"B-{n}"} for n in range(10)]
        for subject in subjects:
            record_consent(client, outreach, subject=subject)
        gla = world.headers("gla", "authorize")

        def batch(cohort, *categories):
            return assert_ok(
                client.post(
                    "/v1/authorize/batch",
                    headers=gla,
                    json={
                        "subjects": cohort,
                        "purpose": "service-planning",
                        "data_categories": list(categories),
                    },
                )
            )

        housing = batch(subjects[:3], "housing")
        assert [d["obligations"] for d in housing["decisions"]] == [DEFAULT_OBLIGATIONS] * 3
        small = batch(subjects[:9], "nationality")
        assert small["summary"] == {"permit": 0, "deny": 9}
        reason = small["decisions"][0]["reasons"][0]
        assert (
            reason["code"] == "below_min_cell_size"
            and "rule_id" not in reason
            and "nationality" in reason["message"]
        )
        enough = batch(subjects, "nationality")
        assert enough["summary"] == {"permit": 10, "deny": 0}
        assert enough["decisions"][0]["obligations"] == [*DEFAULT_OBLIGATIONS, NATIONALITY_AGGREGATE]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    purposes=st.lists(st.sampled_from(ORDINARY_PURPOSES), min_size=1, max_size=3, unique=True),
    categories=st.lists(
        st.sampled_from(sorted(BASE.vocabulary.data_categories)), min_size=1, max_size=3, unique=True
    ),
    asked=st.sampled_from(ORDINARY_PURPOSES),
    wanted=st.lists(
        st.sampled_from(sorted(BASE.vocabulary.data_categories)), min_size=1, max_size=2, unique=True
    ),
)
def test_every_permit_carries_the_default_obligations(
    client, outreach, world, purposes, categories, asked, wanted
):
    subject = {"system": "urn:outreach-org:client", "value": f"O-{next(SERIAL)}"}
    record_consent(
        client, outreach, subject=subject, purposes=purposes, data_categories=categories, recipients=["gla"]
    )
    answer = ask(client, world.headers("gla", "authorize"), asked, *wanted, subject=subject)
    if answer["decision"] == "permit":
        assert answer["obligations"][:2] == DEFAULT_OBLIGATIONS
        assert claims_of(answer["receipt"])["obligations"] == answer["obligations"]


# -- migration 0005: a v1 database migrated forward -------------------------------------------------


class TestMigration0005:
    def test_consents_that_named_demographic_are_listed_for_their_recorder(
        self, app, app_config, client, outreach, world
    ):
        world.org("shelter-co")
        shelter = world.headers("shelter-co", "consents:write", "consents:read")
        person = {"system": "urn:outreach-org:client", "value": "V1-7"}
        demographic = record_consent(
            client, outreach, subject=person, data_categories=["demographic", "housing"]
        )
        half = record_consent(client, outreach, data_categories=["demographic", "nationality"])
        plain = record_consent(client, outreach, data_categories=["health"])
        revoked = record_consent(client, outreach, data_categories=["demographic"])
        assert_ok(
            client.post(f"/v1/consents/{revoked['id']}/revoke", json={"reason": "asked"}, headers=outreach)
        )
        elsewhere = record_consent(
            client,
            shelter,
            subject={"system": "urn:shelter-co:client", "value": "V1-8"},
            data_categories=["demographic"],
            recipients=["shelter-co"],
        )
        enforcement = record_consent(client, outreach, recipients=["home-office"])
        services = app.extensions[EXTENSION]
        with services.sessions() as session:  # a grant v1 accepted and this release refuses
            audit_rows.changing(session, ConsentVersion, enforcement["id"], 1)
            session.execute(
                update(ConsentVersion)
                .where(ConsentVersion.consent_id == enforcement["id"])
                .values(purposes=["immigration-enforcement"])
            )
            # bound like a v1 database's rows (db upgrade binds them), so verify judges the rest
            services.append_audit(
                session,
                at=datetime.now(UTC),
                tag="test:v1-grant",
                caller=None,
                object_id=enforcement["id"],
                payload={},
            )
            session.commit()

        # Back to the v1 schema and forward again, as an upgrade from v1 does.
        engine_of(app).dispose()
        url, schema = app_config["DATABASE_URL"], app_config.get("DB_SCHEMA", "")
        command.downgrade(alembic_config(url, schema), "0004")
        upgrade(url, schema=schema)

        with services.sessions() as session:
            listed = {(r.consent_id, r.reason): list(r.codes) for r in session.scalars(select(ConsentReview))}
        assert listed == {
            (demographic["id"], "sensitive_categories"): ["nationality", "indigenous-identity"],
            (half["id"], "sensitive_categories"): ["indigenous-identity"],
            (elsewhere["id"], "sensitive_categories"): ["nationality", "indigenous-identity"],
            (enforcement["id"], "protected_purpose"): ["immigration-enforcement"],
        }
        assert plain["id"] not in {key[0] for key in listed} and revoked["id"] not in {k[0] for k in listed}

        # db upgrade records the listing in the audit chain, once, per organization
        assert consent_reviews.record_pending(services, now=audit_now()) == 4
        assert consent_reviews.record_pending(services, now=audit_now()) == 0
        with services.sessions() as session:
            entries = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.tag == "consents:listed_for_review")
                .order_by(AuditEntry.seq)
            ).all()
        assert [e.object_id for e in entries] == ["outreach-org", "shelter-co"]
        assert {c["consent_id"] for c in entries[0].payload["consents"]} == {
            demographic["id"],
            half["id"],
            enforcement["id"],
        }
        # The chain holds; the only rows it does not know are the subject systems that the
        # round trip through v1's schema dropped and migration 0007 registered again, and the
        # person access codes the round trip dropped (migration 0013 makes the table anew).
        verified = audit_log.verify(services, checkpoint_tokens=[])
        assert verified.entries == verified.head_seq
        assert {row["table"] for row in verified.rows} <= {"subject_system", "person_access_code"}

        # each organization sees its own list, with what to ask the person
        mine = assert_ok(client.get("/v1/consents/reviews", headers=outreach))["consents"]
        assert {(c["consent_id"], c["reason"]) for c in mine} == {
            (demographic["id"], "sensitive_categories"),
            (half["id"], "sensitive_categories"),
            (enforcement["id"], "protected_purpose"),
        }
        assert all(c["why"] for c in mine)
        theirs = assert_ok(client.get("/v1/consents/reviews", headers=shelter))["consents"]
        assert [c["consent_id"] for c in theirs] == [elsewhere["id"]]
        assert client.get("/v1/consents/reviews").status_code == 401

        # and the consent covers demographics still, but no longer nationality
        assert (
            ask(client, outreach, "service-delivery", "demographic", subject=person)["decision"] == "permit"
        )
        assert ask(client, outreach, "service-delivery", "nationality", subject=person)["decision"] == "deny"


def audit_now() -> datetime:
    return datetime.now(UTC)
