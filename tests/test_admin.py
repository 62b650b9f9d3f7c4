"""Administration (contract, "Administration", scope admin): organizations, clients, communities."""

from __future__ import annotations

import pytest
from api_helpers import (
    CONSENT,
    all_rows_as_text,
    assert_error,
    assert_ok,
    body_with,
    rough_sleeper_orgs,
    unchanged_tables,
)
from conftest import basic_auth

HOME_OFFICE = {"id": "home-office", "name": "Home Office", "type": "government"}
CLIENT = {"organization": "home-office", "name": "case system", "scopes": ["authorize"]}
NATION_A = {"id": "nation-a", "name": "Nation A", "stewards": ["nation-a-council"]}


def create(client, headers, path: str, body) -> object:
    return client.post(path, json=body, headers=headers)


@pytest.fixture
def admin(world) -> dict[str, str]:
    return world.admin()


@pytest.fixture
def home_office(client, admin) -> dict:
    return assert_ok(create(client, admin, "/v1/organizations", HOME_OFFICE), 201)


class TestCreateOrganization:
    def test_creates_it(self, client, admin):
        body = assert_ok(create(client, admin, "/v1/organizations", HOME_OFFICE), 201)
        assert {k: body[k] for k in HOME_OFFICE} == HOME_OFFICE

    @pytest.mark.parametrize(
        "org_type", ["service-provider", "government", "research", "community-governance", "other"]
    )
    def test_accepts_every_contract_type(self, client, admin, org_type):
        assert_ok(create(client, admin, "/v1/organizations", body_with(HOME_OFFICE, type=org_type)), 201)

    def test_a_duplicate_id_is_409(self, client, admin, home_office):
        with unchanged_tables(client.application):
            response = create(client, admin, "/v1/organizations", body_with(HOME_OFFICE, name="Other"))
        assert_error(response, 409, "conflict")

    @pytest.mark.parametrize(
        "changes",
        [
            {"type": "charity"},
            {"type": 1},
            {"id": "has space"},
            {"id": ""},
            {"id": 7},
            {"name": ""},
            {"name": ["Home Office"]},
            {"id": "x" * 65},
        ],
    )
    def test_bad_values_are_400(self, client, admin, changes):
        with unchanged_tables(client.application):
            response = create(client, admin, "/v1/organizations", body_with(HOME_OFFICE, **changes))
        assert set(assert_error(response, 400, "validation_error")["details"]) == set(changes)

    def test_needs_the_admin_scope(self, client, world):
        headers = world.headers("outreach-org", "consents:write", "consents:read", "authorize")
        with unchanged_tables(client.application):
            assert_error(create(client, headers, "/v1/organizations", HOME_OFFICE), 403, "forbidden")


class TestCreateClient:
    def test_creates_a_client_of_the_organization_named_in_the_body(self, client, admin, home_office):
        body = assert_ok(create(client, admin, "/v1/clients", CLIENT), 201)
        assert body["organization"] == "home-office"
        assert body["scopes"] == ["authorize"]
        assert body["client_id"] and body["client_secret"]

    def test_its_token_acts_for_that_organization(self, client, world, admin):
        rough_sleeper_orgs(world)
        created = assert_ok(
            create(
                client,
                admin,
                "/v1/clients",
                body_with(CLIENT, organization="outreach-org", scopes=["consents:write"]),
            ),
            201,
        )
        token = assert_ok(
            client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers=basic_auth(created["client_id"], created["client_secret"]),
            )
        )
        consent = assert_ok(
            client.post(
                "/v1/consents", json=CONSENT, headers={"Authorization": f"Bearer {token['access_token']}"}
            ),
            201,
        )
        assert consent["recorded_by"] == "outreach-org"

    def test_the_secret_is_stored_only_as_a_hash(self, client, app, admin, home_office):
        created = assert_ok(create(client, admin, "/v1/clients", CLIENT), 201)
        stored = all_rows_as_text(app)
        assert created["client_id"] in stored
        assert created["client_secret"] not in stored

    def test_the_secret_is_shown_only_once(self, client, admin, home_office):
        created = assert_ok(create(client, admin, "/v1/clients", CLIENT), 201)
        disabled = assert_ok(client.post(f"/v1/clients/{created['client_id']}/disable", headers=admin))
        assert "client_secret" not in disabled
        assert created["client_secret"] not in str(disabled)

    def test_each_client_gets_its_own_id_and_secret(self, client, admin, home_office):
        first, second = (assert_ok(create(client, admin, "/v1/clients", CLIENT), 201) for _ in range(2))
        assert first["client_id"] != second["client_id"]
        assert first["client_secret"] != second["client_secret"]

    def test_an_unknown_organization_is_unknown_code(self, client, admin):
        with unchanged_tables(client.application):
            error = assert_error(create(client, admin, "/v1/clients", CLIENT), 400, "unknown_code")
        assert "organization" in error["details"]

    @pytest.mark.parametrize(
        "changes",
        [
            {"scopes": "authorize"},
            {"scopes": []},
            {"scopes": ["superuser"]},
            {"scopes": [1]},
            {"organization": 3},
            {"name": ""},
            {"name": None},
        ],
    )
    def test_bad_values_are_400(self, client, admin, home_office, changes):
        with unchanged_tables(client.application):
            response = create(client, admin, "/v1/clients", body_with(CLIENT, **changes))
        assert set(assert_error(response, 400, "validation_error")["details"]) == set(changes)

    def test_needs_the_admin_scope(self, client, world, home_office):
        headers = world.headers("home-office", "authorize")
        with unchanged_tables(client.application):
            response = create(client, headers, "/v1/clients", body_with(CLIENT, scopes=["admin"]))
        assert_error(response, 403, "forbidden")


class TestDisableClient:
    def test_an_unknown_client_is_404(self, client, admin):
        assert_error(client.post("/v1/clients/cl_nobody/disable", headers=admin), 404, "not_found")

    def test_disabling_twice_is_409(self, client, world, admin):
        client_id, _ = world.credentials("home-office", "authorize")
        assert_ok(client.post(f"/v1/clients/{client_id}/disable", headers=admin))
        assert_error(client.post(f"/v1/clients/{client_id}/disable", headers=admin), 409, "conflict")


class TestCreateCommunity:
    @pytest.fixture
    def council(self, world) -> str:
        return world.org("nation-a-council", "community-governance")

    def test_creates_it_with_its_stewards(self, client, admin, council):
        body = assert_ok(create(client, admin, "/v1/communities", NATION_A), 201)
        assert body["id"] == "nation-a"
        assert body["stewards"] == ["nation-a-council"]

    def test_stewards_must_exist(self, client, admin, council):
        with unchanged_tables(client.application):
            response = create(
                client,
                admin,
                "/v1/communities",
                body_with(NATION_A, stewards=["nation-a-council", "no-such-org"]),
            )
        error = assert_error(response, 400, "unknown_code")
        assert error["details"] == {"stewards": ["unknown organization: no-such-org"]}

    def test_a_duplicate_id_is_409(self, client, admin, council):
        assert_ok(create(client, admin, "/v1/communities", NATION_A), 201)
        with unchanged_tables(client.application):
            assert_error(create(client, admin, "/v1/communities", NATION_A), 409, "conflict")

    @pytest.mark.parametrize(
        "changes",
        [
            {"stewards": []},
            {"stewards": "nation-a-council"},
            {"stewards": [5]},
            {"id": "bad id"},
            {"name": 1},
        ],
    )
    def test_bad_values_are_400(self, client, admin, council, changes):
        with unchanged_tables(client.application):
            response = create(client, admin, "/v1/communities", body_with(NATION_A, **changes))
        assert set(assert_error(response, 400, "validation_error")["details"]) == set(changes)

    def test_needs_the_admin_scope(self, client, world, council):
        headers = world.headers("nation-a-council", "rules:write")
        with unchanged_tables(client.application):
            assert_error(create(client, headers, "/v1/communities", NATION_A), 403, "forbidden")
