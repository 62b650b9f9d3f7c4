"""The rule preview (services.preview): replaying recorded decisions about members against a
proposed rule, with the engine's own matching (issue 7, "previews ... how many of the last 90
days' decisions it would have changed")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from governance_helpers import (
    APPROVAL_RULE,
    COUNCIL_A,
    COUNCIL_B,
    GOVERNMENT,
    NATION_A,
    OUTSIDER,
    RESEARCHER,
    Governance,
    seeded_governance,
)
from sqlalchemy import update

from consent_service.core.caller import Caller, Via
from consent_service.errors import (
    DuplicateRule,
    Forbidden,
    NotFound,
    ServiceError,
    UnknownCode,
    ValidationFailed,
)
from consent_service.services.preview import ChangedRequests, RulePreview, preview_rule
from consent_service.storage.models import DecisionCommunity

STEWARD = Caller(
    organization=COUNCIL_A, client_id="user:test", scopes=frozenset({"rules:write"}), via=Via.OPERATOR
)


def _two_consents(governance: Governance) -> None:
    governance.consent()
    governance.consent(subject=OUTSIDER, communities=[])


governance_seeds, seed, database_start, gov = seeded_governance("rule-preview", also=_two_consents)


def preview(
    gov: Governance,
    *,
    effect: str = "deny",
    purposes: tuple[str, ...] = ("research",),
    categories: tuple[str, ...] = ("health",),
    requesters: tuple[str, ...] = ("*",),
    caller: Caller = STEWARD,
    community: str = NATION_A,
    obligations: dict[str, Any] | None = None,
    labels: list[str] | None = None,
) -> RulePreview:
    return preview_rule(
        gov.world.services,
        caller=caller,
        community_id=community,
        effect=effect,
        purposes=list(purposes),
        data_categories=list(categories),
        requesters=list(requesters),
        obligations=obligations,
        labels=labels,
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


# -- as strict as saving (issue 14, item 7) -------------------------------------------------------

BAD_PROPOSALS = {
    "obligations on a deny rule": {"effect": "deny", "obligations": {"no_linkage": True}},
    "unknown obligation": {"effect": "require_approval", "obligations": {"be_nice": True}},
    "cell size without its obligation": {"effect": "require_approval", "obligations": {"min_cell_size": 5}},
    "unknown label": {"labels": ["TK Imaginary"]},
    "unknown category and requester": {"categories": ("no-such-category",), "requesters": ("nobody",)},
}


def create(gov: Governance, **terms: Any) -> Any:
    from consent_service.services.rules import create_rule

    return create_rule(
        gov.world.services,
        caller=STEWARD,
        community_id=NATION_A,
        effect=terms.get("effect", "deny"),
        purposes=list(terms.get("purposes", ("research",))),
        data_categories=list(terms.get("categories", ("health",))),
        requesters=list(terms.get("requesters", ("*",))),
        obligations=terms.get("obligations", {}),
        labels=terms.get("labels", []),
        reason="x",
        now=datetime.now(UTC),
    )


def refusal(action: Any) -> tuple[type, str, dict[str, Any]]:
    with pytest.raises(ServiceError) as raised:
        action()
    return type(raised.value), raised.value.code, raised.value.details


class TestAsStrictAsSaving:
    @pytest.mark.parametrize("terms", BAD_PROPOSALS.values(), ids=BAD_PROPOSALS.keys())
    def test_the_preview_refuses_what_saving_refuses_with_the_same_details(
        self, app: Any, gov: Governance, terms: dict[str, Any]
    ) -> None:
        from api_helpers import unchanged_tables

        previewed = refusal(
            lambda: preview(
                gov,
                **{k: v for k, v in terms.items() if k not in ("obligations", "labels")},
                obligations=terms.get("obligations"),
                labels=terms.get("labels"),
            )
        )
        with unchanged_tables(app):
            saved = refusal(lambda: create(gov, **terms))
        assert previewed == saved
        assert previewed[0] in (ValidationFailed, UnknownCode)

    def test_obligations_on_a_deny_rule_are_named_under_obligations(self, gov: Governance) -> None:
        with pytest.raises(ValidationFailed) as raised:
            preview(gov, obligations={"no_linkage": True})
        assert list(raised.value.details) == ["obligations"]

    def test_a_rule_already_in_force_is_refused_at_preview_naming_it(self, gov: Governance) -> None:
        rule = create(gov)
        with pytest.raises(DuplicateRule) as raised:
            preview(gov, categories=("health", "health"))
        assert raised.value.details == {"rule_id": rule.id} and raised.value.status == 409

    def test_labels_and_obligations_that_saving_accepts_preview(self, gov: Governance) -> None:
        gov.ask("research", "health")
        result = preview(
            gov,
            effect="require_approval",
            obligations={"aggregate_only": True, "min_cell_size": 5},
            labels=["TK NC", "BC Research Use"],
        )
        assert result.changed == 1
