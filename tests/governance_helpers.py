"""A small world for the community governance tests, driven only through the HTTP API.

Two communities (Nation A and Nation B, each with its council as steward), a researcher
(univ), a service provider that records consents (outreach-org) and a government requester
(gla). Bodies start from the contract's examples and are changed with keyword overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_helpers import SUBJECT, assert_ok, body_with
from conftest import Seed, Snapshot, seeded
from flask.testing import FlaskClient

from consent_service.storage import communities as community_store

NATION_A, NATION_B = "nation-a", "nation-b"
COUNCIL_A, COUNCIL_B = "nation-a-council", "nation-b-council"
RESEARCHER, PROVIDER, GOVERNMENT = "univ", "outreach-org", "gla"

MEMBER = SUBJECT
OUTSIDER = {"system": "urn:outreach-org:client", "value": "C-2077"}

MEMBER_CONSENT = {
    "subject": MEMBER,
    "communities": [NATION_A],
    "purposes": ["research", "service-planning"],
    "data_categories": ["health", "housing"],
    "recipients": [RESEARCHER, GOVERNMENT],
    "evidence": {"method": "verbal", "obtained_by": "worker-17", "notes": "interpreter present"},
}

DENY_RULE = {
    "effect": "deny",
    "purposes": ["research"],
    "data_categories": ["health"],
    "requesters": ["*"],
    "reason": "Nation A has not approved health research",
}

APPROVAL_RULE = {
    "effect": "require_approval",
    "purposes": ["research"],
    "data_categories": ["health"],
    "requesters": ["*"],
    "obligations": {"aggregate_only": True, "min_cell_size": 10, "return_results_to_community": True},
    "labels": ["TK Non-Commercial", "BC Consent Verified"],
    "reason": "Health research needs the council's data sharing agreement",
}

APPROVAL = {"requester": RESEARCHER, "purposes": ["research"], "data_categories": ["health"]}


class Governance:
    """The actors and the calls the governance tests make, each asserting its success status."""

    def __init__(self, client: FlaskClient, world: Any, *, show_community_id: bool = False) -> None:
        self.client, self.world = client, world
        for org_id, org_type in (
            (COUNCIL_A, "community-governance"),
            (COUNCIL_B, "community-governance"),
            (RESEARCHER, "research"),
            (PROVIDER, "service-provider"),
            (GOVERNMENT, "government"),
        ):
            world.org(org_id, org_type)
        for community, council in ((NATION_A, COUNCIL_A), (NATION_B, COUNCIL_B)):
            assert_ok(
                client.post(
                    "/v1/communities",
                    headers=world.admin(),
                    json={
                        "id": community,
                        "name": community.replace("-", " ").title(),
                        "stewards": [council],
                        "show_community_id": show_community_id,
                    },
                ),
                201,
            )

    @classmethod
    def resumed(cls, client: FlaskClient, world: Any) -> Governance:
        """The governance of a test whose database is a copy of a seeded one (its tokens adopted)."""
        governance = cls.__new__(cls)
        governance.client, governance.world = client, world
        return governance

    # -- who calls ------------------------------------------------------------------------

    def steward(self, community: str = NATION_A, *scopes: str) -> dict[str, str]:
        council = COUNCIL_A if community == NATION_A else COUNCIL_B
        return self.world.headers(council, *(scopes or ("rules:write",)))

    def recorder(self) -> dict[str, str]:
        return self.world.headers(PROVIDER, "consents:write")

    # -- what they do -----------------------------------------------------------------------

    def consent(self, **changes: Any) -> dict[str, Any]:
        response = self.client.post(
            "/v1/consents", headers=self.recorder(), json=body_with(MEMBER_CONSENT, **changes)
        )
        return assert_ok(response, 201)

    def rule(
        self, community: str = NATION_A, base: dict[str, Any] = DENY_RULE, **changes: Any
    ) -> dict[str, Any]:
        response = self.client.post(
            f"/v1/communities/{community}/rules",
            headers=self.steward(community),
            json=body_with(base, **changes),
        )
        return assert_ok(response, 201)

    def retire(self, rule: dict[str, Any], **body: Any) -> dict[str, Any]:
        response = self.client.delete(
            f"/v1/communities/{rule['community']}/rules/{rule['id']}",
            headers=self.steward(rule["community"]),
            json=body or None,
        )
        return assert_ok(response)

    def approval(self, community: str = NATION_A, **changes: Any) -> dict[str, Any]:
        response = self.client.post(
            f"/v1/communities/{community}/approvals",
            headers=self.steward(community),
            json=body_with(APPROVAL, **changes),
        )
        return assert_ok(response, 201)

    def revoke(self, approval: dict[str, Any], **body: Any) -> dict[str, Any]:
        response = self.client.post(
            f"/v1/communities/{approval['community']}/approvals/{approval['id']}/revoke",
            headers=self.steward(approval["community"]),
            json=body,
        )
        return assert_ok(response)

    def ask(
        self,
        purpose: str = "research",
        *categories: str,
        subject: dict[str, str] = MEMBER,
        requester: str = RESEARCHER,
    ) -> dict[str, Any]:
        body = {"subject": subject, "purpose": purpose, "data_categories": list(categories or ("health",))}
        headers = self.world.headers(requester, "authorize")
        return assert_ok(self.client.post("/v1/authorize", headers=headers, json=body))

    def decisions(self, community: str = NATION_A, **query: Any) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/communities/{community}/decisions", headers=self.steward(community), query_string=query
        )
        return assert_ok(response)

    def policy_version(self, community: str = NATION_A) -> int:
        with self.world.services.sessions() as session:
            row = community_store.get(session, community)
            assert row is not None
            return row.policy_version


def reason_codes(decision: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in decision["reasons"]]


def seeded_governance(
    label: str,
    *,
    show_community_id: bool = False,
    also: Callable[[Governance], Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[Any, ...]:
    """Fixtures for a module whose tests start from the governance world: ``gov`` is a
    :class:`Governance` on a copy of a world made once per module and backend, with the tokens
    most tests use already given (``conftest.seeded``). Tests that do not ask for ``gov`` start
    from an empty database as usual. Use: ``governance_seeds, seed, database_start, gov =
    seeded_governance("label")`` at the top of the module. ``also``: what the module's tests all
    begin with besides (consents, people who sign in); ``settings``: the module's settings that
    shape it."""

    def build(world: Any) -> None:
        governance = Governance(world.client, world, show_community_id=show_community_id)
        for community in (NATION_A, NATION_B):
            governance.steward(community)
        governance.recorder()
        world.headers(RESEARCHER, "authorize")
        if also is not None:
            also(governance)

    @pytest.fixture(scope="module", name="governance_seeds")
    def governance_seeds(
        request: pytest.FixtureRequest, database_backend: str
    ) -> Iterator[Callable[[], Seed]]:
        with seeded(request, database_backend, label, build, settings) as seeds:
            yield seeds

    @pytest.fixture(name="seed")
    def seed(governance_seeds: Callable[[], Seed]) -> Seed:
        return governance_seeds()

    @pytest.fixture(name="database_start")
    def database_start(request: pytest.FixtureRequest) -> Snapshot | None:
        return request.getfixturevalue("seed").snapshot if "gov" in request.fixturenames else None

    @pytest.fixture(name="gov")
    def gov(client: FlaskClient, world: Any, seed: Seed) -> Governance:
        world.adopt(seed.tokens)
        return Governance.resumed(client, world)

    return governance_seeds, seed, database_start, gov
