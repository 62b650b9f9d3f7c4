"""Bad input (contract, "Errors"): every kind is a 4xx in the contract's body and writes nothing.

Each POST endpoint is described once (a valid body, its required, list, typed, coded, dated and
subject fields); the bad requests are generated from that description, so every endpoint gets
every kind of bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from api_helpers import (
    CONSENT,
    SUBJECT,
    assert_error,
    assert_ok,
    body_with,
    record_consent,
    rough_sleeper_orgs,
    unchanged_tables,
    without,
)
from conftest import module_world

ADMIN = "admin"
TERMS = {key: CONSENT[key] for key in ("purposes", "data_categories", "recipients", "evidence")}
TERM_TYPES = {
    "purposes": ["service-delivery", 7],
    "data_categories": "health",
    "recipients": {"gla": True},
    "evidence": "verbal",
    "communities": "nation-a",
    "expires_at": 1_900_000_000,
}
TERM_CODES = {
    "purposes": ["service-delivery", "no-such-purpose"],
    "data_categories": ["no-such-category"],
    "recipients": ["gla", "no-such-org"],
    "communities": ["no-such-community"],
}


@dataclass(frozen=True)
class Endpoint:
    """One POST endpoint and what its body is made of."""

    name: str
    path: str  # may name {consent_id}
    scopes: tuple[str, ...]
    body: dict[str, Any]
    required: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()  # must be non-empty, at most 100 items
    wrong: dict[str, Any] = field(default_factory=dict)  # field -> a value of the wrong type or shape
    codes: dict[str, Any] = field(default_factory=dict)  # field -> a value naming an unknown code
    datetimes: tuple[str, ...] = ()
    subject: bool = False


ENDPOINTS = [
    Endpoint(
        "organizations",
        "/v1/organizations",
        (ADMIN,),
        {"id": "new-org", "name": "New Org", "type": "other"},
        required=("id", "name", "type"),
        wrong={"id": 12, "name": ["New Org"], "type": "charity"},
    ),
    Endpoint(
        "clients",
        "/v1/clients",
        (ADMIN,),
        {"organization": "outreach-org", "name": "case system", "scopes": ["authorize"]},
        required=("organization", "name", "scopes"),
        lists=("scopes",),
        wrong={"organization": {"id": "outreach-org"}, "name": 5, "scopes": ["root"]},
        codes={"organization": "no-such-org"},
    ),
    Endpoint(
        "communities",
        "/v1/communities",
        (ADMIN,),
        {"id": "nation-b", "name": "Nation B", "stewards": ["outreach-org"]},
        required=("id", "name", "stewards"),
        lists=("stewards",),
        wrong={"id": "not a code", "name": None, "stewards": "outreach-org"},
        codes={"stewards": ["outreach-org", "no-such-org"]},
    ),
    Endpoint(
        "consents",
        "/v1/consents",
        ("consents:write",),
        CONSENT,
        required=("subject", "purposes", "data_categories", "recipients", "evidence"),
        lists=("purposes", "data_categories", "recipients"),
        wrong={**TERM_TYPES, "subject": "C-1042"},
        codes=TERM_CODES,
        datetimes=("expires_at",),
        subject=True,
    ),
    Endpoint(
        "revoke",
        "/v1/consents/{consent_id}/revoke",
        ("consents:write",),
        {"reason": "withdrawn"},
        wrong={"reason": 5},
    ),
    Endpoint(
        "amend",
        "/v1/consents/{consent_id}/amend",
        ("consents:write",),
        {**TERMS, "version": 1},
        required=("purposes", "data_categories", "recipients", "evidence"),
        lists=("purposes", "data_categories", "recipients"),
        wrong={**TERM_TYPES, "version": "1"},
        codes=TERM_CODES,
        datetimes=("expires_at",),
    ),
    Endpoint(
        "authorize",
        "/v1/authorize",
        ("authorize",),
        {"subject": SUBJECT, "purpose": "service-planning", "data_categories": ["nationality"]},
        required=("subject", "purpose", "data_categories"),
        lists=("data_categories",),
        wrong={
            "purpose": ["service-planning"],
            "data_categories": "nationality",
            "subject": {"system": SUBJECT["system"]},
        },
        codes={"purpose": "no-such-purpose", "data_categories": ["nationality", "no-such-category"]},
        subject=True,
    ),
]

# Kinds of bad input that need no knowledge of the endpoint, as raw request bodies.
RAW_BODIES = {
    "malformed-json": '{"purposes": ["service-delivery"',
    "trailing-garbage": '{"reason": "x"} x',
    "not-utf8": b'{"reason": "\xff\xfe"}',
    "json-list": "[]",
    "json-list-of-object": '[{"reason": "x"}]',
    "json-string": '"hello"',
    "json-number": "42",
    "json-null": "null",
}
NAIVE_DATETIMES = ["2099-11-22T00:00:00", "2099-11-22", "next tuesday"]
# Valid ISO 8601 with a zone, but their UTC time is outside the years 1..9999 (issue 12: a 500).
OUT_OF_RANGE_DATETIMES = ["9999-12-31T23:00:00-01:00", "0001-01-01T00:00:00+01:00"]
LONE_SURROGATES = ["\ud800", "\udfff"]  # half a UTF-16 pair: JSON can name one, UTF-8 cannot encode it


def with_surrogate(value: Any, surrogate: str) -> Any:
    """``value`` with a lone surrogate in its first text (a string, a list's first, a dict's first)."""
    if isinstance(value, str):
        return value + surrogate
    if isinstance(value, list) and value:
        return [with_surrogate(value[0], surrogate), *value[1:]]
    if isinstance(value, dict) and value:
        first = next(iter(value))
        return {**value, first: with_surrogate(value[first], surrogate)}
    return None


CONTROL_CHARACTERS = ["C-1042\n", "C-\x001042", "C-1042\x7f"]


@dataclass(frozen=True)
class Case:
    endpoint: Endpoint
    body: Any  # a JSON-able value, or str/bytes sent as they are
    code: str = "validation_error"
    field: str | None = None  # the field ``details`` must name
    raw: bool = False


def cases(endpoint: Endpoint) -> Iterator[Any]:
    def case(label: str, body: Any, **kwargs: Any) -> Any:
        return pytest.param(Case(endpoint, body, **kwargs), id=f"{endpoint.name}-{label}")

    base = endpoint.body
    for label, raw in RAW_BODIES.items():
        yield case(label, raw, raw=True)
    yield case("unknown-field", body_with(base, surprise=1), field="surprise")
    yield case("requester-field", body_with(base, requester="gla"), field="requester")
    for name in endpoint.required:
        yield case(f"missing-{name}", body_with(base, **without(name)), field=name)
    yield case("missing-everything", {}) if endpoint.required else case("array-of-bodies", [base])
    for name, value in endpoint.wrong.items():
        yield case(f"wrong-{name}", body_with(base, **{name: value}), field=name)
    for name in endpoint.lists:
        yield case(f"empty-{name}", body_with(base, **{name: []}), field=name)
        yield case(f"oversized-{name}", body_with(base, **{name: [base[name][0]] * 101}), field=name)
        yield case(f"null-in-{name}", body_with(base, **{name: [None]}), field=name)
    for name, value in endpoint.codes.items():
        yield case(f"unknown-code-{name}", body_with(base, **{name: value}), code="unknown_code", field=name)
    for name in endpoint.datetimes:
        for i, value in enumerate(NAIVE_DATETIMES):
            yield case(f"naive-{name}-{i}", body_with(base, **{name: value}), field=name)
        for i, value in enumerate(OUT_OF_RANGE_DATETIMES):
            yield case(f"out-of-range-{name}-{i}", body_with(base, **{name: value}), field=name)
    for name, value in base.items():
        for i, surrogate in enumerate(LONE_SURROGATES):
            spoiled = with_surrogate(value, surrogate)
            if spoiled is not None:
                yield case(f"surrogate-in-{name}-{i}", body_with(base, **{name: spoiled}), field=name)
    yield case("surrogate-in-a-field-name", {**base, "note\ud800": "x"}, field="note\\ud800")
    if endpoint.subject:

        def subject(label: str, field: str = "subject", **parts: str) -> Any:
            return case(label, body_with(base, subject={**SUBJECT, **parts}), field=field)

        for part in ("system", "value"):
            for i, value in enumerate(CONTROL_CHARACTERS):
                # NUL is refused by the JSON parser, before any field is read (PostgreSQL cannot
                # store it), which names the field it is in, as the schema does.
                yield subject(f"control-in-subject-{part}-{i}", **{part: value})
            yield subject(f"empty-subject-{part}", **{part: ""})
            yield subject(f"overlong-subject-{part}", **{part: "x" * 257})
        yield subject("subject-extra-field", name="Ann")


CASES = [param for endpoint in ENDPOINTS for param in cases(endpoint)]


def caller(client, world) -> Callable[[Endpoint], Callable[..., Any]]:
    """``caller(endpoint)(endpoint, body, raw=False)``: POST as a client with the endpoint's scopes.

    The client, and the consent that revoke and amend act on, exist before the call (and
    before any table is counted); each endpoint is prepared once.
    """
    rough_sleeper_orgs(world)
    world.org("nation-a-council", "community-governance")

    def send(endpoint: Endpoint, body: Any, *, raw: bool = False):
        data = body if raw else json.dumps(body)
        return client.post(
            prepared[endpoint.name],
            data=data,
            content_type="application/json",
            headers=headers[endpoint.name],
        )

    def prepare(endpoint: Endpoint) -> Callable[..., Any]:
        if endpoint.name not in prepared:
            headers[endpoint.name] = (
                world.admin() if ADMIN in endpoint.scopes else world.headers("outreach-org", *endpoint.scopes)
            )
            consent_id = None
            if "{consent_id}" in endpoint.path:
                consent_id = record_consent(client, world.headers("outreach-org", "consents:write"))["id"]
            prepared[endpoint.name] = endpoint.path.format(consent_id=consent_id)
        return send

    headers: dict[str, dict[str, str]] = {}
    prepared: dict[str, str] = {}
    return prepare


@pytest.fixture
def call(client, world):
    """A fresh world's :func:`caller`, for the tests that write."""
    return caller(client, world)


@pytest.fixture(scope="module")
def refusals(request, database_backend) -> Iterator[Any]:
    """One world shared by the module's refusal cases (they write nothing, and each proves it)."""
    with module_world(request, database_backend, "bad-input") as world:
        yield world.app, caller(world.client, world)


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=e.name) for e in ENDPOINTS])
def test_the_valid_body_of_each_endpoint_is_accepted(call, endpoint):
    """The control case: each refusal below comes from its one change to this body."""
    status = 200 if endpoint.name in {"revoke", "amend", "authorize"} else 201
    assert_ok(call(endpoint)(endpoint, endpoint.body), status)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_and_writes_nothing(refusals, case):
    app, call = refusals
    send = call(case.endpoint)
    with unchanged_tables(app):
        response = send(case.endpoint, case.body, raw=case.raw)
    error = assert_error(response, 400, case.code)
    if case.field is not None:
        assert case.field in error["details"], error
        assert all(isinstance(m, str) for messages in error["details"].values() for m in messages), error


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=e.name) for e in ENDPOINTS])
def test_a_body_over_the_limit_is_413(refusals, endpoint):
    app, call = refusals
    padding = "x" * app.config["MAX_CONTENT_LENGTH"]
    send = call(endpoint)
    with unchanged_tables(app):
        response = send(endpoint, json.dumps({**endpoint.body, "padding": padding}), raw=True)
    assert_error(response, 413, "payload_too_large")


class TestRouting:
    @pytest.mark.parametrize("path", ["/nope", "/v1", "/v1/nope", "/v1/consents/x/nope", "/v2/authorize"])
    def test_an_unknown_path_is_404(self, client, path):
        assert_error(client.get(path), 404, "not_found")
        assert_error(client.post(path, json={}), 404, "not_found")

    @pytest.mark.parametrize(
        "method, path",
        [
            ("get", "/v1/authorize"),
            ("delete", "/v1/consents/x"),
            ("put", "/v1/organizations"),
            ("get", "/v1/clients"),
            ("get", "/oauth/token"),
            ("post", "/.well-known/jwks.json"),
            ("patch", "/v1/consents/x/revoke"),
        ],
    )
    def test_a_wrong_method_is_405(self, client, world, method, path):
        response = getattr(client, method)(path, headers=world.admin())
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["Allow"]
