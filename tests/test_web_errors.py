"""The people's pages answer a person in HTML (issue 17 item 4): a mistyped address under /web/ is a
page, not the API's JSON; and the operator's own organization is never offered as a recipient."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from test_web_pages import app_config, database_start, gov, governance_seeds, seed, worker

from consent_service.views.security import HTML_CSP

__all__ = [
    "app_config",
    "database_start",
    "gov",
    "governance_seeds",
    "seed",
    "worker",
]  # test_web_pages' fixtures, used here


def assert_html_page(response, status: int, words: str) -> str:
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == HTML_CSP
    text = response.get_data(as_text=True)
    assert text.lstrip().lower().startswith("<!doctype html")
    assert words in text
    assert '"error"' not in text
    return text


def test_an_unknown_address_under_web_is_a_page(client: FlaskClient) -> None:
    for path in ("/web/no-such-page", "/web/intake/nothing/here", "/web/communities/x/y/z"):
        assert_html_page(client.get(path), 404, "There is no page at this address.")


def test_a_signed_in_person_gets_the_page_in_their_language(worker: FlaskClient) -> None:
    text = assert_html_page(worker.get("/web/intake/no-such-page"), 404, "There is no page at this address.")
    assert "Sign out" in text or "sign-out" in text  # the site's own frame, with the person signed in
    worker.get("/web/language?lang=fr")
    french = worker.get("/web/intake/no-such-page", headers={"Accept-Language": "fr"})
    assert french.status_code == 404 and french.mimetype == "text/html"


def test_a_method_no_page_has_is_a_page_with_allow(client: FlaskClient) -> None:
    response = client.delete("/web/sign-in")
    assert_html_page(response, 405, "This page cannot be used this way.")
    assert "GET" in response.headers["Allow"]


def test_the_api_still_answers_json(client: FlaskClient) -> None:
    for path in ("/v1/no-such-thing", "/webhooks", "/website"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "application/json", path


def test_the_operator_is_never_a_recipient_choice(app: Flask, worker: FlaskClient, world) -> None:
    world.admin()  # the admin organization exists, with a client
    page = worker.get("/web/intake/consents/new?setting=office")
    assert page.status_code == 200
    choices = re.findall(r'name="recipients" value="([^"]+)"', page.get_data(as_text=True))
    assert choices and "admin" not in choices
    assert {"outreach-org"} <= set(choices)
