"""GET /metrics (issue 17 item 2): Prometheus text behind the scope metrics:read, counting what an
operator watches, with no identifier in any label; and several workers' counters added up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from api_helpers import CONSENT, assert_error, record_consent, rough_sleeper_orgs
from prometheus_client.parser import text_string_to_metric_families

from consent_service.services import metrics

ASK = {"subject": CONSENT["subject"], "purpose": "service-planning", "data_categories": ["housing"]}


def scrape(client, world) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=world.headers("admin", "metrics:read"))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_no_token_is_401_a_bad_one_401_another_scope_403(client, world):
    assert_error(client.get("/metrics"), 401, "unauthorized")
    assert_error(client.get("/metrics", headers={"Authorization": "Bearer a.b.c"}), 401, "unauthorized")
    assert_error(client.get("/metrics", headers=world.headers("admin", "admin")), 403, "forbidden")
    assert_error(client.get("/metrics", headers=world.headers("admin", "audit:read")), 403, "forbidden")


def test_only_the_admin_organization_may_hold_metrics_read(client, world):
    world.org("outreach-org")
    response = client.post(
        "/v1/clients",
        headers=world.admin(),
        json={"organization": "outreach-org", "name": "x", "scopes": ["metrics:read"]},
    )
    body = assert_error(response, 400, "validation_error")
    assert "scopes" in body["details"]


def test_decisions_requests_latency_and_the_chain_are_counted(client, world):
    rough_sleeper_orgs(world)
    record_consent(client, world.headers("outreach-org", "consents:write"))
    before = scrape(client, world)
    gla = world.headers("gla", "authorize")
    assert client.post("/v1/authorize", headers=gla, json=ASK).get_json()["decision"] == "permit"
    denied = client.post("/v1/authorize", headers=gla, json={**ASK, "data_categories": ["income"]})
    assert denied.get_json()["decision"] == "deny"
    batch = {
        "subjects": [CONSENT["subject"], {"system": "urn:x:y", "value": "z"}],
        "purpose": "service-planning",
    }
    client.post("/v1/authorize/batch", headers=gla, json={**batch, "data_categories": ["housing"]})
    after = scrape(client, world)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("consent_decisions_total", outcome="permit", reason="consent") == 2
    assert grew("consent_decisions_total", outcome="deny", reason="no_consent") == 2
    route = {"endpoint": "/v1/authorize", "method": "POST"}
    assert grew("consent_http_requests_total", **route, status="200") == 2
    assert grew("consent_http_request_duration_seconds_count", **route) == 2
    assert grew("consent_http_request_duration_seconds_bucket", **route, le="+Inf") == 2
    assert grew("consent_http_request_duration_seconds_sum", **route) > 0
    # Four decisions and at least the scrape's own read: the chain's length is the store's.
    assert grew("consent_audit_chain_length") >= 4
    with world.services.sessions() as session:
        from consent_service.storage import audit as audit_store

        assert value(after, "consent_audit_chain_length") == audit_store.head(session)[0]


def test_no_identifier_reaches_a_label(client, world):
    rough_sleeper_orgs(world)
    consent = record_consent(client, world.headers("outreach-org", "consents:write"))
    reader = world.headers("outreach-org", "consents:read")
    client.get(f"/v1/consents/{consent['id']}", headers=reader)
    client.get("/v1/no-such-place/C-1042-secretive")
    client.post("/v1/authorize", headers=world.headers("gla", "authorize"), json=ASK)
    text = client.get("/metrics", headers=world.headers("admin", "metrics:read")).get_data(as_text=True)
    for secret in (consent["id"], "C-1042", "secretive", "outreach-org", "gla", "admin"):
        assert secret not in text, secret
    samples = scrape(client, world)
    assert (
        value(
            samples,
            "consent_http_requests_total",
            endpoint="/v1/consents/<consent_id>",
            method="GET",
            status="200",
        )
        >= 1
    )
    assert (
        value(samples, "consent_http_requests_total", endpoint="(unmatched)", method="GET", status="404") >= 1
    )
    endpoints = {dict(labels).get("endpoint") for (_, labels) in samples} - {None}
    rules = {rule.rule for rule in client.application.url_map.iter_rules()} | {"(unmatched)"}
    assert endpoints <= rules  # templates only: bounded by the routes the app has


def test_a_503_is_counted(client, world, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from consent_service.services import authorize as cases

    rough_sleeper_orgs(world)
    gla = world.headers("gla", "authorize")
    before = scrape(client, world)

    def store_away(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("gone"))

    monkeypatch.setattr(cases, "_decide", store_away)
    assert client.post("/v1/authorize", headers=gla, json=ASK).status_code == 503
    monkeypatch.undo()
    after = scrape(client, world)
    key = ("consent_unavailable_answers_total", (("endpoint", "/v1/authorize"),))
    assert after.get(key, 0) - before.get(key, 0) == 1


def test_rule_cache_hits_and_compiles(client, world):
    rough_sleeper_orgs(world)
    world.org("nation-a-council", "community-governance")
    admin = world.admin()
    assert (
        client.post(
            "/v1/communities",
            headers=admin,
            json={"id": "nation-a", "name": "Nation A", "stewards": ["nation-a-council"]},
        ).status_code
        == 201
    )
    record_consent(client, world.headers("outreach-org", "consents:write"), communities=["nation-a"])
    council = world.headers("nation-a-council", "rules:write")
    gla = world.headers("gla", "authorize")
    before = scrape(client, world)
    client.post("/v1/authorize", headers=gla, json=ASK)  # compiles nation-a (or finds it compiled)
    client.post("/v1/authorize", headers=gla, json=ASK)  # a hit
    rule = {"effect": "deny", "purposes": ["research"], "data_categories": ["health"], "requesters": ["*"]}
    assert (
        client.post(
            "/v1/communities/nation-a/rules", headers=council, json={**rule, "reason": "no"}
        ).status_code
        == 201
    )
    client.post("/v1/authorize", headers=gla, json=ASK)  # the changes applied to the held copy
    after = scrape(client, world)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("consent_rule_cache_hits_total") >= 1
    assert (
        grew("consent_rule_cache_compiles_total", kind="full")
        + grew("consent_rule_cache_compiles_total", kind="changes")
        >= 2
    )


def test_several_processes_are_added_up_in_multiprocess_mode(tmp_path):
    """Two processes count into PROMETHEUS_MULTIPROC_DIR; a third's exposition holds their sum."""
    folder = tmp_path / "prom"
    folder.mkdir()
    env = {**os.environ, metrics.MULTIPROC_ENV: str(folder)}
    count = textwrap.dedent(
        """
        from consent_service.services import metrics
        metrics.observe_request("/v1/authorize", "POST", 503, 0.01)
        """
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True)
    read = textwrap.dedent(
        """
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        print(generate_latest(registry).decode())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", read], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'consent_unavailable_answers_total{endpoint="/v1/authorize"} 2.0' in out
    assert 'consent_http_request_duration_seconds_count{endpoint="/v1/authorize",method="POST"} 2.0' in out


def test_two_gunicorn_workers_are_counted_together():
    """consent-service serve with two workers and PROMETHEUS_MULTIPROC_DIR: requests spread over
    both workers (concurrent, sync workers) are all in any one scrape; without the directory each
    worker would show only its own."""
    import json
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import live_service as live

    with live.deployment("sqlite") as dep:
        folder = dep.workdir / "prom"
        (folder).mkdir()
        (folder / "counter_999999.db").write_bytes(b"left by an earlier run")
        instance = dep.start("metrics", workers=2, extra_env={metrics.MULTIPROC_ENV: str(folder)})
        assert not (folder / "counter_999999.db").exists()  # emptied at start
        made = json.loads(
            dep.cli("admin", "create-client", "--name", "prometheus", "--scope", "metrics:read", "--json")
        )
        token = live.token(instance.base, made["client_id"], made["client_secret"])

        def healthz(_: int) -> int:
            with urllib.request.urlopen(instance.base + "/healthz", timeout=10) as response:
                return response.status

        with ThreadPoolExecutor(max_workers=6) as pool:
            assert set(pool.map(healthz, range(60))) == {200}
        request = urllib.request.Request(instance.base + "/metrics", headers=live.bearer(token))
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        pids = {path.stem.rsplit("_", 1)[1] for path in folder.glob("*.db")}
        instance.stop()
    assert 'consent_http_requests_total{endpoint="/healthz",method="GET",status="200"} 60.0' in text
    assert "consent_audit_chain_length" in text
    assert len(pids) >= 2  # both workers counted
