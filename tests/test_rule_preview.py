"""The rule preview (services.preview): replaying recorded decisions about members against a
proposed rule, with the engine's own matching (issue 7, "previews ... how many of the last 90
days' decisions it would have changed")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from governance_helpers import (
    APPROVAL_RULE,
    COUNCIL_A,
    COUNCIL_B,
    GOVERNMENT,
    NATION_A,
    OUTSIDER,
    RESEARCHER,
    Governance,
)
from sqlalchemy import update

from consent_service.core.caller import Caller, Via
from consent_service.errors import Forbidden, NotFound, UnknownCode
from consent_service.services.preview import ChangedRequests, RulePreview, preview_rule
from consent_service.storage.models import DecisionCommunity

STEWARD = Caller(
    organization=COUNCIL_A, client_id="user:test", scopes=frozenset({"rules:write"}), via=Via.OPERATOR
)


@pytest.fixture
def gov(client: FlaskClient, world: Any) -> Governance:
    governance = Governance(client, world)
    governance.consent()
    governance.consent(subject=OUTSIDER, communities=[])
    return governance


def preview(
    gov: Governance,
    *,
    effect: str = "deny",
    purposes: tuple[str, ...] = ("research",),
    categories: tuple[str, ...] = ("health",),
    requesters: tuple[str, ...] = ("*",),
    caller: Caller = STEWARD,
    community: str = NATION_A,
) -> RulePreview:
    return preview_rule(
        gov.world.services,
        caller=caller,
        community_id=community,
        effect=effect,
        purposes=list(purposes),
        data_categories=list(categories),
        requesters=list(requesters),
        now=datetime.now(UTC),
    )


class TestWhatCounts:
    def test_permits_the_rule_matches_are_changed_others_are_not(self, gov: Governance) -> None:
        gov.ask("research", "health")
        gov.ask("research", "mental-health")  # a child of the rule's category: matched
        gov.ask("research", "housing")  # not matched
        gov.ask("service-planning", "health")  # not matched
        gov.ask("research", "health", subject=OUTSIDER)  # not a member: not considered
        result = preview(gov)
        assert (result.considered, result.matched, result.changed) == (4, 2, 2)
        assert result.changed_by == [ChangedRequests(requester=RESEARCHER, purpose="research", count=2)]

    def test_a_rule_on_a_child_matches_a_request_for_its_parent(self, gov: Governance) -> None:
        gov.ask("research", "health")
        assert preview(gov, categories=("mental-health",)).changed == 1

    def test_a_denied_request_stays_denied(self, gov: Governance) -> None:
        gov.rule()
        gov.ask("research", "health")
        result = preview(gov, requesters=(RESEARCHER,))  # the same rule again would be a duplicate
        assert (result.matched, result.changed) == (1, 0)

    def test_requesters_and_wildcards(self, gov: Governance) -> None:
        gov.ask("research", "health")
        gov.ask("service-planning", "housing", requester=GOVERNMENT)
        assert preview(gov, requesters=(GOVERNMENT,)).changed == 0
        assert (
            preview(gov, purposes=("service-planning",), categories=("*",), requesters=(GOVERNMENT,)).changed
            == 1
        )

    def test_only_the_last_90_days(self, app: Any, gov: Governance) -> None:
        gov.ask("research", "health")
        with app.extensions["consent_service"].sessions() as session:
            session.execute(update(DecisionCommunity).values(at=datetime.now(UTC) - timedelta(days=91)))
            session.commit()
        gov.ask("research", "health")
        result = preview(gov)
        assert (result.considered, result.changed) == (1, 1)


class TestRequireApproval:
    def test_a_permit_covered_by_an_approval_in_force_is_not_changed(self, gov: Governance) -> None:
        gov.ask("research", "health")
        assert preview(gov, effect="require_approval").changed == 1
        gov.approval()
        assert preview(gov, effect="require_approval").changed == 0

    def test_a_revoked_approval_does_not_count(self, gov: Governance) -> None:
        gov.ask("research", "health")
        gov.revoke(gov.approval())
        assert preview(gov, effect="require_approval").changed == 1

    def test_the_preview_agrees_with_the_engine(self, gov: Governance) -> None:
        """What the preview says would change is what the real rule then does."""
        for _ in range(3):
            gov.ask("research", "health")
        assert preview(gov, effect="require_approval").changed == 3
        gov.rule(base=APPROVAL_RULE)
        assert [gov.ask("research", "health")["decision"] for _ in range(3)] == ["deny"] * 3


class TestChecks:
    def test_only_a_steward_of_the_community(self, gov: Governance) -> None:
        other = Caller(
            organization=COUNCIL_B, client_id="user:b", scopes=frozenset({"rules:write"}), via=Via.OPERATOR
        )
        with pytest.raises(Forbidden):
            preview(gov, caller=other)
        with pytest.raises(NotFound):
            preview(gov, community="nation-z")

    def test_unknown_codes_are_refused(self, gov: Governance) -> None:
        with pytest.raises(UnknownCode) as raised:
            preview(gov, categories=("no-such-category",), requesters=("nobody",))
        assert set(raised.value.details) == {"data_categories", "requesters"}

    def test_nothing_is_written(self, app: Any, gov: Governance) -> None:
        from api_helpers import unchanged_tables

        gov.ask("research", "health")
        with unchanged_tables(app):
            preview(gov)
