"""Abuse limits (issue 6 item 7): per client once the token is valid, else per address; 429 in the
contract's body with Retry-After; failed token requests limited per client id and per address;
counters shared across instances through Redis. The shared-counter tests need Redis on
127.0.0.1:6379: without it they are skipped locally and FAIL in CI (``CI=true``).

Limits here are "N per hour": a fixed window starts at its first hit, so a test never straddles
a reset.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from api_helpers import assert_error, assert_ok
from conftest import World, basic_auth, skip_or_fail_in_ci

from consent_service import create_app
from consent_service.container import EXTENSION

REDIS_URL = "redis://127.0.0.1:6379"
START_REDIS = "start it with: redis-server --daemonize yes (Debian: apt-get install -y redis-server)"


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


def limited_app(app_config: dict[str, Any], **limits: Any):
    config = {
        **app_config,
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_DEFAULT": "1000 per hour",
        "RATELIMIT_TOKEN": "1000 per hour",
        "RATELIMIT_TOKEN_FAILURES": "1000 per hour",
        **limits,
    }
    return create_app(config)


@pytest.fixture
def make_app(app_config):
    made = []

    def make(**limits: Any):
        application = limited_app(app_config, **limits)
        made.append(application)
        return application

    yield make
    for application in made:
        application.extensions[EXTENSION].sessions.kw["bind"].dispose()


def at(address: str) -> dict[str, Any]:
    """Keyword arguments of a test-client call that make it come from ``address``."""
    return {"environ_base": {"REMOTE_ADDR": address}}


def vocabulary(client, headers: dict[str, str] | None = None, address: str = "10.0.0.1"):
    return client.get("/v1/vocabulary", headers=headers or {}, **at(address))


def assert_rate_limited(response) -> int:
    error = assert_error(response, 429, "rate_limited")
    seconds = error["details"]["retry_after"]
    assert isinstance(seconds, int) and seconds >= 1, error
    assert response.headers["Retry-After"] == str(seconds)
    return seconds


class TestPerClient:
    def test_each_client_has_its_own_budget_whatever_its_address(self, make_app):
        app = make_app(RATELIMIT_DEFAULT="3 per hour", RATELIMIT_TOKEN="1000 per hour")
        client = app.test_client()
        world = World(app, client)
        a, b = world.headers("outreach-org", "authorize"), world.headers("gla", "authorize")
        for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # one client, three addresses
            assert_ok(vocabulary(client, a, address))
        assert_rate_limited(vocabulary(client, a, "10.0.0.4"))
        for _ in range(3):  # another client from the first client's address: untouched
            assert_ok(vocabulary(client, b, "10.0.0.1"))
        assert_rate_limited(vocabulary(client, b, "10.0.0.1"))

    def test_the_budget_covers_all_endpoints_together(self, make_app):
        app = make_app(RATELIMIT_DEFAULT="3 per hour")
        client = app.test_client()
        headers = World(app, client).headers("gla", "authorize")
        assert_ok(vocabulary(client, headers))
        assert_ok(
            client.post(
                "/v1/authorize",
                headers=headers,
                **at("10.0.0.1"),
                json={
                    "subject": {"system": "urn:s", "value": "v"},
                    "purpose": "research",
                    "data_categories": ["health"],
                },
            )
        )
        assert_error(client.get("/v1/decisions/nope", headers=headers, **at("10.0.0.1")), 404, "not_found")
        assert_rate_limited(vocabulary(client, headers))

    def test_without_a_valid_token_requests_count_per_address_and_still_answer_401(self, make_app):
        app = make_app(RATELIMIT_DEFAULT="3 per hour")
        client = app.test_client()
        forged = {"Authorization": "Bearer not.a.token"}
        for headers in ({}, forged, {"Authorization": "Basic abc"}):
            assert_error(vocabulary(client, headers, "10.0.0.9"), 401, "unauthorized")
        assert_rate_limited(vocabulary(client, forged, "10.0.0.9"))
        assert_error(vocabulary(client, forged, "10.0.0.10"), 401, "unauthorized")  # another address

    def test_a_disabled_clients_token_is_still_refused_401(self, make_app):
        app = make_app()
        client = app.test_client()
        world = World(app, client)
        client_id, secret = world.credentials("gla", "authorize")
        token = assert_ok(
            client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers=basic_auth(client_id, secret),
            )
        )["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert_ok(vocabulary(client, headers))
        assert_ok(client.post(f"/v1/clients/{client_id}/disable", headers=world.admin()))
        assert_error(vocabulary(client, headers), 401, "unauthorized")

    def test_the_answer_carries_rate_limit_headers(self, make_app):
        app = make_app(RATELIMIT_DEFAULT="3 per hour")
        response = vocabulary(app.test_client(), {"Authorization": "Bearer x"})
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == "2"

    def test_health_checks_are_never_limited(self, make_app):
        app = make_app(RATELIMIT_DEFAULT="2 per hour")
        client = app.test_client()
        for _ in range(5):
            assert_ok(client.get("/healthz", **at("10.0.0.5")))
            assert_ok(client.get("/readyz", **at("10.0.0.5")))

    def test_disabled_limits_never_answer_429(self, app_config):
        app = create_app({**app_config, "RATELIMIT_ENABLED": False, "RATELIMIT_DEFAULT": "1 per hour"})
        client = app.test_client()
        for _ in range(3):
            assert_error(vocabulary(client), 401, "unauthorized")


def token_request(client, client_id: str, secret: str, address: str, *, method: str = "basic"):
    data = {"grant_type": "client_credentials"}
    if method == "basic":
        return client.post("/oauth/token", data=data, headers=basic_auth(client_id, secret), **at(address))
    return client.post(
        "/oauth/token", data={**data, "client_id": client_id, "client_secret": secret}, **at(address)
    )


class TestTokenEndpoint:
    @pytest.fixture
    def app(self, make_app):
        return make_app(RATELIMIT_TOKEN_FAILURES="3 per hour", RATELIMIT_TOKEN="1000 per hour")

    @pytest.fixture
    def creds(self, app):
        return World(app, app.test_client()).credentials("outreach-org", "authorize")

    @pytest.mark.parametrize("method", ["basic", "post"])
    def test_failures_are_limited_per_client_id_from_any_address(self, app, creds, method):
        client = app.test_client()
        for i in range(3):
            assert_error(
                token_request(client, creds[0], "wrong", f"10.1.0.{i}", method=method), 401, "unauthorized"
            )
        # The right secret, from a fresh address: this client id has used its failures.
        assert_rate_limited(token_request(client, *creds, "10.1.0.99", method=method))

    def test_failures_are_limited_per_address_whatever_the_client_id(self, app, creds):
        client = app.test_client()
        for i in range(3):
            assert_error(token_request(client, f"cl_guess{i}", "wrong", "10.2.0.1"), 401, "unauthorized")
        assert_rate_limited(token_request(client, *creds, "10.2.0.1"))
        assert_ok(token_request(client, *creds, "10.2.0.2"))

    def test_requests_naming_no_client_count_per_address(self, app):
        client = app.test_client()
        anonymous = {"data": {"grant_type": "client_credentials"}, **at("10.2.1.1")}
        for _ in range(3):
            assert_error(client.post("/oauth/token", **anonymous), 401, "unauthorized")
        assert_rate_limited(client.post("/oauth/token", **anonymous))

    def test_successful_requests_do_not_use_the_failure_budget(self, app, creds):
        client = app.test_client()
        for _ in range(6):
            assert_ok(token_request(client, *creds, "10.3.0.1"))

    def test_all_token_requests_are_limited_per_address(self, make_app):
        app = make_app(RATELIMIT_TOKEN="2 per hour")
        client = app.test_client()
        creds = World(app, app.test_client()).credentials("outreach-org", "authorize")
        assert_ok(token_request(client, *creds, "10.4.0.1"))
        assert_ok(token_request(client, *creds, "10.4.0.1"))
        assert_rate_limited(token_request(client, *creds, "10.4.0.1"))
        assert_ok(token_request(client, *creds, "10.4.0.2"))

    def test_a_hostile_client_id_never_reaches_the_log(self, app, caplog):
        client = app.test_client()
        secretish = "s3cr3t-" + uuid.uuid4().hex
        caplog.set_level("DEBUG")
        for _ in range(4):
            token_request(client, secretish, "x", "10.5.0.1")
        assert secretish not in caplog.text


class TestSharedCounters:
    @pytest.fixture(autouse=True)
    def redis_reachable(self) -> None:
        if not _redis_available():
            skip_or_fail_in_ci(f"Redis is not reachable on 127.0.0.1:6379; {START_REDIS}")

    @pytest.fixture
    def prefix(self):
        prefix = f"cs-test-{uuid.uuid4().hex}"
        yield prefix
        import redis

        connection = redis.Redis.from_url(REDIS_URL)
        for key in connection.scan_iter(f"*{prefix}*"):
            connection.delete(key)
        connection.close()

    def test_two_instances_share_one_budget_per_client(self, make_app, prefix):
        shared = {
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "RATELIMIT_KEY_PREFIX": prefix,
            "RATELIMIT_DEFAULT": "3 per hour",
        }
        first, second = make_app(**shared), make_app(**shared)
        headers = World(first, first.test_client()).headers("gla", "authorize")
        assert_ok(vocabulary(first.test_client(), headers))
        assert_ok(vocabulary(second.test_client(), headers))
        assert_ok(vocabulary(first.test_client(), headers))
        assert_rate_limited(vocabulary(second.test_client(), headers))
        assert_rate_limited(vocabulary(first.test_client(), headers))

    def test_failed_token_requests_are_counted_across_instances(self, make_app, prefix):
        shared = {
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "RATELIMIT_KEY_PREFIX": prefix,
            "RATELIMIT_TOKEN_FAILURES": "2 per hour",
        }
        first, second = make_app(**shared), make_app(**shared)
        creds = World(first, first.test_client()).credentials("outreach-org", "authorize")
        assert_error(token_request(first.test_client(), creds[0], "wrong", "10.6.0.1"), 401, "unauthorized")
        assert_error(token_request(second.test_client(), creds[0], "wrong", "10.6.0.2"), 401, "unauthorized")
        assert_rate_limited(token_request(second.test_client(), *creds, "10.6.0.3"))

    def test_another_deployments_prefix_does_not_share_the_budget(self, make_app, prefix):
        first = make_app(
            RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix, RATELIMIT_DEFAULT="1 per hour"
        )
        other = make_app(
            RATELIMIT_STORAGE_URI=REDIS_URL,
            RATELIMIT_KEY_PREFIX=prefix + "-other",
            RATELIMIT_DEFAULT="1 per hour",
        )
        assert_error(vocabulary(first.test_client()), 401, "unauthorized")
        assert_error(vocabulary(other.test_client()), 401, "unauthorized")


class TestStorageOutage:
    def test_an_unreachable_redis_falls_back_to_counting_in_memory(self, make_app, caplog):
        app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1", RATELIMIT_DEFAULT="2 per hour")
        client = app.test_client()
        caplog.set_level("WARNING")
        assert_error(vocabulary(client), 401, "unauthorized")  # served, not a 500
        assert_error(vocabulary(client), 401, "unauthorized")
        assert_rate_limited(vocabulary(client))  # and still limited
