"""Hostile input (issue 6 item 5): schemathesis against /openapi.json, and bodies built to hurt.

* schemathesis generates requests for every operation of the published OpenAPI document, valid
  ones (positive) and invalid ones (negative), ``CONSENT_FUZZ_EXAMPLES`` per operation and mode
  (25 in the suite; ``bench/fuzz.py`` runs more). Each answer must: not be a 5xx; have a status,
  content type, headers and body the document describes; refuse negative data; carry the
  contract's error body and the security headers; and, when it is a refusal, have written no row.
* Bodies over the limit are 413 before any parsing; too deep, too long, ``NaN``, giant numbers
  are 400; none of them costs much memory.
* Every list a request may carry has a maximum length in the document (so "lists over the limit
  are 400" holds for lists not yet written), and every string a maximum length or a bounded
  pattern.
"""

from __future__ import annotations

import io
import json
import os
import re
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import schemathesis
from api_helpers import assert_error, unchanged_tables
from conftest import dispose, module_world
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from security_helpers import (
    ALL_SCOPES,
    COUNCIL_A,
    GOVERNMENT,
    NATION_A,
    OVERSEER,
    PROVIDER,
    RESEARCHER,
    holdable,
    row_counts,
    seed_access_request,
    seed_world,
)

EXAMPLES = int(os.environ.get("CONSENT_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# Valid values for the fields whose validity the document cannot express (they name codes that
# exist in this deployment): positive examples use them half of the time, to get past
# ``unknown_code`` and into the use cases.
KNOWN_CODES: dict[str, Any] = {
    "purpose": st.sampled_from(["service-delivery", "service-planning", "research", "referral"]),
    "purposes": st.lists(
        st.sampled_from(["service-delivery", "research", "public-health"]), min_size=1, max_size=3
    ),
    "data_categories": st.lists(
        st.sampled_from(["health", "housing", "nationality", "income"]), min_size=1, max_size=3
    ),
    "recipients": st.lists(st.sampled_from([PROVIDER, GOVERNMENT, RESEARCHER]), min_size=1, max_size=3),
    "requesters": st.lists(st.sampled_from([GOVERNMENT, RESEARCHER, "*"]), min_size=1, max_size=2),
    "requester": st.sampled_from([GOVERNMENT, RESEARCHER]),
    "organization": st.sampled_from([PROVIDER, GOVERNMENT]),
    "stewards": st.lists(st.sampled_from([COUNCIL_A]), min_size=1, max_size=1),
    "communities": st.lists(st.sampled_from([NATION_A]), max_size=1),
    "scopes": st.lists(st.sampled_from(ALL_SCOPES), min_size=1, max_size=3),
    "obligations": st.sampled_from([{}, {"aggregate_only": True, "min_cell_size": 10}]),
    "labels": st.just([]),
}


def negative_data_refused(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' negative_data_rejection, also taking 413 as a refusal (a generated string
    over its maxLength can make the body too large before any field is looked at)."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)  # type: ignore[no-any-return]


def fuzz_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not os.environ.get("CONSENT_FUZZ_RANDOM"),
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.filter_too_much,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


def _plausible(body: Any, data: st.DataObject) -> Any:
    """Half of the bodies get known codes in every code field (one unknown code spoils the rest)."""
    if not isinstance(body, dict) or not data.draw(st.booleans(), label="known codes"):
        return body
    for name, strategy in KNOWN_CODES.items():
        if name in body:
            body[name] = data.draw(strategy, label=name)
    return body


def check_answer(app: Any, case: Any, response: Any, before: tuple[int, ...]) -> None:
    """What every answer must be, beyond what schemathesis checks."""
    status = response.status_code
    assert status < 500, (case.operation.label, status, response.text[:300])
    assert response.headers.get("x-content-type-options") == ["nosniff"]
    assert "no-store" in response.headers.get("cache-control", [""])[0]
    if status >= 400:
        body = json.loads(response.text)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
        assert row_counts(app) == before, (case.operation.label, status, body)


# Issue 12: inputs every field must refuse with a 400 (they were 500s). A lone surrogate can only
# travel in a JSON body (a URL or a form is UTF-8 on the wire, and werkzeug replaces what is not);
# a date out of range can travel anywhere.
OUT_OF_RANGE = ("9999-12-31T23:00:00-01:00", "0001-01-01T00:00:00+01:00")
SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every string of a body (its names included, as ``("name", key)``)."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [
            *(((*path, ("name", key))) for key in value),
            *(leaf for key, inner in value.items() for leaf in _leaves(inner, (*path, key))),
        ]
    if isinstance(value, list):
        return [leaf for i, inner in enumerate(value) for leaf in _leaves(inner, (*path, i))]
    return []


def _spoil(body: Any, path: tuple[Any, ...], data: st.DataObject) -> tuple[Any, str]:
    """``body`` with the string at ``path`` made hostile; returns it and the top-level field."""
    *parents, last = path
    holder = body
    for step in parents:
        holder = holder[step]
    if isinstance(last, tuple):  # a field name
        key = last[1]
        spoiled = key + data.draw(st.sampled_from(SURROGATES), label="surrogate")
        holder[spoiled] = holder.pop(key)
        if not parents:  # a top-level name: the answer names it, escaped
            return body, spoiled.encode("utf-8", "backslashreplace").decode("utf-8")
        return body, str(path[0])
    original = holder[last]
    hostile = (
        data.draw(st.sampled_from(OUT_OF_RANGE), label="date")
        if _is_datetime(original)
        else original + data.draw(st.sampled_from(SURROGATES), label="surrogate")
    )
    holder[last] = hostile
    return body, str(path[0])


def fuzz(
    app: Any,
    headers_for: Callable[[str], dict[str, str]],
    mode: GenerationMode,
    ids: dict[str, str],
    *,
    hostile: bool = False,
) -> tuple[list[str], dict[str, Counter[int]]]:
    """Run every operation; one line per operation that failed (with hypothesis' minimal case),
    and the statuses each operation answered."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    checks = [*CHECKS, negative_data_refused] if mode is GenerationMode.NEGATIVE else CHECKS
    problems: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        seen = statuses.setdefault(operation.label, Counter())
        try:
            _examples(app, operation, mode, ids, headers_for(operation.path), checks, seen, hostile)()
        except Unsatisfiable:
            continue  # nothing negative to say about an operation without inputs
        except BaseException as exc:  # collected and reported below
            problems.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    return problems, statuses


def _examples(
    app: Any,
    operation: Any,
    mode: GenerationMode,
    ids: dict[str, str],
    headers: dict[str, str],
    checks: list[Any],
    seen: Counter[int],
    hostile: bool = False,
) -> Callable[[], None]:
    """The hypothesis test of one operation: generate, call, check (see check_answer).

    ``hostile``: one string of each (valid) request, in its body or its query, is then made
    hostile (a lone surrogate, or a date whose UTC time is out of range): the answer must be
    400 ``validation_error`` naming the field it is in."""
    names = {p.name for p in operation.path_parameters}
    fixed = {name: ids[name] for name in names} if mode is GenerationMode.POSITIVE else None

    @fuzz_settings()
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:
            case.body = _plausible(case.body, data)
        case.headers = {**(case.headers or {}), **headers}
        spoiled = None
        if hostile:
            if case.body is not None and case.body is not NOT_SET:  # one hostile string, no other
                case.body = json.loads(json.dumps(case.body).replace("\\u0000", "0"))
            # The strings inside a JSON body (a text/plain body, an agreement's document, is bytes
            # kept as sent: it has no field to name).
            places = [("body", leaf) for leaf in _leaves(case.body) if leaf] + [
                ("query", (name,))
                for name, value in (case.query or {}).items()
                if isinstance(value, str) and _is_datetime(value)
            ]
            if places:
                where, path = data.draw(st.sampled_from(places), label="hostile place")
                if where == "body":
                    case.body, spoiled = _spoil(case.body, path, data)
                else:
                    case.query[path[0]] = data.draw(st.sampled_from(OUT_OF_RANGE), label="date")
                    spoiled = path[0]
        before = row_counts(app)
        if spoiled is not None:
            _refused_naming(app, case, spoiled, before)
            seen[400] += 1
            return
        response = case.call()
        seen[response.status_code] += 1
        case.validate_response(response, checks=checks)
        check_answer(app, case, response, before)

    return run  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"]
)
def test_schemathesis_finds_no_error_in_any_operation(app, client, world, mode):
    ids = seed_access_request(world, seed_world(client, world))
    # Clients with every scope they may hold: the recorder of the consent for the consent and
    # subject paths (some answer only the recording organization), an oversight organization for
    # the audit paths (audit:read is only theirs), the steward of Nation A for the rest.
    recorder = world.headers(PROVIDER, *holdable(PROVIDER))
    steward = world.headers(COUNCIL_A, *holdable(COUNCIL_A))
    overseer = world.headers(OVERSEER, *holdable(OVERSEER))

    def headers_for(path: str) -> dict[str, str]:
        if path.startswith("/v1/audit"):
            return overseer
        return recorder if path.startswith(("/v1/consents", "/v1/subjects")) else steward

    problems, statuses = fuzz(app, headers_for, mode, ids)
    assert problems == [], "\n\n".join(problems)
    assert len(statuses) >= 28  # every operation was exercised
    if mode is GenerationMode.POSITIVE:
        # Not a fuzz of the front door only: most operations got past validation and answered 2xx.
        succeeded = sorted(label for label, seen in statuses.items() if any(200 <= s < 300 for s in seen))
        print(f"{len(succeeded)} of {len(statuses)} operations answered 2xx:", statuses)
        assert len(succeeded) >= 24, statuses  # 26 of 28 when written


def _refused_naming(app: Any, case: Any, field: str, before: tuple[int, ...]) -> None:
    """Send ``case`` as JSON with \\u escapes (schemathesis would try to encode the surrogate as
    UTF-8, which cannot be done); it must be a 400 validation_error naming ``field``, writing
    nothing."""
    data = None if case.body is None or case.body is NOT_SET else json.dumps(case.body)
    response = app.test_client().open(
        case.formatted_path,
        method=case.method,
        query_string=case.query,
        headers=case.headers,
        data=data,
        content_type="application/json",
    )
    label = (case.operation.label, field)
    assert response.status_code == 400, (*label, response.get_data(as_text=True)[:300])
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    error = response.get_json()["error"]
    assert error["code"] == "validation_error", (*label, error)
    assert field in error["details"], (*label, error)
    assert row_counts(app) == before, label


def test_schemathesis_surrogates_and_out_of_range_dates_in_every_field_are_400(app, client, world):
    """Issue 12: a lone surrogate in any text, or a date out of range, was a 500."""
    ids = seed_access_request(world, seed_world(client, world))
    recorder = world.headers(PROVIDER, *holdable(PROVIDER))
    steward = world.headers(COUNCIL_A, *holdable(COUNCIL_A))
    overseer = world.headers(OVERSEER, *holdable(OVERSEER))

    def headers_for(path: str) -> dict[str, str]:
        if path.startswith("/v1/audit"):
            return overseer
        return recorder if path.startswith(("/v1/consents", "/v1/subjects")) else steward

    problems, statuses = fuzz(app, headers_for, GenerationMode.POSITIVE, ids, hostile=True)
    assert problems == [], "\n\n".join(problems)
    refused = sorted(label for label, seen in statuses.items() if seen[400])
    assert len(refused) >= 15, statuses  # every operation with a body or a date in its query


# -- the published document bounds every input ----------------------------------------------------

OPEN_OBJECTS = {"RuleIn.obligations"}  # checked by the domain against the known obligations
BOUNDED_PATTERN = re.compile(r"\{\d*,\d+\}\$$|^\^[^*+{]*\$$")  # ends in {m,n}, or no repetition at all


def _bounded_pattern(pattern: str) -> bool:
    return bool(pattern) and all(
        BOUNDED_PATTERN.search(re.sub(r"\\.", "x", branch)) for branch in pattern.split("|")
    )


def _unbounded(spec: dict[str, Any]) -> list[str]:
    schemas = spec["components"]["schemas"]
    found: list[str] = []

    def walk(node: dict[str, Any], where: str, seen: frozenset[str]) -> None:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                walk(schemas[name], name, seen | {name})
            return
        if node.get("type") == "array":
            if "maxItems" not in node:
                found.append(f"{where}: a list without maxItems")
            walk(node.get("items", {}), f"{where}[]", seen)
        elif node.get("type") == "string":
            pattern = node.get("pattern", "")
            if not ({"maxLength", "enum", "format"} & set(node) or _bounded_pattern(pattern)):
                found.append(f"{where}: a string without maxLength")
        elif node.get("type") == "object" or "properties" in node:
            for key, value in node.get("properties", {}).items():
                walk(value, f"{where}.{key}", seen)
            extra = node.get("additionalProperties")
            if extra not in (False, None) and where not in OPEN_OBJECTS:
                found.append(f"{where}: an object open to any field")

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                walk(media["schema"], f"{method.upper()} {path}", frozenset())
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    walk(parameter["schema"], f"{method.upper()} {path}?{parameter['name']}", frozenset())
    return found


def test_every_list_and_string_a_request_may_carry_is_bounded(client):
    assert _unbounded(client.get("/openapi.json").get_json()) == []


def test_the_bound_check_fires_on_an_unbounded_list(client):
    """The control: the same walk over a document with one maxItems removed finds it."""
    spec = client.get("/openapi.json").get_json()
    del spec["components"]["schemas"]["AuthorizeIn"]["properties"]["data_categories"]["maxItems"]
    assert _unbounded(spec) == ["AuthorizeIn.data_categories: a list without maxItems"]


def test_the_document_is_flask_smorests_own_though_written_when_first_read(app_config, monkeypatch):
    """The API documents its blueprints when /openapi.json is first read, not when the app is
    built (consent_service/extensions.py): the document must be the one flask-smorest writes
    eagerly, operation for operation, and must name every /v1 route."""
    from flask_smorest import Api

    from consent_service import create_app, extensions

    lazy_app = create_app(app_config)
    lazy = lazy_app.test_client().get("/openapi.json").get_json()
    monkeypatch.setattr(extensions, "LazilyDocumentedApi", Api)
    eager_app = create_app(app_config)
    assert type(eager_app.extensions["consent_api"]) is Api
    eager = eager_app.test_client().get("/openapi.json").get_json()
    assert lazy == eager
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) for rule in lazy_app.url_map.iter_rules()}
    assert {route for route in routes if route.startswith("/v1/")} <= set(lazy["paths"])
    for application in (lazy_app, eager_app):
        dispose(application)


def test_error_answers_are_documented_with_the_contracts_body(client):
    spec = client.get("/openapi.json").get_json()
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = spec["components"]["schemas"][error["properties"]["error"]["$ref"].rsplit("/", 1)[1]]
    assert set(detail["properties"]) == {"code", "message", "details"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert "default" in operation["responses"], (method, path)


# -- bodies built to hurt ----------------------------------------------------------------------------

HURTFUL = {
    "nested-arrays": "[" * 100_000 + "]" * 100_000,
    "nested-objects": '{"a":' * 40_000 + "1" + "}" * 40_000,
    "giant-integer": '{"purpose": ' + "9" * 5000 + "}",
    "nan": '{"purpose": "research", "data_categories": ["health"], '
    '"subject": {"system": "urn:s", "value": "v"}, '
    '"x": NaN}',
    "infinity": '{"version": Infinity}',
    "huge-string": '{"purpose": "' + "x" * 200_000 + '"}',
    "many-keys": "{" + ",".join(f'"k{i}": 1' for i in range(10_000)) + "}",
    "long-list": '{"data_categories": [' + ",".join(['"health"'] * 25_000) + "]}",
    "lone-surrogate": '{"purpose": "\\ud800"}',
    "nul-in-string": '{"purpose": "a\\u0000b"}',
}
POSTS = [
    "/v1/authorize",
    "/v1/consents",
    "/v1/authorize/batch",
    "/v1/receipts/verify",
    "/v1/communities/nation-a/rules",
    "/v1/consents/{consent_id}/amend",
    "/v1/subjects/access-report",
]


@pytest.fixture
def seeded(client, world):
    ids = seed_world(client, world)
    return ids, world.headers(COUNCIL_A, *holdable(COUNCIL_A))


@pytest.fixture(scope="module")
def refusing(request, database_backend) -> Iterator[tuple[Any, Any, dict[str, str], dict[str, str]]]:
    """One seeded world shared by the module's tests that only send what must be refused (each
    proves it wrote nothing)."""
    with module_world(request, database_backend, "hostile") as world:
        ids = seed_world(world.client, world)
        yield world.app, world.client, ids, world.headers(COUNCIL_A, *holdable(COUNCIL_A))


@pytest.mark.parametrize("kind", list(HURTFUL))
def test_a_hurtful_body_is_a_400_and_cheap(refusing, kind):
    app, client, ids, headers = refusing
    for path in POSTS:
        path = path.format(**ids)
        tracemalloc.start()
        try:
            with unchanged_tables(app):
                response = client.post(
                    path, data=HURTFUL[kind], content_type="application/json", headers=headers
                )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert_error(response, 400, "validation_error")
        # The body is at most 256 KiB; parsing and refusing it stays within a small multiple of
        # that (5.6 MB at most, measured: 10,000 keys, each refused by name).
        assert peak < 16 * 1024 * 1024, (kind, path, peak)


class TestBodyLimit:
    def test_an_oversized_body_is_413_even_when_it_is_not_json(self, refusing):
        """413, not 400: the size is refused before anyone tries to parse the body."""
        app, client, _, headers = refusing
        junk = b"\xff" * (app.config["MAX_CONTENT_LENGTH"] + 1)
        for path in ("/v1/authorize", "/v1/consents", "/v1/receipts/verify"):
            with unchanged_tables(app):
                response = client.post(path, data=junk, content_type="application/json", headers=headers)
            assert_error(response, 413, "payload_too_large")

    def test_a_streamed_body_without_length_is_cut_at_the_limit(self, app, client, seeded):
        _, headers = seeded
        limit = app.config["MAX_CONTENT_LENGTH"]

        def chunks():
            sent = 0
            while sent <= limit + 65536:
                yield b"[" * 65536
                sent += 65536

        stream = io.BytesIO(b"".join(chunks()))
        # What gunicorn hands over for a chunked request: a stream with no length, marked as ending.
        response = client.post(
            "/v1/authorize",
            input_stream=stream,
            content_type="application/json",
            headers={**headers, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert_error(response, 413, "payload_too_large")

    def test_the_batch_endpoint_has_its_own_larger_limit(self, app, client, seeded):
        _, headers = seeded
        body = json.dumps(
            {
                "subjects": [{"system": "urn:s", "value": f"v{i}"} for i in range(9000)],
                "purpose": "research",
                "data_categories": ["health"],
            }
        )
        assert len(body) > app.config["MAX_CONTENT_LENGTH"]
        assert (
            client.post(
                "/v1/authorize/batch", data=body, content_type="application/json", headers=headers
            ).status_code
            == 200
        )
        limit = app.extensions["consent_service"].settings["BATCH_MAX_CONTENT_LENGTH"]
        too_big = client.post(
            "/v1/authorize/batch", data=b"[" * (limit + 1), content_type="application/json", headers=headers
        )
        assert_error(too_big, 413, "payload_too_large")


class TestNulCharacters:
    """PostgreSQL cannot hold NUL in text; a NUL anywhere in a request is a 400 on every backend
    (found by bench/fuzz.py on PostgreSQL, where a revocation reason with NUL was a 503)."""

    def test_in_a_free_text_field_of_a_body(self, refusing):
        app, client, ids, headers = refusing
        with unchanged_tables(app):
            response = client.post(
                f"/v1/consents/{ids['consent_id']}/revoke", headers=headers, json={"reason": "asked\u0000"}
            )
        assert_error(response, 400, "validation_error")

    def test_in_a_key_deep_inside_a_body(self, refusing):
        app, client, _, headers = refusing
        body = {
            "subject": {"system": "urn:s", "value": "v"},
            "purpose": "research",
            "data_categories": ["health"],
            "x": [[{"a\u0000": 1}]],
        }
        with unchanged_tables(app):
            response = client.post("/v1/authorize", headers=headers, json=body)
        assert_error(response, 400, "validation_error")

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/consents/%00",
            "/v1/decisions/a%00b",
            "/v1/consents/x%00/history",
            "/v1/audit/entries?after=%00",
            "/v1/communities/nation-a/rules?x=%00",
        ],
    )
    def test_in_the_path_or_query(self, refusing, path):
        app, client, _, headers = refusing
        with unchanged_tables(app):
            response = client.get(path, headers=headers)
        assert_error(response, 400, "validation_error")

    def test_in_the_token_request_form(self, client):
        response = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": "cl_\u0000", "client_secret": "x"},
        )
        assert_error(response, 400, "validation_error")
