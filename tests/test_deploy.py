"""The deployment recipe (issue 17 item 5): compose.yaml, the Containerfile, Prometheus's scrape
configuration and the Grafana dashboard hold together. Read as YAML/JSON here (the compose
plugin is not on every machine); ``docker compose config`` runs too where it exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from consent_service.services import metrics

REPO = Path(__file__).resolve().parents[1]
INSTANCES = ("consent-1", "consent-2")


def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))


def test_compose_has_the_service_twice_postgresql_redis_and_the_release_step():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", *INSTANCES, "prometheus", "grafana"} <= set(services)
    assert services["migrate"]["command"] == ["consent-service", "db", "upgrade"]
    for name in INSTANCES:
        service = services[name]
        assert service["build"]["dockerfile"] == "Containerfile"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        env = service["environment"]
        assert env["CONSENT_RATELIMIT_STORAGE_URI"].startswith("redis://redis:")
        assert env["PROMETHEUS_MULTIPROC_DIR"] in service["tmpfs"]
        assert env["CONSENT_LOG_FORMAT"] == "json"
        assert service["env_file"] == "./deploy/secrets/consent.env"  # the secret and keys: not here
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    text = (REPO / "compose.yaml").read_text(encoding="utf-8")
    assert "CONSENT_SECRET_KEY:" not in text and "POSTGRES_PASSWORD:" not in text
    # The change-event deliverer runs beside the instances, from the same image and settings.
    events = services["events"]
    assert events["command"] == ["consent-service", "events", "deliver"]
    assert events["env_file"] == "./deploy/secrets/consent.env" and not events["ports"]


def test_the_secrets_folder_is_not_committed():
    assert "deploy/secrets/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    for ignore in (".containerignore", ".dockerignore"):
        assert "deploy/secrets" in (REPO / ignore).read_text(encoding="utf-8").splitlines()


def test_the_containerfile_serves_with_gunicorn_as_an_unprivileged_user():
    lines = [
        line.strip()
        for line in (REPO / "Containerfile").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    instructions = [line.split()[0] for line in lines if line.split()[0].isupper()]
    assert instructions[:2] == ["ARG", "FROM"]  # the base image may be chosen, python:3.11-slim by default
    assert lines[0] == "ARG BASE=python:3.11-slim" and lines[1] == "FROM ${BASE}"
    assert "USER" in instructions and "HEALTHCHECK" in instructions
    user = next(line for line in lines if line.startswith("USER "))
    assert user.split()[1] not in {"root", "0"}
    cmd = json.loads([line for line in lines if line.startswith("CMD ")][-1][4:])  # not HEALTHCHECK's
    assert cmd[:2] == ["consent-service", "serve"] and "0.0.0.0" in cmd
    # What the image copies exists (the migrations and policies are read beside the package).
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


def test_prometheus_scrapes_both_instances_with_its_own_metrics_read_client():
    config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["oauth2"]["scopes"] == ["metrics:read"]
    assert job["oauth2"]["token_url"].endswith("/oauth/token")
    assert "client_secret" not in job["oauth2"]  # read from a file, never written here
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{name}:8000" for name in INSTANCES}


def test_the_dashboard_charts_only_metrics_the_service_exports(client, world):
    dashboard = json.loads((REPO / "deploy" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for expr in exprs for name in re.findall(r"\b(consent_[a-z_]+)", expr)}
    assert named
    # Every series name the service exports (a scrape, its histograms and counters expanded).
    world.org("x")
    client.post("/v1/authorize", json={})  # one request, so every family has a sample
    text = client.get("/metrics", headers=world.headers("admin", "metrics:read")).get_data(as_text=True)
    exported = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    exported |= {f"{metrics.RULE_CACHE_HITS._name}_total", f"{metrics.RULE_CACHE_COMPILES._name}_total"}
    exported |= {f"{metrics.DECISIONS._name}_total", f"{metrics.UNAVAILABLE._name}_total"}
    assert named <= exported, named - exported
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for subject in ("decisions", "deny", "503", "latency", "rule cache", "audit chain"):
        assert subject in titles, subject


def test_docker_compose_config_accepts_the_file(tmp_path):
    """Only where the compose plugin is installed (CI images without it check the YAML above)."""
    docker = shutil.which("docker")
    has_compose = (
        docker is not None
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    )
    if not has_compose:
        return
    secrets = REPO / "deploy" / "secrets"
    made = not secrets.exists()
    secrets.mkdir(exist_ok=True)
    env = secrets / "consent.env"
    wrote_env = not env.exists()
    if wrote_env:
        env.write_text("POSTGRES_PASSWORD=x\n", encoding="utf-8")
    try:
        done = subprocess.run(
            [docker, "compose", "-f", str(REPO / "compose.yaml"), "config", "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    finally:
        if wrote_env:
            env.unlink()
        if made:
            secrets.rmdir()


def test_every_package_the_service_imports_is_a_declared_dependency():
    """The image installs the declared dependencies only (``pip install .``): a module imported
    by the service but brought here by the test extras would fail there at start-up."""
    import ast
    import re
    import sys
    import tomllib
    from importlib.metadata import packages_distributions

    declared = {
        re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    distributions = packages_distributions()
    imported: set[str] = set()
    for path in (REPO / "consent_service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"consent_service", "__future__"}
    undeclared = {
        module: distributions.get(module)
        for module in third_party
        if not {d.lower().replace("_", "-") for d in distributions.get(module, [module])} & declared
    }
    assert undeclared == {}
