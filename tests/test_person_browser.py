"""End-to-end in headless Chromium at a phone's width: the worker hands over the access code with
the receipt, the person opens their page from the QR code's address (the code in the fragment,
moved into a POST by the page's script) or by typing it, reads who asked for their data and why,
and withdraws a consent in two steps (issue 15 item 3). Screenshots go to docs/screenshots/
(person-*.png, intake-access-code.png) with ``CONSENT_SCREENSHOTS=1``.

Same browser set-up as tests/test_web_browser.py (its fixtures), so the same rule: without
Chromium the tests are skipped locally and FAIL in CI.
"""

# ruff: noqa: F811  (the browser fixtures of test_web_browser, imported by name)
from __future__ import annotations

import re

from api_helpers import assert_ok
from flask.testing import FlaskClient
from governance_helpers import GOVERNMENT, MEMBER, Governance
from selenium.webdriver.support.ui import WebDriverWait
from test_web_browser import (  # noqa: F401
    Pages,
    app_config,
    browser,
    gov,
    live_server,
    pages,
    policy_changes,
)
from web_helpers import WORKER

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
HEALTH_DENY = "Nation A has not approved health research"
CODE = re.compile(r"^[2-9A-HJ-NP-Z]{4}(-[2-9A-HJ-NP-Z]{4}){4}$")


def as_phone(pages: Pages) -> None:
    pages.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)


def fits_the_screen(pages: Pages) -> None:
    """Nothing wider than the phone's screen (no sideways scrolling)."""
    width = pages.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width


def height_of(pages: Pages, css: str) -> float:
    return float(
        pages.driver.execute_script("return arguments[0].getBoundingClientRect().height", pages.find(css))
    )


def record_at_the_desk(pages: Pages) -> tuple[str, str]:
    """The worker records a consent; the receipt shows the code once. (code, consent id)"""
    pages.sign_in(WORKER)
    pages.open("/web/intake/consents/new")
    pages.tick("setting-office")
    pages.click("#continue")
    pages.type("#value", MEMBER["value"])
    pages.tick(
        "communities-nation-a",
        "purposes-service-delivery",
        "purposes-service-planning",
        "purposes-research",
        "data_categories-housing",
        "data_categories-health",
        "recipients-gla",
        "recipients-univ",
    )
    pages.tick("method-verbal")
    pages.click("#record")
    assert "/receipt" in pages.path()
    code = pages.text("#access-code")
    assert CODE.match(code), code
    assert pages.find("#access svg.qr").is_displayed()
    assert "/me" in pages.text("#access")
    pages.shot("intake-access-code", at="#access")
    consent_id = pages.path().split("/")[-2]
    pages.driver.refresh()  # shown once
    assert not pages.all("#access-code") and pages.find("#new-access-code").is_displayed()
    return code, consent_id


class TestThePersonOnTheirPhone:
    def test_the_qr_code_opens_the_page_which_shows_every_request_and_withdraws_in_two_steps(
        self, pages: Pages, gov: Governance, client: FlaskClient
    ) -> None:
        code, consent_id = record_at_the_desk(pages)
        assert gov.ask("service-planning", "housing", requester=GOVERNMENT)["decision"] == "permit"
        gov.rule()
        assert gov.ask("research", "health")["decision"] == "deny"

        pages.driver.delete_all_cookies()  # the person's own phone: nobody is signed in
        as_phone(pages)
        pages.open("/me")
        pages.shot("person-start")
        pages.open(f"/me#{code}")  # what scanning the QR code opens; the script sends the form
        WebDriverWait(pages.driver, 10).until(
            lambda driver: (
                driver.current_url.endswith("/me/consents")
                and driver.execute_script("return document.readyState") == "complete"
            )
        )
        assert pages.path() == "/me/consents"  # the code is in no address
        assert code not in pages.driver.current_url
        text = pages.text()
        assert "Your data: who asked for it, and why" in text
        assert "Allowed" in text and "Refused" in text and HEALTH_DENY in text
        fits_the_screen(pages)
        assert height_of(pages, "#withdraw-1") >= 44  # a finger's touch target
        pages.shot("person-page")
        pages.shot("person-decisions", at="#decisions-title")

        pages.click("#withdraw-1")  # step 1
        assert "Step 2 of 2" in pages.text("#withdraw-warning")
        fits_the_screen(pages)
        assert height_of(pages, "#confirm-withdraw") >= 44
        pages.type("#reason", "I changed my mind")
        pages.shot("person-withdraw")
        pages.click("#confirm-withdraw")  # step 2
        assert "You have withdrawn this consent." in pages.text(".messages")
        assert "I changed my mind" in pages.text("#consent-1")
        assert not pages.all("#withdraw-1")
        pages.shot("person-withdrawn")
        consent = assert_ok(
            client.get(
                f"/v1/consents/{consent_id}", headers=gov.world.headers("outreach-org", "consents:read")
            )
        )
        assert consent["status"] == "revoked"
        pages.no_csp_violations()

    def test_a_typed_code_a_wrong_one_and_the_page_in_french(self, pages: Pages, gov: Governance) -> None:
        code = gov.consent()["access_code"]
        as_phone(pages)
        pages.open("/me")
        pages.type("#code", "ABCD-EFGH-JKLM-NPQR-STUV")
        pages.click("#open")
        assert "does not open anything" in pages.text("#error-summary")
        assert pages.find("#code").get_attribute("value") == ""  # what was typed is not echoed
        fits_the_screen(pages)
        pages.shot("person-code-refused")
        logged = [entry["message"] for entry in pages.driver.get_log("browser")]  # read, and so cleared
        assert all("status of 401" in m or "favicon.ico" in m for m in logged), logged
        pages.type("#code", code.lower().replace("-", " "))
        pages.click("#open")
        assert pages.path() == "/me/consents"
        pages.click("#close-page")
        assert pages.path() == "/me"
        pages.find("#language").send_keys("Français")
        pages.click("header .tools button[type=submit]")
        assert "Voir vos consentements" in pages.text("h1")
        pages.type("#code", code)
        pages.click("#open")
        assert "Retirer ce consentement" in pages.text()
        pages.shot("person-page-fr")
        pages.no_csp_violations()
