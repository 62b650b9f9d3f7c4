"""The steward pages of self-governance (issue 14, items 1 and 2): stewards and clients, members.

A signed-in steward is a person of their own (``user:<id>``): they confirm a change an API
client proposed, cannot confirm their own proposal, confirm pending memberships in bulk and
disable a client that acts for the community. A steward of another community gets 403.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from api_helpers import assert_ok
from flask import Flask
from flask.testing import FlaskClient
from governance_helpers import COUNCIL_A, COUNCIL_B, NATION_A, Governance
from web_helpers import CHEAP_PASSWORDS, STEWARD_A, STEWARD_B, make_people, post_form, signed_in, text_of


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, **CHEAP_PASSWORDS}


@pytest.fixture
def gov(client: FlaskClient, world: Any) -> Governance:
    governance = Governance(client, world)
    make_people(world)
    return governance


@pytest.fixture
def browser(app: Flask, gov: Governance) -> FlaskClient:
    return signed_in(app.test_client(), STEWARD_A)


def stewards(client: FlaskClient, gov: Governance) -> list[str]:
    answer = client.get(f"/v1/communities/{NATION_A}/steward-changes", headers=gov.steward())
    return assert_ok(answer)["stewards"]  # type: ignore[no-any-return]


def test_a_steward_confirms_a_change_a_client_proposed(client, gov, browser):
    change = assert_ok(
        client.post(
            f"/v1/communities/{NATION_A}/steward-changes",
            headers=gov.steward(),
            json={"action": "add", "organization": COUNCIL_B},
        ),
        201,
    )
    page = text_of(browser.get(f"/web/communities/{NATION_A}/stewards"))
    assert 'id="waiting-changes"' in page and change["id"] in page
    answer = post_form(browser, f"/web/communities/{NATION_A}/steward-changes/{change['id']}/confirm", {})
    assert answer.status_code == 302
    assert stewards(client, gov) == [COUNCIL_A, COUNCIL_B]
    assert 'id="no-waiting-changes"' in text_of(browser.get(f"/web/communities/{NATION_A}/stewards"))


def test_a_steward_proposes_on_the_page_and_cannot_confirm_it_alone(client, gov, browser):
    answer = post_form(
        browser, f"/web/communities/{NATION_A}/steward-changes", {"action": "add", "organization": COUNCIL_B}
    )
    assert answer.status_code == 302
    listed = assert_ok(client.get(f"/v1/communities/{NATION_A}/steward-changes", headers=gov.steward()))
    (change,) = listed["changes"]
    page = text_of(browser.get(f"/web/communities/{NATION_A}/stewards"))
    assert "You proposed this change" in page
    post_form(browser, f"/web/communities/{NATION_A}/steward-changes/{change['id']}/confirm", {})
    assert stewards(client, gov) == [COUNCIL_A]
    assert "another steward must confirm it" in text_of(browser.get(f"/web/communities/{NATION_A}/stewards"))
    # The API client of the council is another person: it confirms.
    confirmed = client.post(
        f"/v1/communities/{NATION_A}/steward-changes/{change['id']}/confirm", headers=gov.steward()
    )
    assert assert_ok(confirmed)["stewards"] == [COUNCIL_A, COUNCIL_B]


def test_a_bad_proposal_says_what_is_wrong_and_writes_nothing(client, gov, browser):
    post_form(browser, f"/web/communities/{NATION_A}/steward-changes", {"action": "add", "organization": ""})
    listed = assert_ok(client.get(f"/v1/communities/{NATION_A}/steward-changes", headers=gov.steward()))
    assert listed["changes"] == []


def test_pending_members_are_counted_and_confirmed_in_bulk(client, gov, browser):
    gov.consent()
    gov.consent(subject={"system": "urn:outreach-org:client", "value": "C-3000"})
    page = text_of(browser.get(f"/web/communities/{NATION_A}/members"))
    assert "Waiting for confirmation: 2" in page and "C-1042" not in page
    ids = [
        m["id"]
        for m in assert_ok(client.get(f"/v1/communities/{NATION_A}/memberships", headers=gov.steward()))[
            "pending"
        ]
    ]
    answer = post_form(browser, f"/web/communities/{NATION_A}/memberships/confirm", {"memberships": ids})
    assert answer.status_code == 302
    page = text_of(browser.get(f"/web/communities/{NATION_A}/members"))
    assert "Confirmed: 2" in page and 'id="nothing-pending"' in page


def test_a_steward_disables_a_client_that_acts_for_the_community(client, gov, world, browser):
    client_id, _ = world.credentials(COUNCIL_A, "community:read")
    assert client_id in text_of(browser.get(f"/web/communities/{NATION_A}/stewards"))
    answer = post_form(browser, f"/web/communities/{NATION_A}/clients/{client_id}/disable", {})
    assert answer.status_code == 302
    listed = assert_ok(client.get(f"/v1/communities/{NATION_A}/clients", headers=gov.steward()))
    assert [c["disabled_at"] is not None for c in listed["clients"] if c["client_id"] == client_id] == [True]


def test_a_steward_of_another_community_gets_403(app, gov):
    other = signed_in(app.test_client(), STEWARD_B)
    for path in ("stewards", "members"):
        assert other.get(f"/web/communities/{NATION_A}/{path}").status_code == 403
    one = {"memberships": [str(uuid.uuid4())]}
    assert post_form(other, f"/web/communities/{NATION_A}/memberships/confirm", one).status_code == 403
    assert (
        post_form(
            other, f"/web/communities/{NATION_A}/steward-changes/{uuid.uuid4()}/confirm", {}
        ).status_code
        == 403
    )
