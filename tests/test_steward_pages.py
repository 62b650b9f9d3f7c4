"""The steward's pages through Flask's test client (issue 14, items 6 and 7): Local Contexts
labels (icon, name and text, EN/FR) on the rule form and on rules; a rule form as strict at
preview as at save, with one set of per-field messages, translated; duplicates refused; the
approval pages' two steps. The browser test (test_web_browser.py) drives the same pages."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_helpers import assert_ok, unchanged_tables
from flask import Flask
from flask.testing import FlaskClient
from governance_helpers import APPROVAL_RULE, NATION_A, RESEARCHER, Governance
from test_web_pages import audit_page, rules_of
from web_helpers import CHEAP_PASSWORDS, STEWARD_A, STEWARD_B, make_people, post_form, signed_in, text_of

from consent_service.core import local_contexts

STATIC = Path(__file__).resolve().parent.parent / "consent_service" / "static"
NEW_RULE = f"/web/communities/{NATION_A}/rules/new"
FORM = {
    "effect": "require_approval",
    "purposes": "research",
    "data_categories": "health",
    "requesters": "*",
    "reason": "Health research needs the council's agreement",
}
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, **CHEAP_PASSWORDS}


@pytest.fixture
def gov(client: FlaskClient, world: Any) -> Governance:
    governance = Governance(client, world)
    make_people(world)
    return governance


@pytest.fixture
def steward(app: Flask, gov: Governance) -> FlaskClient:
    return signed_in(app.test_client(), STEWARD_A)


def in_french(browser: FlaskClient) -> FlaskClient:
    post_form(browser, "/web/language", {"language": "fr"})
    return browser


def fingerprint(page: str) -> str:
    found = re.search(r'name="previewed" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


def errors_of(page: str) -> dict[str, str]:
    """Each field's message as the page shows it beside the field (``<p class="error" id=...>``)."""
    return {
        name: re.sub(r"\s+", " ", text).strip()
        for name, text in re.findall(r'<p class="error" id="([^"]+)-error">(.*?)</p>', page, re.S)
    }


# -- the labels --------------------------------------------------------------------------------------


class TestIcons:
    def test_every_label_has_its_own_icon_with_a_text_alternative(self) -> None:
        icons = {path.name for path in (STATIC / "labels").glob("*.svg")}
        assert icons == {label.icon for label in local_contexts.CATALOGUE.values()}
        assert len(icons) == len(local_contexts.LABELS)  # one drawing per label, none shared
        drawings = set()
        for label in local_contexts.CATALOGUE.values():
            root = ET.parse(STATIC / "labels" / label.icon).getroot()
            assert root.get("role") == "img" and root.get("aria-labelledby") == "title desc"
            assert root.findtext(f"{SVG}title") == label.code
            assert local_contexts.SOURCE in (root.findtext(f"{SVG}desc") or "")
            drawing = root.find(f"{SVG}g")
            assert drawing is not None and len(drawing) > 0
            drawings.add(ET.tostring(drawing))
        assert len(drawings) > 20  # the families share shapes, not whole drawings

    def test_the_icons_are_served_as_svg(self, client: FlaskClient) -> None:
        response = client.get("/static/labels/tk-non-commercial.svg")
        assert response.status_code == 200 and response.mimetype == "image/svg+xml"
        response.close()

    def test_every_label_has_its_own_text_and_a_french_one(self) -> None:
        from consent_service.web.words import catalog

        texts = [label.text for label in local_contexts.CATALOGUE.values()]
        assert len(set(texts)) == len(texts)
        french = catalog("fr")
        for label in local_contexts.CATALOGUE.values():
            assert french.gettext(label.text) != label.text, label.code
            assert french.gettext(label.name), label.code


class TestLabelsOnTheRuleForm:
    def test_the_form_offers_every_label_with_its_icon_and_text(self, steward: FlaskClient) -> None:
        response = steward.get(NEW_RULE)
        page = text_of(response)
        audit_page(response)
        for label in local_contexts.CATALOGUE.values():
            assert f'value="{label.code}"' in page
            assert f'src="/static/labels/{label.icon}"' in page
        assert "Not for commercial use: no selling it and no profit from it." in page
        assert local_contexts.SOURCE in page

    def test_labels_ticked_are_previewed_saved_and_shown_with_the_rule(
        self, app: Flask, gov: Governance, steward: FlaskClient
    ) -> None:
        form = {
            **FORM,
            "labels": ["TK Non-Commercial", "BC Research Use"],
            "aggregate_only": "",
            "action": "preview",
        }
        preview = post_form(steward, NEW_RULE, form)
        page = text_of(preview)
        assert preview.status_code == 200
        labels = page[page.index('id="preview-labels"') :]
        assert "TK Non-Commercial" in labels and "BC Research Use" in labels
        audit_page(preview)

        saved = post_form(steward, NEW_RULE, {**form, "action": "save", "previewed": fingerprint(page)})
        assert saved.status_code == 302
        [rule] = rules_of(app, NATION_A)
        assert rule.labels == ["TK Non-Commercial", "BC Research Use"]
        rules_page = text_of(steward.get(f"/web/communities/{NATION_A}/"))
        assert '<img src="/static/labels/tk-non-commercial.svg" alt=""' in rules_page
        assert "The community allows research use, as agreed with it." in rules_page

    def test_labels_are_shown_in_french(self, gov: Governance, steward: FlaskClient) -> None:
        gov.rule(base=APPROVAL_RULE)  # TK Non-Commercial, BC Consent Verified
        page = text_of(in_french(steward).get(f"/web/communities/{NATION_A}/"))
        assert "TK Non commercial" in page and "Pas d&#39;usage commercial : ni vente, ni profit." in page
        assert "BC Consentement vérifié" in page


# -- as strict at preview as at save ---------------------------------------------------------------


class TestPreviewIsAsStrictAsSave:
    @pytest.mark.parametrize("action", ["preview", "save"])
    def test_conditions_on_a_refusing_rule_are_refused_at_both(
        self, app: Flask, gov: Governance, steward: FlaskClient, action: str
    ) -> None:
        form = {
            **FORM,
            "effect": "deny",
            "obligations": "no_linkage",
            "action": action,
            "previewed": "0" * 64,
        }
        with unchanged_tables(app):
            response = post_form(steward, NEW_RULE, form)
        assert response.status_code == 400
        assert errors_of(text_of(response)) == {
            "obligations": "A rule that refuses carries no conditions: conditions travel only with what a "
            "rule allows. Untick them, or choose “Ask the community first”."
        }
        assert 'id="error-summary"' in text_of(response) and 'href="#obligations-field"' in text_of(response)

    def test_a_save_whose_fingerprint_matches_is_judged_by_the_same_check(
        self, app: Flask, gov: Governance, steward: FlaskClient
    ) -> None:
        """A forged save (fingerprint of the very body) meets the same refusal as its preview."""
        from consent_service.web.steward import _fingerprint

        body = {
            "effect": "deny",
            "purposes": ["research"],
            "data_categories": ["health"],
            "requesters": ["*"],
            "obligations": {"no_linkage": True},
            "labels": [],
            "reason": FORM["reason"],
        }
        form = {**FORM, "effect": "deny", "obligations": "no_linkage", "action": "save"}
        with unchanged_tables(app):
            response = post_form(steward, NEW_RULE, {**form, "previewed": _fingerprint(body)})
        assert response.status_code == 400 and list(errors_of(text_of(response))) == ["obligations"]

    def test_a_number_without_its_condition_is_named_under_its_own_field(
        self, gov: Governance, steward: FlaskClient
    ) -> None:
        response = post_form(steward, NEW_RULE, {**FORM, "min_cell_size": "5", "action": "preview"})
        assert response.status_code == 400
        assert errors_of(text_of(response)) == {
            "min_cell_size": "A smallest group needs the condition “Only as counts or totals”."
        }
        assert 'aria-describedby="min_cell_size-error" aria-invalid="true"' in text_of(response)

    def test_a_label_the_service_does_not_know_is_refused(
        self, app: Flask, gov: Governance, steward: FlaskClient
    ) -> None:
        with unchanged_tables(app):
            response = post_form(steward, NEW_RULE, {**FORM, "labels": "TK Imaginary", "action": "preview"})
        assert response.status_code == 400
        assert errors_of(text_of(response)) == {
            "labels": "“TK Imaginary” is not a Local Contexts label or notice."
        }

    def test_the_messages_are_in_french(self, gov: Governance, steward: FlaskClient) -> None:
        in_french(steward)
        response = post_form(
            steward, NEW_RULE, {**FORM, "effect": "deny", "obligations": "no_linkage", "action": "preview"}
        )
        assert errors_of(text_of(response)) == {
            "obligations": "Une règle qui refuse ne porte pas de conditions : les conditions accompagnent "
            "seulement ce qu&#39;une règle permet. Décochez-les, ou choisissez « Demander d&#39;abord à la "
            "communauté »."
        }
        response = post_form(
            steward, NEW_RULE, {**FORM, "data_categories": "no-such-code", "action": "preview"}
        )
        assert errors_of(text_of(response)) == {
            "data_categories": "« no-such-code » n&#39;est pas un type d&#39;information "
            "que ce service connaît."
        }

    def test_a_rule_already_in_force_is_refused_at_preview_naming_it(
        self, app: Flask, gov: Governance, steward: FlaskClient
    ) -> None:
        gov.rule(base=APPROVAL_RULE)
        with unchanged_tables(app):
            response = post_form(steward, NEW_RULE, {**FORM, "action": "preview"})
        page = text_of(response)
        assert response.status_code == 400 and 'name="previewed"' not in page
        assert (
            "This rule is already in force: “Anyone must have the community&#39;s approval before using "
            "members&#39; health data for research.” (made by Nation-A-Council on" in page
        )
        assert "Retire that one first, or change this one." in page


# -- approvals: a confirmation and a note ------------------------------------------------------------


class TestApprovalSteps:
    def test_a_steward_of_another_community_sees_no_confirmation(self, app: Flask, gov: Governance) -> None:
        approval = gov.approval()
        other = signed_in(app.test_client(), STEWARD_B)
        assert other.get(f"/web/communities/{NATION_A}/approvals/{approval['id']}/revoke").status_code == 403
        grant = post_form(
            other,
            f"/web/communities/{NATION_A}/approvals",
            {"requester": RESEARCHER, "purposes": "research", "data_categories": "health"},
        )
        assert grant.status_code == 403 and "Confirm the approval" not in text_of(grant)

    def test_the_confirmation_pages_are_accessible(self, gov: Governance, steward: FlaskClient) -> None:
        approval = gov.approval()
        audit_page(steward.get(f"/web/communities/{NATION_A}/approvals/{approval['id']}/revoke"))
        audit_page(
            post_form(
                steward,
                f"/web/communities/{NATION_A}/approvals",
                {"requester": RESEARCHER, "purposes": "research", "data_categories": "housing"},
            )
        )

    def test_a_revoked_approval_offers_no_second_revocation(
        self, gov: Governance, client: FlaskClient, steward: FlaskClient
    ) -> None:
        approval = gov.approval()
        gov.revoke(approval)
        response = steward.get(f"/web/communities/{NATION_A}/approvals/{approval['id']}/revoke")
        assert response.status_code == 302
        listed = assert_ok(
            client.get(
                f"/v1/communities/{NATION_A}/approvals",
                headers=gov.steward(),
                query_string={"include_revoked": "true"},
            )
        )["approvals"]
        assert [a["status"] for a in listed] == ["revoked"]

    def test_an_end_date_already_past_is_said_before_the_confirmation(
        self, app: Flask, gov: Governance, steward: FlaskClient
    ) -> None:
        yesterday = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
        with unchanged_tables(app):
            response = post_form(
                steward,
                f"/web/communities/{NATION_A}/approvals",
                {
                    "requester": RESEARCHER,
                    "purposes": "research",
                    "data_categories": "health",
                    "valid_until": yesterday,
                },
            )
        assert response.status_code == 400 and "Confirm the approval" not in text_of(response)
        assert errors_of(text_of(response)) == {"valid_until": "Give a date in the future."}

    def test_the_confirmation_in_french(self, gov: Governance, steward: FlaskClient) -> None:
        response = post_form(
            in_french(steward),
            f"/web/communities/{NATION_A}/approvals",
            {"requester": RESEARCHER, "purposes": "research", "data_categories": "health"},
        )
        page = text_of(response)
        assert response.status_code == 200 and "Confirmer l&#39;approbation" in page
        assert "Oui, donner cette approbation" in page and "Note pour le dossier" in page
