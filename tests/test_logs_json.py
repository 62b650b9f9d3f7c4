"""The JSON-lines logs (issue 17 item 2): one JSON object a line, with the request's id and the
decision's id, and the same hygiene as the text form: the privacy scenario of test_privacy.py,
every logger at DEBUG, written through the handler ``consent-service serve`` installs
(log_hygiene.logging_config), holds no identifier, note, secret, key or token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from test_privacy import Canaries, Recorder, every_logger_at_debug, hits, run_scenario

from consent_service import create_app, log_hygiene
from consent_service.container import EXTENSION

__all__ = ["every_logger_at_debug"]  # test_privacy's fixture, used here


@pytest.fixture
def json_lines(every_logger_at_debug) -> Iterator[io.StringIO]:
    """The serve command's console handler (JSON formatter, request filter) on the root logger."""
    config: Any = log_hygiene.logging_config("json", "DEBUG")
    stream = io.StringIO()
    formatter = log_hygiene.json_formatter()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(log_hygiene.RequestContext())
    assert config["handlers"]["console"]["filters"] == ["context"]
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_the_scenario_logged_as_json_has_no_canary_and_carries_the_ids(app_config, json_lines):
    can = Canaries()
    app = create_app({**app_config, "SECRET_KEY": can.secret_key})
    try:
        rec = Recorder(app.test_client())
        run_scenario(app, rec, can)
    finally:
        app.extensions[EXTENSION].sessions.kw["bind"].dispose()
    text = json_lines.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(lines) > 50
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["logger"].startswith("sqlalchemy.engine") for line in lines)  # DEBUG was on
    answered = [line for line in lines if line["logger"] == "consent_service.requests"]
    assert len(answered) >= len(rec.answers)  # and the token requests the recorder does not keep
    assert all(len(line["request_id"]) == 32 for line in answered)
    assert len({line["request_id"] for line in answered}) == len(answered)
    decided = [line for line in answered if line["endpoint"] == "/v1/authorize" and line["status"] == 200]
    assert decided and all(len(line["decision_id"]) == 36 for line in decided)
    # Records of a request other than its answer line carry its id too (SQL statements, say).
    inside = {line.get("request_id") for line in lines if line["logger"] != "consent_service.requests"}
    assert inside & {line["request_id"] for line in answered}
    everything = [
        can.subject,
        can.other_subject,
        can.notes,
        can.amended_notes,
        can.mistyped_secret,
        can.secret_key,
        *can.client_secrets.values(),
        *can.tokens,
    ]
    assert [value[:24] for value in everything if hits(value, text)] == []


def test_a_proxy_request_id_is_kept_only_when_it_is_an_opaque_token(client):
    upstream = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert client.get("/healthz", headers={"X-Request-ID": upstream}).headers["X-Request-ID"] == upstream
    chosen = client.get("/healthz", headers={"X-Request-ID": "C-1042 Jane Doe"}).headers["X-Request-ID"]
    assert chosen != "C-1042 Jane Doe" and len(chosen) == 32


def test_text_and_json_are_the_only_formats():
    with pytest.raises(ValueError, match="CONSENT_LOG_FORMAT"):
        log_hygiene.logging_config("xml")
