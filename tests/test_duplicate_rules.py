"""A community's rule is judged by one function for its preview and its saving
(``services.rules.checked_terms``); through the API: a rule with the same effect, requesters,
purposes and categories as an active rule of the community is refused (409 ``duplicate_rule``
naming the rule in force), and a deny rule carrying obligations is refused (400), nothing written.
Run on SQLite and, with ``CONSENT_TEST_DATABASE_URL``, on PostgreSQL (issue 14, item 7)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from api_helpers import all_rows_as_text, assert_error, assert_ok, body_with
from flask.testing import FlaskClient
from governance_helpers import APPROVAL_RULE, DENY_RULE, NATION_A, NATION_B, RESEARCHER, Governance


@pytest.fixture
def gov(client: FlaskClient, world: Any) -> Governance:
    return Governance(client, world)


def post_rule(gov: Governance, body: dict[str, Any], community: str = NATION_A, **headers_of: Any) -> Any:
    return gov.client.post(
        f"/v1/communities/{community}/rules",
        headers=headers_of.get("headers") or gov.steward(community),
        json=body,
    )


class TestDuplicates:
    def test_the_same_rule_again_is_refused_naming_the_rule_in_force(self, app: Any, gov: Governance) -> None:
        first = gov.rule()
        before = all_rows_as_text(app)

        error = assert_error(post_rule(gov, DENY_RULE), 409, "duplicate_rule")

        assert error["details"] == {"rule_id": first["id"]}
        assert "already has this rule in force" in error["message"]
        assert all_rows_as_text(app) == before  # nothing written, not even an audit entry

    def test_the_order_of_codes_and_repeats_do_not_make_it_another_rule(self, gov: Governance) -> None:
        first = gov.rule(purposes=["research", "service-planning"], data_categories=["health", "housing"])
        again = body_with(
            DENY_RULE,
            purposes=["service-planning", "research", "research"],
            data_categories=["housing", "health"],
            reason="other words do not make another rule",
        )
        error = assert_error(post_rule(gov, again), 409, "duplicate_rule")
        assert error["details"]["rule_id"] == first["id"]

    @pytest.mark.parametrize(
        "changes",
        [
            {"effect": "require_approval"},
            {"requesters": [RESEARCHER]},
            {"purposes": ["service-planning"]},
            {"data_categories": ["health", "housing"]},
            {"data_categories": ["*"]},
        ],
        ids=["effect", "requesters", "purposes", "categories", "all categories"],
    )
    def test_a_rule_differing_in_one_term_is_another_rule(
        self, gov: Governance, changes: dict[str, Any]
    ) -> None:
        gov.rule()
        assert_ok(post_rule(gov, body_with(DENY_RULE, **changes)), 201)

    def test_once_retired_the_same_rule_may_be_made_again(self, gov: Governance) -> None:
        gov.retire(gov.rule(), reason="to be remade")
        assert_ok(post_rule(gov, DENY_RULE), 201)

    def test_another_community_may_have_the_same_rule(self, gov: Governance) -> None:
        gov.rule(NATION_A)
        assert_ok(post_rule(gov, DENY_RULE, NATION_B), 201)

    def test_labels_obligations_and_reason_do_not_make_it_another_rule(self, gov: Governance) -> None:
        first = gov.rule(base=APPROVAL_RULE)
        again = body_with(APPROVAL_RULE, obligations={}, labels=["TK Attribution"], reason="other")
        assert assert_error(post_rule(gov, again), 409, "duplicate_rule")["details"]["rule_id"] == first["id"]

    def test_someone_who_is_not_a_steward_learns_nothing_of_the_rule(self, gov: Governance) -> None:
        first = gov.rule(NATION_A)
        response = post_rule(gov, DENY_RULE, NATION_A, headers=gov.steward(NATION_B))
        assert_error(response, 403, "forbidden")
        assert first["id"] not in response.get_data(as_text=True)


class TestConditionsOnlyOnWhatARuleAllows:
    def test_a_deny_rule_with_obligations_is_refused_naming_the_field(
        self, app: Any, gov: Governance
    ) -> None:
        headers = gov.steward()  # its client is made before the snapshot
        before = all_rows_as_text(app)
        body = body_with(DENY_RULE, obligations={"no_linkage": True})
        error = assert_error(post_rule(gov, body, headers=headers), 400, "validation_error")
        assert error["details"] == {
            "obligations": ["a deny rule carries no obligations: they travel only with what a rule allows"]
        }
        assert all_rows_as_text(app) == before

    def test_a_deny_rule_may_carry_labels(self, gov: Governance) -> None:
        rule = gov.rule(labels=["tk cs", "TK Culturally Sensitive"])
        assert rule["labels"] == ["TK Culturally Sensitive"]


class TestAtTheSameTime:
    def test_the_same_rule_posted_four_times_at_once_is_made_once(self, app: Any, gov: Governance) -> None:
        headers = gov.steward()
        statuses: list[int] = []

        def post() -> None:
            response = app.test_client().post(
                f"/v1/communities/{NATION_A}/rules", headers=headers, json=DENY_RULE
            )
            statuses.append(response.status_code)

        threads = [threading.Thread(target=post) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(statuses) == [201, 409, 409, 409]
        rules = assert_ok(gov.client.get(f"/v1/communities/{NATION_A}/rules", headers=headers))["rules"]
        assert len(rules) == 1
