"""The access log holds no query string (issue 12, contract v1.1 section 8).

``consent-service serve`` runs as deployed (gunicorn, its access log on stdout); a canary is put in
the query string of a request to every route the app has (and credentials in the token
endpoint's URL, and the free-text ``reason`` of a rule's retirement), then the log is read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench/

from bench import live_service as live

CANARY = "CANARYq7zx"


def routes(app) -> list[tuple[str, str]]:
    """(method, path) for every route of the app, path parameters filled with a dummy."""
    found = []
    for rule in app.url_map.iter_rules():
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", "x").replace(f"<path:{argument}>", "x")
            path = path.replace(f"<int:{argument}>", "1")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    return found


@pytest.mark.parametrize("backend", ["sqlite"])
def test_no_query_string_reaches_the_access_log(app, backend):
    with live.deployment(backend) as dep:
        instance = dep.start("log", workers=1)
        base = instance.base
        admin = live.token(base, *dep.admin)
        steward = live.make_client(base, admin, "council", "community-governance", ["rules:write"])
        assert (
            live.call(
                base,
                "POST",
                "/v1/communities",
                headers=live.bearer(admin),
                body={"id": "nation-a", "name": "Nation A", "stewards": ["council"]},
            ).status
            == 201
        )
        rule = live.call(
            base,
            "POST",
            "/v1/communities/nation-a/rules",
            headers=live.bearer(steward),
            body={
                "effect": "deny",
                "purposes": ["research"],
                "data_categories": ["health"],
                "requesters": ["*"],
                "reason": "no",
            },
        )
        assert rule.status == 201, rule

        # Credentials in the token endpoint's URL are refused (and so never used).
        client_id, secret = dep.admin
        sent = live.call(
            base,
            "POST",
            f"/oauth/token?client_id={client_id}&client_secret={secret}{CANARY}",
            form={"grant_type": "client_credentials"},
        )
        assert sent.status == 400 and sent.body["error"]["details"]["oauth_error"] == "invalid_request", sent
        # The free-text reason of a retirement, as the v1 contract allows it, in the URL.
        retired = live.call(
            base,
            "DELETE",
            f"/v1/communities/nation-a/rules/{rule.body['id']}?reason=personal+detail+{CANARY}",
            headers=live.bearer(steward),
        )
        assert retired.status == 200, retired
        asked = routes(app)
        assert len(asked) > 30
        for i, (method, path) in enumerate(asked):
            live.call(base, method, f"{path}?q={CANARY}-{i}&token={CANARY}", headers=live.bearer(admin))
        instance.stop()
        logged = instance.logfile.read_text()

    assert CANARY not in logged
    assert secret not in logged
    # One JSON object a line (CONSENT_LOG_FORMAT=json, the default), access lines included.
    lines = [json.loads(line) for line in logged.splitlines() if line.strip()]
    assert {"gunicorn.access", "gunicorn.error", "consent_service.requests"} <= {x["logger"] for x in lines}
    logged = "\n".join(str(line["message"]) for line in lines)
    # The control: the requests were logged, path and all, only without their query strings.
    assert '"DELETE /v1/communities/nation-a/rules/' in logged
    assert '"POST /oauth/token HTTP/1.1" 400' in logged
    assert logged.count('"GET /v1/vocabulary HTTP/1.1"') >= 1
