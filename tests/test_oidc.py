"""Single sign-on through a real, independent OpenID provider (issue 17 item 1).

The provider is panva's oidc-provider from npm (OpenID Certified), run with node on loopback by
tests/oidc/provider.mjs; nothing of it is written here. The browser is a ``requests`` session at
the provider (its login and consent pages, its sign-out page) and the Flask test client here; each
redirect is followed to whichever side it names. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from api_helpers import table_counts
from conftest import config_for
from flask import Flask
from flask.testing import FlaskClient
from oidc_helpers import ACCOUNTS, CLIENT_ID, CLIENT_SECRET, free_port, running_provider
from web_helpers import CHEAP_PASSWORDS, PASSWORD, csrf_token, post_form, sign_in, text_of
from werkzeug.test import TestResponse

from consent_service.core.wire import AuditTag
from consent_service.services import users
from consent_service.storage import users as user_store
from consent_service.storage.models import AuditEntry, UserAccount

HERE = "http://localhost"  # the Flask test client's origin (url_for(..., _external=True))


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The provider on a free loopback port, until the module's tests are done."""
    with running_provider(tmp_path_factory.mktemp("oidc"), free_port(), HERE) as running:
        yield running


def settings_for(provider: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        **CHEAP_PASSWORDS,
        "OIDC_ISSUER": provider["issuer"],
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_ORGANIZATION_CLAIM": "org",
        "OIDC_ROLES_CLAIM": "roles",
        "OIDC_DISPLAY_NAME": "Test Provider",
        **more,
    }


@pytest.fixture
def app_config(database_config: dict[str, Any], tmp_path: Path, provider: dict[str, Any]) -> dict[str, Any]:
    return {**config_for(database_config, tmp_path), **settings_for(provider)}


@pytest.fixture
def seeded(world: Any, provider: dict[str, Any]) -> Any:
    """council-a and clinic exist here; the provider's accounts are as ACCOUNTS says."""
    world.org("council-a", "community-governance")
    world.org("clinic")
    provider["accounts"].write_text(json.dumps(ACCOUNTS), encoding="utf-8")
    return world


class Forms(HTMLParser):
    """The forms of a page: action, and the named inputs' values (buttons outside a form that
    name it with ``form=`` count as its own, as the provider's sign-out page has them)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            form = {"action": a.get("action") or "", "fields": {}}
            self.forms.append(form)
            if a.get("id"):
                self._by_id[str(a["id"])] = form
        elif tag in {"input", "button"} and a.get("name"):
            owner = self._by_id.get(str(a.get("form"))) if a.get("form") else (self.forms or [None])[-1]
            if owner is not None and str(a["name"]) not in owner["fields"]:
                owner["fields"][str(a["name"])] = a.get("value") or ""


def at_provider(browser: requests.Session, url: str, sub: str) -> str:
    """Go through the provider's pages from ``url`` as ``sub`` (login, consent, sign-out
    confirmation) until it sends the browser back here; that URL."""
    response = browser.get(url, allow_redirects=False, timeout=10)
    for _ in range(20):
        if response.is_redirect:
            target = urljoin(response.url, response.headers["Location"])
            if target.startswith(HERE):
                return target
            response = browser.get(target, allow_redirects=False, timeout=10)
            continue
        assert response.status_code == 200, (response.status_code, response.text[:500])
        parser = Forms()
        parser.feed(response.text)
        assert parser.forms, response.text[:500]
        form = parser.forms[0]
        fields = dict(form["fields"])
        if fields.get("prompt") == "login":
            fields.update(login=sub, password="any")
        response = browser.post(
            urljoin(response.url, form["action"]), data=fields, allow_redirects=False, timeout=10
        )
    raise AssertionError("the provider never sent the browser back")


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def provider_sign_in(client: FlaskClient, sub: str, browser: requests.Session | None = None) -> TestResponse:
    """Click "Sign in with ...", sign in at the provider as ``sub``, and land back here: the answer
    of the callback."""
    start = client.get("/web/sign-in/oidc")
    assert start.status_code == 302, text_of(start)
    back = at_provider(browser or requests.Session(), start.headers["Location"], sub)
    return client.get(local(back))


def account_of(app: Flask, issuer: str, sub: str) -> UserAccount | None:
    with _sessions(app) as session:
        user = user_store.by_idp(session, issuer, sub)
        if user is not None:
            session.expunge(user)
        return user


def _services(app: Flask) -> Any:
    from consent_service.container import EXTENSION

    return app.extensions[EXTENSION]


def _sessions(app: Flask) -> Any:
    return _services(app).sessions()


def tags_since(app: Flask, seq: int) -> list[tuple[str, str | None, str | None]]:
    with _sessions(app) as session:
        rows = session.query(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq).all()
        return [(row.tag, row.object_id, row.payload.get("reason")) for row in rows]


def last_seq(app: Flask) -> int:
    with _sessions(app) as session:
        return int(session.query(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1).scalar() or 0)


def password_person(services: Any, email: str) -> users.Person:
    """An intake worker of clinic who signs in with a password (made as the operator makes one)."""
    return users.create_user(
        services,
        caller=None,
        email=email,
        name="Password Person",
        organization="clinic",
        roles=["intake"],
        password=PASSWORD,
        language="en",
        now=datetime.now(UTC),
    )


def test_sign_in_makes_the_account_and_the_next_sign_in_follows_changed_roles(
    app: Flask, client: FlaskClient, provider: dict[str, Any], seeded: Any
) -> None:
    page = client.get("/web/sign-in")
    assert "Sign in with Test Provider" in text_of(page) and 'id="password"' in text_of(page)
    before = last_seq(app)
    answer = provider_sign_in(client, "wes")
    assert answer.status_code == 302 and answer.headers["Location"] == "/web/"
    assert "Wes Worker" in text_of(client.get("/web/"))
    made = account_of(app, provider["issuer"], "wes")
    assert made is not None and made.organization_id == "clinic" and made.password_hash == ""
    assert set(made.roles.split()) == {"consents:write", "consents:read"}  # "payroll" is not a role here
    assert [t for t, _, _ in tags_since(app, before)] == [AuditTag.USER_CREATED, AuditTag.USER_SIGNED_IN]
    assert client.get("/web/intake/consents/new").status_code == 200

    accounts = json.loads(provider["accounts"].read_text())
    accounts["wes"]["roles"] = ["steward"]
    provider["accounts"].write_text(json.dumps(accounts))
    again = app.test_client()
    before = last_seq(app)
    assert provider_sign_in(again, "wes").status_code == 302
    changed = account_of(app, provider["issuer"], "wes")
    assert changed is not None and changed.id == made.id
    assert set(changed.roles.split()) == {"rules:write", "community:read"}
    assert [t for t, _, _ in tags_since(app, before)] == [AuditTag.USER_CHANGED, AuditTag.USER_SIGNED_IN]
    assert again.get("/web/intake/consents/new").status_code == 403


@pytest.mark.parametrize(
    ("sub", "reason", "words"),
    [
        ("stranger", "unknown-organization", "names an organization this service does not know"),
        ("roleless", "no-known-role", "gives you no role on these pages"),
    ],
)
def test_an_unknown_organization_or_no_known_role_is_refused_with_a_clear_page(
    app: Flask, client: FlaskClient, provider: dict[str, Any], seeded: Any, sub: str, reason: str, words: str
) -> None:
    before = last_seq(app)
    answer = provider_sign_in(client, sub)
    assert answer.status_code == 403 and words in text_of(answer)
    assert account_of(app, provider["issuer"], sub) is None
    assert tags_since(app, before) == [(AuditTag.USER_SIGN_IN_FAILED, None, reason)]
    assert client.get("/web/").status_code == 302  # not signed in


def test_a_person_disabled_here_is_refused_though_the_provider_says_yes(
    app: Flask, client: FlaskClient, provider: dict[str, Any], seeded: Any
) -> None:
    assert provider_sign_in(client, "ana").status_code == 302
    users.disable(seeded.services, email=ACCOUNTS["ana"]["email"], now=datetime.now(UTC))
    assert client.get("/web/").status_code == 302  # the session ended at once
    before = last_seq(app)
    answer = provider_sign_in(app.test_client(), "ana")
    assert answer.status_code == 403 and "switched off" in text_of(answer)
    user = account_of(app, provider["issuer"], "ana")
    assert user is not None and tags_since(app, before) == [
        (AuditTag.USER_SIGN_IN_FAILED, user.id, "disabled")
    ]


def test_a_wrong_state_a_missing_code_or_another_issuer_is_refused_and_nothing_is_written(
    app: Flask, client: FlaskClient, provider: dict[str, Any], seeded: Any, caplog: pytest.LogCaptureFixture
) -> None:
    start = client.get("/web/sign-in/oidc")
    back = at_provider(requests.Session(), start.headers["Location"], "ana")
    query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    assert set(query) >= {"code", "state", "iss"}
    counts = table_counts(app)
    for changed in (
        {**query, "state": "not-the-state"},
        {k: v for k, v in query.items() if k != "code"},
        {**query, "iss": "http://127.0.0.1:1"},
        {k: v for k, v in query.items() if k != "iss"},  # the provider says it always sends iss
    ):
        answer = client.get(f"/web/oidc/callback?{urlencode(changed)}")
        assert answer.status_code == 400, changed
        assert "could not be completed" in text_of(answer)
    assert table_counts(app) == counts
    # The operator sees what kind of failure each was, never the code or the state.
    failures = [r for r in caplog.records if r.getMessage() == "oidc sign-in failed"]
    assert [getattr(r, "failure", None) for r in failures] == ["MismatchingStateError", *["ValueError"] * 3]
    assert not any(query["code"] in str(vars(r)) or query["state"] in str(vars(r)) for r in caplog.records)
    # The untouched answer still signs in (the refusals above did not use its state up...).
    assert client.get(f"/web/oidc/callback?{urlencode(query)}").status_code == 302
    # ... and it cannot be used twice.
    replay = app.test_client().get(f"/web/oidc/callback?{urlencode(query)}")
    assert replay.status_code == 400


def test_sign_out_ends_the_session_here_and_at_the_provider(
    app: Flask, client: FlaskClient, provider: dict[str, Any], seeded: Any
) -> None:
    browser = requests.Session()
    assert provider_sign_in(client, "ana", browser).status_code == 302
    page = client.get("/web/")
    assert f"form-action 'self' {provider['issuer']}" in page.headers["Content-Security-Policy"]
    answer = post_form(client, "/web/sign-out", {})
    assert answer.status_code == 302
    end = answer.headers["Location"]
    assert end.startswith(provider["metadata"]["end_session_endpoint"])
    query = parse_qs(urlsplit(end).query)
    assert query["post_logout_redirect_uri"] == [f"{HERE}/web/sign-in"] and query["id_token_hint"]
    assert client.get("/web/").status_code == 302  # signed out here
    assert at_provider(browser, end, "ana") == f"{HERE}/web/sign-in"
    # Signed out at the provider too: the next sign-in asks for the login again.
    start = client.get("/web/sign-in/oidc")
    login_page = browser.get(start.headers["Location"], allow_redirects=True, timeout=10)
    assert 'name="login"' in login_page.text


def test_an_existing_password_account_with_the_same_email_is_not_taken_over(
    app: Flask, client: FlaskClient, provider: dict[str, Any], seeded: Any
) -> None:
    owner = password_person(seeded.services, ACCOUNTS["ana"]["email"])
    answer = provider_sign_in(client, "ana")
    assert answer.status_code == 403 and "Ask the operator of this service to link them" in text_of(answer)
    assert client.get("/web/").status_code == 302
    with _sessions(app) as session:
        kept = session.get(UserAccount, owner.id)
        assert kept is not None and kept.idp_subject is None and kept.organization_id == "clinic"
    assert sign_in(app.test_client(), owner.email).status_code == 302  # the owner's password still works


@contextmanager
def app_with(
    database: dict[str, Any], tmp_path: Path, provider: dict[str, Any], **more: Any
) -> Iterator[Any]:
    """An app of its own for ``provider`` with ``more`` settings, and its world (clinic exists)."""
    from conftest import World, dispose

    from consent_service import create_app

    app = create_app({**config_for(database, tmp_path), **settings_for(provider, **more)})
    try:
        world = World(app, app.test_client())
        world.org("clinic")
        yield world
    finally:
        dispose(app)


def test_claims_only_at_the_userinfo_endpoint_are_read_there(
    database_config: dict[str, Any], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("userinfo")
    with (
        running_provider(directory, free_port(), HERE, claims_at_userinfo=True) as other,
        app_with(database_config, tmp_path, other) as world,
    ):
        answer = provider_sign_in(world.app.test_client(), "wes")
        assert answer.status_code == 302, text_of(answer)
        made = account_of(world.app, other["issuer"], "wes")
        assert made is not None and made.organization_id == "clinic"
        assert set(made.roles.split()) == {"consents:write", "consents:read"}


def test_with_local_passwords_off_only_the_provider_signs_in(
    database_config: dict[str, Any], tmp_path: Path, provider: dict[str, Any]
) -> None:
    with app_with(database_config, tmp_path, provider, LOCAL_PASSWORDS=False) as world:
        password_person(world.services, "pat@clinic.example")
        client = world.app.test_client()
        page = text_of(client.get("/web/sign-in"))
        assert 'id="password"' not in page and "Sign in with Test Provider" in page
        token = csrf_token(client)  # the language switch's form carries it
        refused = client.post(
            "/web/sign-in", data={"email": "pat@clinic.example", "password": PASSWORD, "csrf_token": token}
        )
        assert refused.status_code == 401 and client.get("/web/").status_code == 302
        provider["accounts"].write_text(json.dumps(ACCOUNTS), encoding="utf-8")
        assert provider_sign_in(client, "wes").status_code == 302
        assert client.get("/web/").status_code == 200


def test_a_session_begun_at_the_provider_ends_after_its_longest_time_however_used(
    app: Flask, client: FlaskClient, provider: dict[str, Any], seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from consent_service.web import session as web_session

    assert provider_sign_in(client, "ana").status_code == 302
    minutes = int(_services(app).settings["OIDC_SESSION_MAX_MINUTES"])
    just_before = datetime.now(UTC) + timedelta(minutes=minutes - 1)
    monkeypatch.setattr(web_session, "now", lambda: just_before)
    assert client.get("/web/").status_code == 200
    monkeypatch.setattr(web_session, "now", lambda: just_before + timedelta(minutes=2))
    assert client.get("/web/").status_code == 302  # asked to sign in again
    monkeypatch.undo()
    assert client.get("/web/").status_code == 302  # and the session is gone, not only paused


def test_the_page_asked_for_is_reached_after_signing_in_and_never_another_site(
    client: FlaskClient, provider: dict[str, Any], seeded: Any
) -> None:
    for asked, reached in (
        ("/web/intake/consents/new", "/web/intake/consents/new"),
        ("//evil.example/", "/web/"),
    ):
        start = client.get(f"/web/sign-in/oidc?{urlencode({'next': asked})}")
        back = at_provider(requests.Session(), start.headers["Location"], "wes")
        answer = client.get(local(back))
        assert answer.status_code == 302 and answer.headers["Location"] == reached


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"OIDC_ISSUER": "http://idp.example", "OIDC_CLIENT_ID": "c"}, "CONSENT_OIDC_ISSUER"),
        ({"OIDC_ISSUER": "https://idp.example"}, "CONSENT_OIDC_CLIENT_ID"),
    ],
)
def test_the_service_does_not_start_with_an_unusable_provider_setting(
    database_config: dict[str, Any], tmp_path: Path, settings: dict[str, Any], named: str
) -> None:
    from consent_service import create_app

    with pytest.raises(ValueError, match=named):
        create_app({**config_for(database_config, tmp_path), **settings})
