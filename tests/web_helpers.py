"""People and page helpers for the web page tests (Flask test client and browser).

The world is the governance tests' (Nation A and B with their councils, univ, outreach-org,
gla), set up through the API; people are made through the domain, as the CLI makes them.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import CHEAP_PASSWORDS as CHEAP_PASSWORDS  # the modules that name the costs
from flask.testing import FlaskClient
from governance_helpers import COUNCIL_A, COUNCIL_B, PROVIDER
from werkzeug.test import TestResponse

from consent_service.config import DEFAULT_POLICIES_DIR
from consent_service.services import users

PASSWORD = "a long enough passphrase"
STEWARD_A = "ama@nation-a.example"
STEWARD_B = "bea@nation-b.example"
WORKER = "wes@outreach.example"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# A deployment that allows law enforcement as a protected purpose, in an office only (the built-in
# policy allows no protected purpose at all).
ALLOW_LAW_ENFORCEMENT = {
    "[protected_purposes.law-enforcement]\nallowed = false": (
        '[protected_purposes.law-enforcement]\nallowed = true\nsettings = ["office"]'
    )
}


def policies_with(tmp_path: Path, changes: dict[str, str]) -> str:
    """A copy of policies/ whose deployment.toml has each ``old`` text replaced by ``new``."""
    policies = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES_DIR, policies)
    deployment = policies / "deployment.toml"
    text = deployment.read_text(encoding="utf-8")
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    deployment.write_text(text, encoding="utf-8")
    return str(policies)


def make_people(world: Any) -> None:
    """A steward of each council and an intake worker of outreach-org (the orgs must exist)."""
    for email, name, org, roles in (
        (STEWARD_A, "Ama Steward", COUNCIL_A, ["steward"]),
        (STEWARD_B, "Bea Steward", COUNCIL_B, ["steward"]),
        (WORKER, "Wes Worker", PROVIDER, ["intake"]),
    ):
        users.create_user(
            world.services,
            caller=None,
            email=email,
            name=name,
            organization=org,
            roles=roles,
            password=PASSWORD,
            language="en",
            now=datetime.now(UTC),
        )


def csrf_token(client: FlaskClient, path: str = "/web/sign-in") -> str:
    """This session's CSRF token, as a page of the session carries it."""
    response = client.get(path)
    match = CSRF.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    return client.post(
        "/web/sign-in", data={"email": email, "password": password, "csrf_token": csrf_token(client)}
    )


def signed_in(client: FlaskClient, email: str) -> FlaskClient:
    response = sign_in(client, email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def post_form(client: FlaskClient, path: str, data: dict[str, Any]) -> TestResponse:
    """POST a form with this session's CSRF token, as the browser would."""
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/web/")})


def text_of(response: TestResponse) -> str:
    return response.get_data(as_text=True)
