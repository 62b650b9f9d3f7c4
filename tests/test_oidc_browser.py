"""Single sign-on in headless Chromium (issue 17's check: "sign-in through an OpenID provider in
Chromium"): the provider's own pages, the redirects between the two origins, and the pages'
Content-Security-Policy as a real browser enforces it (a sign-out form whose answer redirects to
the provider is held to ``form-action``). The provider is tests/oidc_helpers.py's; the browser
and the live server are tests/test_web_browser.py's. SQLite and PostgreSQL, as every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import config_for
from oidc_helpers import ACCOUNTS, CLIENT_ID, CLIENT_SECRET, free_port, running_provider
from test_web_browser import browser, live_server  # noqa: F401  (fixtures)
from web_helpers import CHEAP_PASSWORDS


@pytest.fixture
def provider_port() -> int:
    return free_port()


@pytest.fixture
def app_config(database_config: dict[str, Any], tmp_path: Path, provider_port: int) -> dict[str, Any]:
    return {
        **config_for(database_config, tmp_path),
        **CHEAP_PASSWORDS,
        "OIDC_ISSUER": f"http://127.0.0.1:{provider_port}",
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_ORGANIZATION_CLAIM": "org",
        "OIDC_ROLES_CLAIM": "roles",
        "OIDC_DISPLAY_NAME": "Council account",
    }


@pytest.fixture
def provider(live_server: str, provider_port: int, tmp_path: Path, world: Any) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The provider, for the live server's pages; council-a exists here."""
    world.org("council-a", "community-governance")
    directory = tmp_path / "oidc"
    directory.mkdir()
    with running_provider(directory, provider_port, live_server) as running:
        yield running


def wait_for(driver: Any, condition: Any) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(condition)


def press(driver: Any, css: str) -> None:
    """Click the element, found afresh until the click lands (a page still replacing itself
    makes an element found a moment earlier stale)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked(d: Any) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait_for(driver, clicked)


def test_sign_in_and_out_through_the_provider_in_chromium(
    browser: Any,  # noqa: F811
    live_server: str,  # noqa: F811
    provider: dict[str, Any],
) -> None:
    from selenium.webdriver.common.by import By

    issuer = provider["issuer"]
    browser.get(f"{live_server}/web/sign-in")
    assert "Sign in with Council account" in browser.find_element(By.ID, "sign-in-oidc").text
    press(browser, "#sign-in-oidc")
    wait_for(browser, lambda d: d.current_url.startswith(issuer) and d.find_elements(By.NAME, "login"))
    browser.find_element(By.NAME, "login").send_keys("ana")
    browser.find_element(By.NAME, "password").send_keys("anything")
    press(browser, "button[type=submit]")
    # The provider asks to consent once; then the browser is back here, signed in.
    consent = "input[name=prompt][value=consent]"
    wait_for(
        browser, lambda d: d.current_url.startswith(live_server) or d.find_elements(By.CSS_SELECTOR, consent)
    )
    if not browser.current_url.startswith(live_server):
        press(browser, "button[type=submit]")
    wait_for(browser, lambda d: d.current_url == f"{live_server}/web/")
    assert ACCOUNTS["ana"]["name"] in browser.page_source

    # Sign out: the form's answer redirects to the provider (allowed by form-action), whose
    # confirmation sends the browser back to the sign-in page.
    press(browser, "#sign-out")
    wait_for(browser, lambda d: d.current_url.startswith(issuer) and d.find_elements(By.NAME, "logout"))
    press(browser, "button[name=logout]")
    wait_for(browser, lambda d: d.current_url.startswith(f"{live_server}/web/sign-in"))
    browser.get(f"{live_server}/web/")
    assert browser.current_url.startswith(f"{live_server}/web/sign-in")  # signed out here
    browser.get(f"{live_server}/web/sign-in/oidc")
    wait_for(browser, lambda d: d.current_url.startswith(issuer) and d.find_elements(By.NAME, "login"))
