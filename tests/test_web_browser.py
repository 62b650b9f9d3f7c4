"""End-to-end: the web pages in headless Chromium (Selenium + chromedriver) against the app served
on loopback (issue 7). Each test saves screenshots of the pages it visits under docs/screenshots/,
which the guides in docs/ show.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``).
Without them the tests are skipped locally and FAIL in CI (``CI=true``), so a CI machine without a
browser cannot pass by skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import assert_ok
from conftest import BrowserKeeper, skip_or_fail_in_ci
from flask import Flask
from flask.testing import FlaskClient
from governance_helpers import (
    APPROVAL_RULE,
    GOVERNMENT,
    MEMBER,
    NATION_A,
    NATION_B,
    RESEARCHER,
    Governance,
    reason_codes,
)
from web_helpers import (
    ALLOW_LAW_ENFORCEMENT,
    CHEAP_PASSWORDS,
    PASSWORD,
    STEWARD_A,
    STEWARD_B,
    WORKER,
    make_people,
    policies_with,
)
from werkzeug.serving import make_server

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    "--lang=en-GB",
    "--proxy-server=direct://",
    "--proxy-bypass-list=*",
]
INSTALL = "install them with: apt-get install -y chromium chromium-driver"


def _browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver, or fail (CI) / skip (elsewhere) saying how to install them."""
    problem = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        problem = "selenium is not installed (pip install -e '.[test]')"
    browser = next(
        (
            p
            for p in (
                shutil.which("chromium"),
                shutil.which("chromium-browser"),
                "/usr/lib/chromium/chromium",
            )
            if p and Path(p).exists()
        ),
        None,
    )
    driver = next(
        (
            p
            for p in (shutil.which("chromedriver"), "/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver")
            if p and Path(p).exists()
        ),
        None,
    )
    if problem is None and (browser is None or driver is None):
        problem = f"Chromium and chromedriver are needed for the browser tests ({INSTALL})"
    if problem is not None:
        skip_or_fail_in_ci(problem)
    assert browser is not None and driver is not None
    return browser, driver


@pytest.fixture
def policy_changes() -> dict[str, str]:
    """Changes to policies/deployment.toml for the test's deployment (none: the built-in policy)."""
    return {}


@pytest.fixture
def app_config(app_config: dict[str, Any], policy_changes: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    config = {**app_config, **CHEAP_PASSWORDS}
    if policy_changes:
        config["POLICIES_DIR"] = policies_with(tmp_path, policy_changes)
    return config


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app on 127.0.0.1 (a free port), served by werkzeug in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _start_chromium(profile: Path) -> Any:
    chromium, chromedriver = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.implicitly_wait(0)
    return driver


def _reset_chromium(driver: Any) -> None:
    """The browser as a new one: one blank tab, no cookies or cached files, no emulated phone
    or print media, and no console lines of the tests before (no_csp_violations reads them)."""
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    driver.get_log("browser")


@pytest.fixture
def browser(browser_keeper: BrowserKeeper) -> Any:
    """This worker's Chromium (conftest.BrowserKeeper), fresh for the test."""
    _browser_paths()  # each test skips (or fails in CI) without Chromium
    return browser_keeper.fresh(_start_chromium, _reset_chromium)


class Pages:
    """The browser at the live server, with the few moves the tests make."""

    def __init__(self, driver: Any, base: str, screenshots: bool) -> None:
        self.driver, self.base, self.screenshots = driver, base, screenshots

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, css: str) -> None:
        """Click, and if that loads a new page, wait for it."""
        self.follow(self.find(css))

    def follow(self, element: Any) -> None:
        self.after(element.click)

    def after(self, action: Any) -> None:
        """Do ``action``; if it loads a new page, wait until that page is ready.

        The old page is marked with a window property that a new page does not have. Polling
        that mark (rather than asking whether the old <html> element went stale) never touches
        a node while Chromium is replacing the document, which is what made Chromium answer
        "unhandled inspector error" now and then; errors raised mid-navigation are retried.
        """
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.execute_script("window.__consentOldPage = true")
        action()
        wait = WebDriverWait(self.driver, 10, ignored_exceptions=(WebDriverException,))
        try:
            wait.until(
                lambda driver: driver.execute_script(
                    "return window.__consentOldPage !== true && document.readyState === 'complete'"
                )
            )
        except TimeoutException:
            return  # the click did not load a page (a checkbox, a script's button)

    def tick(self, *ids: str) -> None:
        for element_id in ids:
            box = self.find(f"#{element_id}")
            if not box.is_selected():
                box.click()

    def type(self, css: str, text: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(text)

    def text(self, css: str = "main") -> str:
        return str(self.find(css).text)

    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base)

    def shot(self, name: str, *, at: str | None = None) -> None:
        """Save the page as docs/screenshots/<name>.png (from the SQLite run only), scrolled so
        that the element ``at`` is at the top."""
        if at is not None:
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", self.find(at))
        if self.screenshots:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        from selenium.webdriver.common.keys import Keys

        self.open("/web/sign-in")
        self.type("#email", email)
        self.type("#password", password)
        self.after(lambda: self.find("#password").send_keys(Keys.ENTER))  # the keyboard, not the mouse

    def no_csp_violations(self, *, refused_forms: bool = False) -> None:
        """Nothing on the pages was refused by the Content-Security-Policy, and no script failed.

        ``refused_forms``: the test posted forms that the service refused on purpose (400)."""
        problems = [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
        ]
        problems = [p for p in problems if "favicon.ico" not in p]
        if refused_forms:
            problems = [p for p in problems if "responded with a status of 400" not in p]
        assert not problems, problems


@pytest.fixture
def pages(browser: Any, live_server: str, database_config: dict[str, Any]) -> Pages:
    # Screenshots for docs/ are refreshed on request only (CONSENT_SCREENSHOTS=1), so an
    # ordinary test run leaves the working tree as it found it.
    wanted = os.environ.get("CONSENT_SCREENSHOTS") == "1" and not database_config.get("DB_SCHEMA")
    return Pages(browser, live_server, screenshots=wanted)


@pytest.fixture
def gov(client: FlaskClient, world: Any) -> Governance:
    governance = Governance(client, world)
    make_people(world)
    return governance


def authorize_over_http(
    base: str, client_id: str, secret: str, purpose: str, *categories: str
) -> dict[str, Any]:
    """Ask the live server, as another system would: a token, then POST /v1/authorize."""
    import base64

    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    token_request = urllib.request.Request(
        f"{base}/oauth/token",
        data=b"grant_type=client_credentials",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(token_request, timeout=10) as response:
        token = json.load(response)["access_token"]
    body = json.dumps({"subject": MEMBER, "purpose": purpose, "data_categories": list(categories)}).encode()
    request = urllib.request.Request(
        f"{base}/v1/authorize",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)  # type: ignore[no-any-return]


class TestStewardInTheBrowser:
    def test_a_steward_adds_a_deny_rule_after_its_preview_and_the_api_then_denies(
        self, pages: Pages, gov: Governance, live_server: str
    ) -> None:
        # The world before: a member's consent, two permitted research requests for health data,
        # and a rule asking for approval that has refused three service-planning requests.
        gov.consent()
        gov.rule(
            base=APPROVAL_RULE,
            purposes=["service-planning"],
            data_categories=["housing"],
            requesters=[GOVERNMENT],
            obligations={"aggregate_only": True, "min_cell_size": 10},
            labels=[],
            reason="Service planning with members' housing data needs the council's agreement",
        )
        for _ in range(2):
            assert gov.ask("research", "health")["decision"] == "permit"
        for _ in range(3):
            assert reason_codes(gov.ask("service-planning", "housing", requester=GOVERNMENT)) == [
                "approval_required"
            ]
        univ = gov.world.credentials(RESEARCHER, "authorize")

        pages.open("/web/")
        assert pages.path().startswith("/web/sign-in")
        pages.shot("sign-in")
        pages.sign_in(STEWARD_A)
        assert pages.path() == "/web/"
        pages.click("main .cards a")  # Nation A
        assert pages.path() == f"/web/communities/{NATION_A}/"
        pages.shot("steward-rules")

        pages.click("#add-rule")
        pages.tick("effect-deny")
        pages.tick("purposes-research", "data_categories-health")
        pages.type("#reason", "Nation A has not approved health research")
        pages.click("#preview-button")
        assert "would have changed 2 of the 5 decisions about members in the last 90 days" in pages.text(
            "#preview"
        )
        pages.shot("steward-rule-preview", at="#preview")
        pages.click("#save-rule")

        assert pages.path() == f"/web/communities/{NATION_A}/"
        assert "No one may use members' health data for research." in pages.text("#active-rules")
        pages.shot("steward-rules-after")
        decision = authorize_over_http(live_server, *univ, "research", "health")
        assert decision["decision"] == "deny" and reason_codes(decision) == ["community_rule"]

        pages.click("nav.tabs a[href$='/waiting']")
        assert "3 refused requests" in pages.text("#waiting-requests")
        pages.shot("steward-waiting")
        pages.click("#waiting-requests form button[type=submit]")
        assert "Step 2 of 2" in pages.text("#grant-warning")  # a confirmation and a note first
        pages.type("#notes", "Data sharing agreement GLA-2027")
        pages.shot("steward-approval-confirm")
        pages.click("#confirm-grant")
        assert "The approval is granted" in pages.text(".messages")
        assert gov.ask("service-planning", "housing", requester=GOVERNMENT)["decision"] == "permit"

        pages.click("nav.tabs a[href$='/approvals']")
        assert "Gla may use members' housing data for service planning." in pages.text("#approvals")
        pages.shot("steward-approvals")

        pages.click("nav.tabs a[href$='/decisions']")
        assert pages.find("svg.chart").is_displayed()
        assert MEMBER["value"] not in pages.text()
        pages.shot("steward-decisions")
        assert (
            "A rule of Nation A does not let Univ use Health for Research: "
            "“Nation A has not approved health research”." in pages.text("#decisions")
        )
        pages.shot("steward-decisions-reasons", at="#decisions")

        pages.click("nav.tabs a[href$='/']")
        pages.click("#active-rules a[href$='/retire']")
        pages.type("#reason", "Agreement reached with the university")
        pages.shot("steward-retire")
        pages.click("#confirm-retire")
        assert "Agreement reached with the university" in pages.text()
        pages.no_csp_violations()

    def test_a_steward_sets_labels_on_a_rule_previews_it_and_focus_follows(
        self, pages: Pages, gov: Governance
    ) -> None:
        gov.consent()
        for _ in range(2):
            assert gov.ask("research", "health")["decision"] == "permit"
        pages.sign_in(STEWARD_A)
        pages.open(f"/web/communities/{NATION_A}/rules/new")
        pages.tick("effect-require_approval", "purposes-research", "data_categories-health")

        # A refusing rule with a condition: refused at preview, focus on the error summary.
        pages.tick("effect-deny", "obligations-no_linkage")
        pages.type("#reason", "Health research needs the council's agreement")
        pages.click("#preview-button")
        assert pages.driver.switch_to.active_element.get_attribute("id") == "error-summary"
        assert "A rule that refuses carries no conditions" in pages.text("#error-summary")
        pages.shot("steward-rule-errors")

        # Ask the community first, with two labels: each shown with its icon and text.
        pages.tick("effect-require_approval")
        for family in pages.all("#labels-field details"):
            if family.get_attribute("open") is None:
                family.find_element("css selector", "summary").click()
        pages.tick("labels-tk-non-commercial", "labels-bc-research-use")
        icon = pages.find("label[for=labels-tk-non-commercial] img")
        assert icon.get_attribute("alt") == "" and pages.driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", icon
        )
        pages.shot("steward-rule-labels", at="#labels-field")
        pages.click("#preview-button")
        assert pages.driver.switch_to.active_element.get_attribute("id") == "preview"
        preview = pages.text("#preview")
        assert "would have changed 2 of the 2 decisions about members in the last 90 days" in preview
        assert "TK Non-Commercial: Not for commercial use" in preview and "BC Research Use" in preview
        assert "When allowed: not linked with other data." in preview
        pages.shot("steward-rule-labels-preview", at="#preview")
        pages.click("#save-rule")

        assert "TK Non-Commercial" in pages.text("#active-rules")
        assert gov.ask("research", "health")["decision"] == "deny"  # until the community approves
        pages.shot("steward-rules-labels", at="#active-rules")
        pages.no_csp_violations(refused_forms=True)

    def test_a_rules_labels_in_french(self, pages: Pages, gov: Governance) -> None:
        from selenium.webdriver.support.ui import Select

        gov.rule(base=APPROVAL_RULE)  # TK Non-Commercial, BC Consent Verified
        pages.sign_in(STEWARD_A)
        pages.open(f"/web/communities/{NATION_A}/")
        Select(pages.find("#language")).select_by_value("fr")
        pages.click("form.inline button[type=submit]")
        assert pages.find("html").get_attribute("lang") == "fr"
        rules = pages.text("#active-rules")
        assert "TK Non commercial : Pas d'usage commercial : ni vente, ni profit." in rules
        assert "BC Consentement vérifié" in rules
        icons = pages.all("#active-rules .labels img")
        assert len(icons) == 2 and all(
            pages.driver.execute_script("return arguments[0].naturalWidth > 0", icon) for icon in icons
        )
        pages.shot("steward-rules-labels-fr", at="#active-rules")
        pages.no_csp_violations()

    def test_a_steward_grants_a_data_access_request_with_a_note_and_a_confirmation(
        self, pages: Pages, gov: Governance
    ) -> None:
        gov.consent()
        rule = gov.rule(base=APPROVAL_RULE)
        assert reason_codes(gov.ask("research", "health")) == ["approval_required"]
        filed = gov.client.post(
            "/v1/access-requests",
            headers=gov.world.headers(RESEARCHER, "authorize"),
            json={
                "community": NATION_A,
                "rule_id": rule["id"],
                "purposes": ["research"],
                "data_categories": ["health"],
                "protocol": "We count diabetes cases by region, in cells of 10 or more.",
                "ethics_reference": "REB-2026-041",
                "benefit_plan": "Results go to the council first, with a plain-language report.",
                "requested_until": "2030-06-30T00:00:00Z",
            },
        )
        assert filed.status_code == 201, filed.get_json()

        pages.sign_in(STEWARD_A)
        pages.open(f"/web/communities/{NATION_A}/")
        pages.click("nav.tabs a[href$='/access-requests']")
        assert "waiting for a decision" in pages.text("#access-requests")
        pages.shot("steward-access-requests")
        pages.click("#access-requests a")
        assert "REB-2026-041" in pages.text("#request")
        pages.tick("decision-grant")
        pages.click("#decide")  # no note, no confirmation: refused, nothing recorded
        assert "Write a note" in pages.text() and "Tick the box" in pages.text()
        pages.tick("decision-grant", "confirm")
        pages.type("#note", "Council resolution 2026-14")
        pages.shot("steward-access-request", at="#decide-form")
        pages.click("#decide")
        assert "The request is granted" in pages.text(".messages")
        assert "granted" in pages.text("#access-requests")
        assert gov.ask("research", "health")["decision"] == "permit"
        pages.no_csp_violations(refused_forms=True)  # the first, incomplete form answered 400

    def test_a_steward_is_reminded_of_a_review_and_marks_a_duty_met(
        self, pages: Pages, gov: Governance
    ) -> None:
        from datetime import UTC, datetime, timedelta

        soon = (datetime.now(UTC) + timedelta(days=20)).isoformat()
        gov.consent()
        gov.rule(base=APPROVAL_RULE)
        approval = gov.approval()
        agreement = assert_ok(
            gov.client.post(
                f"/v1/communities/{NATION_A}/agreements",
                headers=gov.steward(),
                json={
                    "title": "Health research with the university",
                    "parties": [RESEARCHER],
                    "legal_authority": "Band Council Resolution 2026-14",
                    "review_at": soon,
                    "approvals": [approval["id"]],
                    "duties": [
                        {
                            "kind": "return_results",
                            "description": "Aggregate tables to the council",
                            "due_at": soon,
                            "owed_by": RESEARCHER,
                        }
                    ],
                },
            ),
            201,
        )
        (duty,) = agreement["duties"]

        pages.sign_in(STEWARD_A)
        pages.open(f"/web/communities/{NATION_A}/")
        assert "Health research with the university" in pages.text("#agreements-due")
        pages.click("nav.tabs a[href$='/agreements']")
        assert "Aggregate tables to the council" in pages.text(f"#duty-{duty['id']}")
        pages.shot("steward-agreements")
        pages.click(f"#met-{duty['id']}")  # no note, no confirmation: refused, nothing recorded
        assert "Write a note" in pages.text() and "Tick the box" in pages.text()
        pages.type(f"#note-{duty['id']}", "Tables presented at the assembly")
        pages.tick(f"confirm-{duty['id']}")
        pages.click(f"#met-{duty['id']}")
        assert "The duty is marked met" in pages.text(".messages")
        assert "Tables presented at the assembly" in pages.text(f"#duty-{duty['id']}")
        pages.no_csp_violations(refused_forms=True)  # the first, incomplete form answered 400

    def test_a_steward_of_b_cannot_open_a_pages_and_a_form_without_its_token_is_refused(
        self, pages: Pages, gov: Governance
    ) -> None:
        pages.sign_in(STEWARD_B)
        pages.open(f"/web/communities/{NATION_A}/")
        assert pages.text("h1") == "You may not open this page"
        pages.shot("steward-forbidden")

        pages.open(f"/web/communities/{NATION_B}/rules/new")
        pages.tick("effect-deny")
        pages.tick("purposes-research", "data_categories-health")
        pages.type("#reason", "x")
        pages.driver.execute_script("document.querySelector('#rule-form [name=csrf_token]').remove()")
        pages.click("#preview-button")
        assert pages.text("h1") == "There is a problem"
        assert "CSRF" in pages.text("#error-message")

    def test_the_keyboard_reaches_the_skip_link_first_and_focus_is_visible(
        self, pages: Pages, gov: Governance
    ) -> None:
        from selenium.webdriver.common.keys import Keys

        pages.sign_in(STEWARD_A)
        pages.find("body").send_keys(Keys.TAB)
        focused = pages.driver.switch_to.active_element
        assert focused.get_attribute("class") == "skip" and focused.is_displayed()
        outline = pages.driver.execute_script(
            "const e = document.activeElement; const s = getComputedStyle(e);"
            "return [s.outlineStyle, s.backgroundColor, s.boxShadow];"
        )
        assert outline[0] != "none" or outline[2] != "none"


class TestIntakeInTheBrowser:
    def test_a_worker_records_a_consent_and_prints_the_receipt(
        self, pages: Pages, gov: Governance, client: FlaskClient
    ) -> None:
        pages.sign_in(WORKER)
        pages.click("header nav a[href='/web/intake/consents/new']")
        pages.tick("setting-office")
        pages.click("#continue")
        pages.type("#value", MEMBER["value"])
        pages.tick(
            "communities-nation-a",
            "purposes-service-delivery",
            "purposes-service-planning",
            "data_categories-housing",
            "data_categories-health",
            "recipients-gla",
        )
        pages.driver.execute_script("document.getElementById('valid_until').value = '2030-06-30'")
        pages.tick("method-verbal")
        pages.type("#notes", "Interpreter present")
        pages.shot("intake-record", at="#purposes-field")
        pages.click("#record")

        assert "/receipt" in pages.path()
        assert (
            "the person agreed that Gla and Outreach-Org may use information about their health and "
            "housing for service delivery and service planning." in pages.text("#receipt-summary")
        )
        assert "30 June 2030" in pages.text("#receipt-summary")
        assert pages.find("svg.qr").is_displayed()
        pages.shot("intake-receipt")
        pages.driver.execute_script("window.print = () => { window.__printed = true; };")
        print_button = pages.find("#print")
        assert print_button.is_displayed()  # shown by web.js, which the CSP allowed to run
        print_button.click()
        assert pages.driver.execute_script("return window.__printed === true")
        pages.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        assert not pages.find("header.site").is_displayed() and pages.find("svg.qr").is_displayed()
        pdf = pages.driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
        assert len(pdf["data"]) > 1000
        pages.shot("intake-receipt-print")
        pages.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

        consent_id = pages.path().split("/")[-2]
        consent = assert_ok(
            client.get(
                f"/v1/consents/{consent_id}", headers=gov.world.headers("outreach-org", "consents:read")
            )
        )
        assert consent["recipients"] == ["gla", "outreach-org"] and consent["communities"] == [NATION_A]
        pages.no_csp_violations()

    def test_a_worker_finds_a_consent_and_withdraws_it_in_two_steps(
        self, pages: Pages, gov: Governance
    ) -> None:
        gov.consent()
        pages.sign_in(WORKER)
        pages.click("header nav a[href='/web/intake/find']")
        pages.type("#value", MEMBER["value"])
        pages.click("#find")
        assert "in force" in pages.text("#consents")
        pages.shot("intake-find")
        pages.click("#consents a.danger-link")
        assert "Step 2 of 2" in pages.text("#withdraw-warning")
        pages.type("#reason", "The person asked to withdraw")
        pages.shot("intake-withdraw")
        pages.click("#confirm-withdraw")
        assert "The consent is withdrawn." in pages.text(".messages")
        assert pages.text("#receipt-status") == "withdrawn"
        assert "Reason given: “The person asked to withdraw”" in pages.text("#withdrawn")
        assert not pages.all("#how-to-withdraw") and not pages.all("#withdraw")
        pages.shot("intake-withdrawn-receipt")
        pages.no_csp_violations()

    def test_the_form_in_french(self, pages: Pages, gov: Governance) -> None:
        from selenium.webdriver.support.ui import Select

        pages.sign_in(WORKER)
        pages.open("/web/intake/consents/new?setting=office")
        Select(pages.find("#language")).select_by_value("fr")
        pages.click("form.inline button[type=submit]")
        assert pages.find("html").get_attribute("lang") == "fr"
        assert "Prestation de services" in pages.text("#purposes-field")
        assert "Fournir un service directement à la personne." in pages.text("#purposes-field")
        pages.shot("intake-record-fr")


class TestSafeguardsInTheBrowser:
    """Issue 11: where consent is given decides what is offered; sensitive information is asked
    about on its own; a protected purpose, where allowed, needs its own confirmation step."""

    def test_a_crisis_setting_offers_only_its_purposes_and_sensitive_categories_stand_alone(
        self, pages: Pages, gov: Governance
    ) -> None:
        pages.sign_in(WORKER)
        pages.click("header nav a[href='/web/intake/consents/new']")
        assert not pages.all("input[name=purposes]")  # the setting comes first
        pages.shot("intake-setting")
        pages.tick("setting-street-outreach")
        pages.click("#continue")

        assert "This is a crisis setting." in pages.text("#setting-summary")
        offered = [box.get_attribute("value") for box in pages.all("#purposes-field input[name=purposes]")]
        assert offered == ["service-delivery", "care-coordination", "referral"]
        pages.shot("intake-record-crisis", at="main h1")

        general = [box.get_attribute("value") for box in pages.all("#data_categories-field input")]
        assert "demographic" in general and "nationality" not in general
        assert "Citizenship, nationality and immigration status." in pages.text("#sensitive-field")
        pages.type("#value", MEMBER["value"])
        pages.tick(
            "purposes-referral", "data_categories-demographic", "data_categories-housing", "method-verbal"
        )
        pages.shot("intake-sensitive", at="#sensitive-field")
        pages.click("#record")

        assert "/receipt" in pages.path()
        assert "not included" in pages.text("#sensitive-nationality")
        assert "not included" in pages.text("#sensitive-indigenous-identity")
        pages.shot("intake-receipt-sensitive")
        pages.no_csp_violations()

    @pytest.mark.parametrize("policy_changes", [ALLOW_LAW_ENFORCEMENT])
    def test_a_protected_purpose_is_recorded_only_after_its_confirmation_step(
        self, pages: Pages, gov: Governance, client: FlaskClient
    ) -> None:
        pages.sign_in(WORKER)
        pages.open("/web/intake/consents/new?setting=office")
        assert "These uses can put the person at serious risk." in pages.text("#protected-field")
        pages.type("#value", MEMBER["value"])
        pages.tick("protected-law-enforcement", "data_categories-justice", "method-written")
        pages.shot("intake-protected", at="#protected-field")
        pages.click("#record")

        assert pages.text("h1") == "Confirm a protected purpose"
        assert "Nothing is recorded yet." in pages.text("#protected-warning")
        pages.click("#confirm-protected")  # neither the person's agreement nor a witness
        assert "the person's explicit agreement is needed" in pages.text("#confirm-field")
        assert "a second worker must witness the consent" in pages.text("#witness-field")
        assert "Law enforcement" in pages.text("#error-summary")
        pages.shot("intake-protected-errors")

        pages.tick("confirm-law-enforcement")
        pages.type("#witness", "Wanda Witness")
        pages.shot("intake-protected-confirm", at="#confirm-field")
        pages.click("#confirm-protected")
        assert "/receipt" in pages.path()
        consent_id = pages.path().split("/")[-2]
        consent = assert_ok(
            client.get(
                f"/v1/consents/{consent_id}", headers=gov.world.headers("outreach-org", "consents:read")
            )
        )
        assert consent["purposes"] == ["law-enforcement"]
        assert (
            consent["evidence"]["witness"] == "Wanda Witness" and consent["evidence"]["setting"] == "office"
        )
        pages.no_csp_violations(refused_forms=True)
