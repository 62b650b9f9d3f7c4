"""The pages of issue 11 through Flask's test client: the setting asked first, sensitive
categories asked on their own, protected purposes behind a confirmation step, the API's
refusals as per-field messages, times in the deployment's zone, withdrawn receipts, and
reasons worded with names in the reader's language. The browser tests drive the same steps
in Chromium (test_web_browser.py)."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from api_helpers import SUBJECT, assert_ok, unchanged_tables
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from governance_helpers import MEMBER, NATION_A, PROVIDER, Governance
from test_web_pages import audit_page
from web_helpers import (
    ALLOW_LAW_ENFORCEMENT,
    CHEAP_PASSWORDS,
    STEWARD_A,
    WORKER,
    make_people,
    policies_with,
    post_form,
    signed_in,
    text_of,
)

from consent_service import create_app
from consent_service.config import DEFAULT_POLICIES_DIR
from consent_service.core.vocabulary import load_vocabulary
from consent_service.services import organizations
from consent_service.storage.models import ConsentReview
from consent_service.web import safeguarding
from consent_service.web.words import UnknownTimeZone, Words

PLANNER = "rpa"
FORM = {
    "setting": "office",
    "system": SUBJECT["system"],
    "value": SUBJECT["value"],
    "communities": NATION_A,
    "purposes": ["service-delivery"],
    "data_categories": ["health"],
    "recipients": [PROVIDER],
    "method": "verbal",
    "obtained_by": "Wes",
}
NEW = "/web/intake/consents/new"


@pytest.fixture
def zone() -> str:
    return "America/Toronto"


@pytest.fixture
def policy_changes() -> dict[str, str]:
    """Lines of policies/deployment.toml to replace (old: new) for the test's deployment."""
    return {}


@pytest.fixture
def app_config(
    app_config: dict[str, Any], zone: str, policy_changes: dict[str, str], tmp_path: Path
) -> dict[str, Any]:
    config = {**app_config, **CHEAP_PASSWORDS, "TIMEZONE": zone}
    if policy_changes:
        config["POLICIES_DIR"] = policies_with(tmp_path, policy_changes)
    return config


@pytest.fixture
def gov(client: FlaskClient, world: Any) -> Governance:
    governance = Governance(client, world)
    make_people(world)
    organizations.create_organization(
        world.services,
        caller=None,
        id=PLANNER,
        name="Regional Planning Authority",
        type="government",
        now=datetime.now(UTC),
    )
    return governance


@pytest.fixture
def worker(app: Flask, gov: Governance) -> FlaskClient:
    return signed_in(app.test_client(), WORKER)


@pytest.fixture
def steward(app: Flask, gov: Governance) -> FlaskClient:
    return signed_in(app.test_client(), STEWARD_A)


def record(worker: FlaskClient, **changes: Any) -> str:
    response = post_form(worker, NEW, {**FORM, **changes})
    assert response.status_code == 302, text_of(response)
    return response.headers["Location"].split("/")[-2]


def consent_of(gov: Governance, consent_id: str) -> dict[str, Any]:
    headers = gov.world.headers(PROVIDER, "consents:read")
    return assert_ok(gov.client.get(f"/v1/consents/{consent_id}", headers=headers))


def ids_of(page: str, prefix: str) -> list[str]:
    return re.findall(rf'id="{prefix}-([a-z-]+)"', page)


def section(page: str, element_id: str) -> str:
    """The HTML of the element with ``element_id`` up to the end of its fieldset/section/div."""
    match = re.search(rf'<(fieldset|section|div|ul|p|table)[^>]*id="{element_id}".*?</\1>', page, re.S)
    assert match, f"no #{element_id}"
    return match.group(0)


def french(client: FlaskClient) -> FlaskClient:
    post_form(client, "/web/language", {"language": "fr"})
    return client


# -- the setting first ---------------------------------------------------------------------------


class TestSettingFirst:
    def test_the_form_asks_where_consent_is_given_before_anything_else(self, worker: FlaskClient) -> None:
        page = text_of(worker.get(NEW))
        choices = [i for i in ids_of(page, "setting") if i not in ("form", "field", "hint")]
        assert choices == [
            "office",
            "phone",
            "street-outreach",
            "street-outreach-desc",
            "emergency-shelter",
            "emergency-shelter-desc",
            "hospital-emergency",
            "hospital-emergency-desc",
            "other",
        ]
        assert 'name="purposes"' not in page and 'name="value"' not in page
        assert "Crisis setting: only service delivery can be agreed to here." in page

    def test_an_office_offers_every_purpose_but_the_protected_ones(self, worker: FlaskClient) -> None:
        page = text_of(worker.get(f"{NEW}?setting=office"))
        offered = ids_of(section(page, "purposes-field"), "purposes")
        assert "service-planning" in offered and "research" in offered and "commercial" in offered
        assert "immigration-enforcement" not in page and "law-enforcement" not in page
        assert 'name="setting" value="office"' in page

    def test_a_crisis_setting_offers_only_its_purposes(self, worker: FlaskClient) -> None:
        page = text_of(worker.get(f"{NEW}?setting=street-outreach"))
        field = section(page, "purposes-field")
        assert re.findall(r'name="purposes" value="([a-z-]+)"', field) == [
            "service-delivery",
            "care-coordination",
            "referral",
        ]
        assert "This is a crisis setting." in section(page, "setting-summary")

    def test_an_unknown_or_missing_setting_asks_again_and_writes_nothing(
        self, app: Flask, worker: FlaskClient
    ) -> None:
        assert worker.get(f"{NEW}?setting=tent").status_code == 400
        with unchanged_tables(app):
            for setting in ("tent", ""):
                response = post_form(worker, NEW, {**FORM, "setting": setting})
                assert response.status_code == 400
                assert "Choose where the person is giving consent." in section(
                    text_of(response), "setting-field"
                )

    def test_the_setting_is_recorded_in_the_evidence(self, gov: Governance, worker: FlaskClient) -> None:
        consent_id = record(worker, setting="emergency-shelter", purposes=["referral"])
        assert consent_of(gov, consent_id)["evidence"]["setting"] == "emergency-shelter"
        receipt = text_of(worker.get(f"/web/intake/consents/{consent_id}/receipt"))
        assert '<dd id="receipt-setting">Emergency shelter</dd>' in receipt

    def test_a_crisis_refusal_is_a_clear_message_under_the_purposes(
        self, app: Flask, worker: FlaskClient
    ) -> None:
        # The form offers no such choice; a stale or forged form still meets the API's rule.
        with unchanged_tables(app):
            response = post_form(
                worker,
                NEW,
                {**FORM, "setting": "street-outreach", "purposes": ["referral", "service-planning"]},
            )
        assert response.status_code == 400
        field = section(text_of(response), "purposes-field")
        assert (
            "Street outreach is a crisis setting: a consent given there may only be for Service delivery. "
            "Untick Service planning" in field
        )
        assert "service-planning" not in re.sub(r'(id|value|for|aria-describedby)="[^"]*"', "", field)

    def test_the_setting_step_in_french(self, worker: FlaskClient) -> None:
        page = text_of(french(worker).get(NEW))
        assert "Travail de rue" in page and "Refuge d&#39;urgence" in page
        assert "Où la personne donne son consentement" in page


# -- sensitive categories ------------------------------------------------------------------------


class TestSensitiveCategories:
    def test_each_is_a_separate_named_choice_with_its_own_explanation(self, worker: FlaskClient) -> None:
        page = text_of(worker.get(f"{NEW}?setting=office"))
        general = section(page, "data_categories-field")
        assert "nationality" not in general and "indigenous-identity" not in general
        assert "demographic" in general
        alone = section(page, "sensitive-field")
        assert "Sensitive information: ask about each one on its own" in alone
        for code, label, explanation in (
            (
                "nationality",
                "Nationality and immigration status",
                "Citizenship, nationality and immigration status.",
            ),
            (
                "indigenous-identity",
                "Indigenous identity",
                "First Nations, Inuit or Métis identity and community.",
            ),
        ):
            assert f'id="data_categories-{code}"' in alone
            assert f'<label for="data_categories-{code}">{label}</label>' in alone
            assert explanation in alone

    def test_in_french(self, worker: FlaskClient) -> None:
        alone = section(text_of(french(worker).get(f"{NEW}?setting=office")), "sensitive-field")
        assert "Nationalité et statut d&#39;immigration" in alone
        assert "Citoyenneté, nationalité et statut d&#39;immigration." in alone
        assert "Renseignements sensibles" in alone

    def test_the_receipt_names_each_sensitive_category_on_its_own(
        self, gov: Governance, worker: FlaskClient
    ) -> None:
        consent_id = record(worker, data_categories=["demographic", "nationality"])
        page = text_of(worker.get(f"/web/intake/consents/{consent_id}/receipt"))
        listed = section(page, "sensitive")
        assert "<strong>Nationality and immigration status</strong>:\n      included" in listed
        assert "<strong>Indigenous identity</strong>:\n      not included" in listed

        printable = gov.client.get(
            f"/v1/consents/{consent_id}/receipt.html", headers=gov.world.headers(PROVIDER, "consents:read")
        )
        listed = section(text_of(printable), "sensitive")
        assert "included: you agreed to it on its own." in listed
        assert 'class="sensitive-named" id="sensitive-nationality"' in listed
        assert 'class="sensitive-not-named" id="sensitive-indigenous-identity"' in listed

    def test_demographics_alone_says_nationality_is_not_included_everywhere(
        self, gov: Governance, worker: FlaskClient
    ) -> None:
        record(worker, data_categories=["demographic"], purposes=["service-planning"], recipients=[PLANNER])
        page = text_of(
            post_form(
                worker, "/web/intake/access-report", {"system": SUBJECT["system"], "value": SUBJECT["value"]}
            )
        )
        listed = section(page, "sensitive-1")
        assert 'class="sensitive-not-named" id="sensitive-1-nationality"' in listed
        assert "Nationality and immigration status" in listed


# -- protected purposes -------------------------------------------------------------------------


class TestProtectedPurposesNeverAllowed:
    def test_never_offered_and_refused_with_a_message_naming_it(
        self, app: Flask, worker: FlaskClient
    ) -> None:
        assert "immigration-enforcement" not in text_of(worker.get(f"{NEW}?setting=office"))
        with unchanged_tables(app):
            response = post_form(worker, NEW, {**FORM, "purposes": ["immigration-enforcement"]})
        assert response.status_code == 400
        assert (
            "Immigration enforcement is a protected purpose: this service never lets a consent grant it."
            in section(text_of(response), "purposes-field")
        )

    def test_in_french(self, worker: FlaskClient) -> None:
        response = post_form(french(worker), NEW, {**FORM, "purposes": ["law-enforcement"]})
        assert response.status_code == 400
        assert "Application de la loi est une fin protégée" in text_of(response)


@pytest.mark.parametrize("policy_changes", [ALLOW_LAW_ENFORCEMENT])
class TestProtectedPurposeAllowed:
    def test_offered_apart_with_a_warning_only_where_allowed(self, worker: FlaskClient) -> None:
        office = text_of(worker.get(f"{NEW}?setting=office"))
        assert 'id="protected-law-enforcement"' in section(office, "protected-field")
        assert "law-enforcement" not in section(office, "purposes-field")
        for elsewhere in ("phone", "street-outreach"):
            assert "law-enforcement" not in text_of(worker.get(f"{NEW}?setting={elsewhere}"))

    def test_ticking_it_asks_for_confirmation_and_records_nothing_yet(
        self, app: Flask, worker: FlaskClient
    ) -> None:
        with unchanged_tables(app):
            response = post_form(
                worker,
                NEW,
                {**FORM, "method": "written", "purposes": ["service-delivery", "law-enforcement"]},
            )
        page = text_of(response)
        assert response.status_code == 200 and "Confirm a protected purpose" in page
        assert "Nothing is recorded yet." in page
        assert 'id="confirm-law-enforcement"' in page and 'id="witness"' in page
        for name, value in (
            ("value", SUBJECT["value"]),
            ("purposes", "service-delivery"),
            ("setting", "office"),
        ):
            assert f'<input type="hidden" name="{name}" value="{value}">' in page

    def test_confirmed_with_a_witness_it_is_recorded(self, gov: Governance, worker: FlaskClient) -> None:
        response = post_form(
            worker,
            NEW,
            {
                **FORM,
                "method": "written",
                "purposes": ["law-enforcement"],
                "step": "confirm",
                "confirmed_protected_purposes": "law-enforcement",
                "witness": "Wanda Witness",
            },
        )
        assert response.status_code == 302, text_of(response)
        consent = consent_of(gov, response.headers["Location"].split("/")[-2])
        assert consent["purposes"] == ["law-enforcement"]
        assert consent["evidence"]["witness"] == "Wanda Witness"
        assert consent["evidence"]["confirmed_protected_purposes"] == ["law-enforcement"]

    def test_the_members_community_sees_the_grant_without_the_person(
        self, worker: FlaskClient, steward: FlaskClient
    ) -> None:
        before = text_of(steward.get(f"/web/communities/{NATION_A}/decisions"))
        assert 'id="no-protected-grants"' in before
        confirmed = {
            "step": "confirm",
            "confirmed_protected_purposes": "law-enforcement",
            "witness": "W. Witness",
        }
        record(worker, method="written", purposes=["law-enforcement"], **confirmed)
        grants = section(text_of(steward.get(f"/web/communities/{NATION_A}/decisions")), "protected-grants")
        assert "<td>Outreach-Org</td><td>Office</td><td>Law enforcement</td><td>Outreach-Org</td>" in grants
        assert SUBJECT["value"] not in grants

    def test_unmet_conditions_are_messages_under_their_fields(self, app: Flask, worker: FlaskClient) -> None:
        confirm = {**FORM, "method": "written", "purposes": ["law-enforcement"], "step": "confirm"}
        with unchanged_tables(app):
            missing = post_form(worker, NEW, confirm)
            spoken = post_form(
                worker,
                NEW,
                {
                    **confirm,
                    "method": "verbal",
                    "confirmed_protected_purposes": "law-enforcement",
                    "witness": "W",
                },
            )
        assert missing.status_code == 400 and "Confirm a protected purpose" in text_of(missing)
        page = text_of(missing)
        assert "Law enforcement: the person&#39;s explicit agreement is needed." in section(
            page, "confirm-field"
        )
        assert "Law enforcement: a second worker must witness the consent." in section(page, "witness-field")
        assert spoken.status_code == 400 and "Record a person&#39;s consent" in text_of(spoken)
        assert "Law enforcement: the consent must be written and signed." in section(
            text_of(spoken), "method-field"
        )

    def test_going_back_keeps_what_was_filled_in(self, worker: FlaskClient) -> None:
        response = post_form(
            worker, NEW, {**FORM, "purposes": ["law-enforcement"], "step": "edit", "witness": "W"}
        )
        page = text_of(response)
        assert response.status_code == 200 and f'value="{SUBJECT["value"]}"' in page
        assert 'id="protected-law-enforcement"\n      checked' in page or re.search(
            r'id="protected-law-enforcement"\s+checked', page
        )


# -- times, withdrawn receipts -----------------------------------------------------------------


def local(value: str, zone: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(ZoneInfo(zone))


class TestTimes:
    @pytest.mark.parametrize("zone", ["America/Toronto", "Asia/Kolkata"])
    def test_every_page_shows_the_deployments_time_with_its_zone(
        self, gov: Governance, worker: FlaskClient, steward: FlaskClient, zone: str
    ) -> None:
        consent_id = record(worker)
        at = local(consent_of(gov, consent_id)["created_at"], zone)
        stamp = f"{at:%H:%M %Z}"
        receipt = text_of(worker.get(f"/web/intake/consents/{consent_id}/receipt"))
        printable = text_of(
            gov.client.get(
                f"/v1/consents/{consent_id}/receipt.html",
                headers=gov.world.headers(PROVIDER, "consents:read"),
            )
        )
        report = text_of(
            post_form(
                worker, "/web/intake/access-report", {"system": SUBJECT["system"], "value": SUBJECT["value"]}
            )
        )
        gov.ask("research", "health")
        decisions = text_of(steward.get(f"/web/communities/{NATION_A}/decisions"))
        for page in (receipt, printable, report):
            assert stamp in page and " UTC" not in page
        assert f"{at:%Z}" in section(decisions, "decisions") and " UTC" not in decisions
        assert f"{at.day} {at:%B %Y}, {stamp}" in receipt
        assert f"Times are in the {zone} time zone." in printable and zone in report

    def test_an_unknown_zone_stops_the_service_naming_the_setting(self, app_config: dict[str, Any]) -> None:
        with pytest.raises(UnknownTimeZone, match="CONSENT_TIMEZONE"):
            create_app({**app_config, "TIMEZONE": "Mars/Olympus_Mons"})


class TestWithdrawnReceipt:
    def test_says_when_and_why_and_no_longer_how_to_withdraw(
        self, gov: Governance, worker: FlaskClient
    ) -> None:
        consent_id = record(worker)
        before = text_of(worker.get(f"/web/intake/consents/{consent_id}/receipt"))
        assert (
            'id="how-to-withdraw"' in before and 'id="withdraw"' in before and 'id="withdrawn"' not in before
        )
        post_form(worker, f"/web/intake/consents/{consent_id}/withdraw", {"reason": "The person moved away"})
        revoked_at = local(consent_of(gov, consent_id)["revoked_at"], "America/Toronto")
        headers = gov.world.headers(PROVIDER, "consents:read")
        for page in (
            text_of(worker.get(f"/web/intake/consents/{consent_id}/receipt")),
            text_of(gov.client.get(f"/v1/consents/{consent_id}/receipt.html", headers=headers)),
        ):
            withdrawn = section(page, "withdrawn")
            assert f"withdrawn on {revoked_at.day} {revoked_at:%B %Y}, {revoked_at:%H:%M %Z}" in withdrawn
            assert "The person moved away" in withdrawn
            assert "how-to-withdraw" not in page and "How to withdraw" not in page
            assert 'id="withdraw"' not in page

    def test_without_a_reason_it_says_none_was_given(self, worker: FlaskClient) -> None:
        consent_id = record(worker)
        post_form(worker, f"/web/intake/consents/{consent_id}/withdraw", {"reason": ""})
        page = text_of(french(worker).get(f"/web/intake/consents/{consent_id}/receipt"))
        assert "Aucun motif n&#39;a été indiqué." in section(page, "withdrawn")


# -- reasons with names -------------------------------------------------------------------------


class TestReasonsInNames:
    def refused_nationality(self, gov: Governance) -> dict[str, Any]:
        gov.consent(purposes=["service-planning"], data_categories=["demographic"], recipients=[PLANNER])
        decision = gov.ask("service-planning", "nationality", requester=PLANNER)
        assert decision["decision"] == "deny" and decision["reasons"][0]["code"] == "no_consent"
        return decision

    def test_the_stewards_decisions_page(self, gov: Governance, steward: FlaskClient) -> None:
        self.refused_nationality(gov)
        assert gov.ask("service-planning", "demographic", requester=PLANNER)["decision"] == "permit"
        gov.rule(purposes=["research"], data_categories=["health"])
        gov.ask("research", "health")
        page = text_of(steward.get(f"/web/communities/{NATION_A}/decisions"))
        table = section(page, "decisions")
        assert (
            "The member&#39;s consent lets Regional Planning Authority use Demographics for Service planning."
            in table
        )
        assert (
            "No consent lets Regional Planning Authority use Nationality and immigration status "
            "for Service planning." in table
        )
        assert (
            "A rule of Nation A does not let Univ use Health for Research: "
            "“Nation A has not approved health research”." in table
        )
        assert PLANNER not in re.sub(r"<[^>]+>", "", table).split()

    def test_in_french(self, gov: Governance, steward: FlaskClient) -> None:
        self.refused_nationality(gov)
        page = text_of(french(steward).get(f"/web/communities/{NATION_A}/decisions"))
        assert (
            "Aucun consentement ne permet à Regional Planning Authority d&#39;utiliser "
            "Nationalité et statut d&#39;immigration pour Planification des services." in page
        )

    def test_the_access_report_in_the_readers_language(self, gov: Governance, worker: FlaskClient) -> None:
        self.refused_nationality(gov)
        form = {"system": MEMBER["system"], "value": MEMBER["value"]}
        english = text_of(post_form(worker, "/web/intake/access-report", form))
        assert (
            "No consent lets Regional Planning Authority use Nationality and immigration status "
            "for Service planning." in english
        )
        page = text_of(post_form(french(worker), "/web/intake/access-report", form))
        assert '<html lang="fr">' in page and "Vos données : qui les a demandées, et pourquoi" in page
        assert "Aucun consentement ne permet à Regional Planning Authority" in page

    def test_the_apis_printable_pages_follow_accept_language(self, gov: Governance) -> None:
        self.refused_nationality(gov)
        headers = {**gov.world.headers(PROVIDER, "consents:read"), "Accept-Language": "fr-CA,fr;q=0.9"}
        report = gov.client.post(
            "/v1/subjects/access-report?format=html", json={"subject": MEMBER}, headers=headers
        )
        page = text_of(report)
        assert report.status_code == 200 and '<html lang="fr">' in page
        assert "Aucun consentement ne permet à Regional Planning Authority" in page
        consent_id = assert_ok(
            gov.client.post("/v1/subjects/access-report", json={"subject": MEMBER}, headers=headers)
        )["consents"][0]["id"]
        receipt = text_of(gov.client.get(f"/v1/consents/{consent_id}/receipt.html", headers=headers))
        assert "Votre reçu de consentement" in receipt and "Renseignements sensibles" in receipt
        english = gov.client.get(
            f"/v1/consents/{consent_id}/receipt.html", headers=gov.world.headers(PROVIDER, "consents:read")
        )
        assert '<html lang="en">' in text_of(english) and "Your consent receipt" in text_of(english)

    def test_the_api_keeps_codes_and_ids(self, gov: Governance) -> None:
        decision = self.refused_nationality(gov)
        assert decision["reasons"][0]["code"] == "no_consent"
        assert PLANNER in decision["reasons"][0]["message"]  # the id, as the API gives it


# -- French: every sentence the pages can show has its translation --------------------------------

PACKAGE = Path(__file__).resolve().parent.parent / "consent_service"
TEMPLATE_TEXT = re.compile(r"""\b_\(\s*"((?:[^"\\]|\\.)*)"|\b_\(\s*'((?:[^'\\]|\\.)*)'""")


def _python_texts() -> set[str]:
    """The literal English texts the web package hands to ``translate`` / ``t`` (concatenations joined)."""
    texts: set[str] = set()
    for path in (PACKAGE / "web").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            if name in ("translate", "t") and isinstance(first, ast.Constant):
                texts.add(str(first.value))
    return texts


def test_every_text_of_the_pages_has_its_french() -> None:
    with (PACKAGE / "translations" / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = {message.id: message.string for message in read_po(po) if message.string}
    texts = _python_texts() | {wording for _, _, wording in safeguarding._CONDITIONS}
    for path in (PACKAGE / "templates").rglob("*.html"):
        texts |= {a or b for a, b in TEMPLATE_TEXT.findall(path.read_text(encoding="utf-8"))}
    assert len(texts) > 200  # the scan found the pages' texts
    assert sorted(text for text in texts if text not in catalog) == []


class TestConsentsToAskAgain:
    def test_the_organizations_listed_consents_with_what_changed(
        self, app: Flask, gov: Governance, worker: FlaskClient
    ) -> None:
        assert 'id="no-reviews"' in text_of(worker.get("/web/intake/reviews"))
        ours = record(worker, data_categories=["demographic"])
        theirs = assert_ok(
            gov.client.post(
                "/v1/consents",
                headers=gov.world.headers("gla", "consents:write"),
                json={
                    "subject": {"system": "urn:gla:client", "value": "G-1"},
                    "purposes": ["research"],
                    "data_categories": ["demographic"],
                    "recipients": ["gla"],
                    "evidence": {"method": "verbal", "obtained_by": "x"},
                },
            ),
            201,
        )
        with app.extensions["consent_service"].sessions() as session:
            for consent_id, organization in ((ours, PROVIDER), (theirs["id"], "gla")):
                session.add(
                    ConsentReview(
                        consent_id=consent_id,
                        reason="sensitive_categories",
                        consent_version=1,
                        recorded_by=organization,
                        codes=["nationality", "indigenous-identity"],
                        flagged_at=datetime.now(UTC),
                    )
                )
            session.commit()
        assert 'id="reviews-link"' in text_of(worker.get("/web/"))
        page = text_of(worker.get("/web/intake/reviews"))
        listed = section(page, "reviews")
        assert f"/web/intake/consents/{ours}/receipt" in listed and theirs["id"] not in page
        assert (
            "It named Demographics, which no longer includes Nationality and immigration status and "
            "Indigenous identity" in listed
        )


@pytest.mark.parametrize("policy_changes", [ALLOW_LAW_ENFORCEMENT])
def test_the_new_steps_have_labels_and_no_inline_script(worker: FlaskClient) -> None:
    """The accessibility and CSP checks of every page (test_web_pages.audit_page) on the new steps."""
    audit_page(worker.get(NEW))
    audit_page(worker.get(f"{NEW}?setting=office"))
    audit_page(post_form(worker, NEW, {**FORM, "purposes": ["law-enforcement"], "method": "written"}))
    audit_page(post_form(worker, NEW, {**FORM, "purposes": ["law-enforcement"], "step": "confirm"}))
    audit_page(post_form(worker, NEW, {**FORM, "setting": "street-outreach", "purposes": ["research"]}))


@pytest.mark.parametrize("policy_changes", [ALLOW_LAW_ENFORCEMENT])
def test_an_allowed_protected_purpose_in_a_crisis_setting_is_refused_under_the_setting(
    app: Flask, worker: FlaskClient
) -> None:
    # Not offered there; a forged form still meets the deployment's conditions.
    confirmed = {"step": "confirm", "confirmed_protected_purposes": "law-enforcement", "witness": "W"}
    with unchanged_tables(app):
        response = post_form(
            worker,
            NEW,
            {
                **FORM,
                **confirmed,
                "setting": "street-outreach",
                "method": "verbal",
                "purposes": "law-enforcement",
            },
        )
    page = text_of(response)
    assert response.status_code == 400 and "Record a person&#39;s consent" in page
    assert "Law enforcement is never agreed to in a crisis setting." in section(page, "setting-summary")
    assert "Law enforcement: the consent must be written and signed." in section(page, "method-field")
    assert '<a href="#setting-field">' in page


class TestEveryReasonInWords:
    """Words.reason for each reason code, in English and French, from what the engine records."""

    DECISION = {
        "requester": PLANNER,
        "purpose": "service-planning",
        "data_categories": ["nationality", "housing"],
    }

    def words(self, language: str) -> Words:
        return Words(
            language=language,
            vocabulary=load_vocabulary(DEFAULT_POLICIES_DIR),
            organizations={PLANNER: "Regional Planning Authority"},
            communities={NATION_A: "Nation A"},
            zone=ZoneInfo("America/Toronto"),
        )

    @pytest.mark.parametrize(
        ("reason", "english", "french"),
        [
            (
                {
                    "code": "no_consent",
                    "message": "No active consent lets rpa use nationality, housing for x.",
                },
                "No consent lets Regional Planning Authority use Nationality and immigration status and "
                "Housing for Service planning.",
                "Aucun consentement ne permet à Regional Planning Authority d'utiliser Nationalité et statut "
                "d'immigration et Logement pour Planification des services.",
            ),
            (
                {
                    "code": "community_rule",
                    "message": "Community nation-a does not allow this use of its members' data.",
                    "rule_id": "r-1",
                    "community": NATION_A,
                },
                "A rule of Nation A does not let Regional Planning Authority use Nationality and immigration "
                "status and Housing for Service planning.",
                "Une règle de Nation A ne permet pas à Regional Planning Authority d'utiliser",
            ),
            (
                {
                    "code": "approval_required",
                    "message": "Community nation-a must approve this use first: Ask the council",
                    "rule_id": "r-2",
                    "community": NATION_A,
                },
                "Nation A has not approved Regional Planning Authority's use of Nationality and immigration "
                "status and Housing for Service planning: “Ask the council”.",
                "Nation A n'a pas approuvé l'utilisation de Nationalité et statut d'immigration et "
                "Logement par Regional Planning Authority pour Planification des services : "
                "« Ask the council ».",
            ),
            (
                {"code": "community_rule", "message": "A rule of another community applies."},
                "A rule of another community does not let Regional Planning Authority use",
                "Une règle d'une autre communauté ne permet pas",
            ),
            (
                {
                    "code": "below_min_cell_size",
                    "message": "Only 3 distinct subjects of this cohort would be "
                    "permitted; this deployment releases nationality data for this purpose only in "
                    "cells of at least 10.",
                },
                "This service releases Nationality and immigration status for this use only in groups of at "
                "least 10 people; this request had fewer.",
                "Ce service ne communique les renseignements « Nationalité et statut d'immigration » "
                "pour cet usage que par groupes d'au moins 10 personnes",
            ),
            (
                {
                    "code": "below_min_cell_size",
                    "message": "Only 3 distinct subjects of this cohort would be "
                    "permitted; community nation-a releases its members' data only in cells of at least 5.",
                    "rule_id": "r-3",
                    "community": NATION_A,
                },
                "Nation A releases its members' data only in groups of at least 5 people; "
                "this request had fewer.",
                "Nation A ne communique les données de ses membres que par groupes d'au moins 5 personnes",
            ),
        ],
    )
    def test_in_both_languages_with_names_never_ids(
        self, reason: dict[str, Any], english: str, french: str
    ) -> None:
        for language, expected in (("en", english), ("fr", french)):
            sentence = self.words(language).reason(reason, self.DECISION)
            assert sentence.startswith(expected), sentence
            assert PLANNER not in sentence.split() and NATION_A not in sentence and "r-" not in sentence

    def test_a_consent_reason_for_the_person_and_for_stewards(self) -> None:
        reason = {
            "code": "consent",
            "message": "Consent c-1 (version 1) covers this use.",
            "consent_id": "c-1",
        }
        words = self.words("en")
        assert words.reason(reason, self.DECISION, to_the_person=True, consent_number=2).startswith(
            "Your consent 2 lets Regional Planning Authority use"
        )
        assert words.reason({"code": "consent"}, self.DECISION, to_the_person=True).startswith(
            "A consent you gave to another organization lets"
        )
        assert words.reason(reason, self.DECISION).startswith("The member's consent lets")
        assert "c-1" not in words.reason(reason, self.DECISION, to_the_person=True, consent_number=2)
