"""Community rules and approvals in the decision, through the HTTP API (contract: "Collective
rules" and "Decision, in order"). One class per behaviour; every change is seen by the very
next authorize call.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from api_helpers import DEFAULT_OBLIGATIONS, Clock, assert_ok, in_days
from governance_helpers import (
    APPROVAL_RULE,
    GOVERNMENT,
    MEMBER,
    NATION_A,
    NATION_B,
    OUTSIDER,
    reason_codes,
    seeded_governance,
)

# These communities show their id, so the answers say which community decided (the requester
# is named by the member's consent); the default, hidden id is tests/test_disclosure.py's.
governance_seeds, seed, database_start, gov = seeded_governance("governance-flow", show_community_id=True)


class TestADenyRuleOverridesConsent:
    def test_a_covering_consent_permits_until_the_community_denies(self, gov):
        gov.consent()
        assert gov.ask("research", "health")["decision"] == "permit"

        rule = gov.rule()
        decision = gov.ask("research", "health")

        assert decision["decision"] == "deny"
        assert decision["obligations"] == []
        [reason] = decision["reasons"]
        assert reason["code"] == "community_rule"
        assert reason["rule_id"] == rule["id"]
        assert reason["community"] == NATION_A
        assert reason["message"] == "Nation A has not approved health research"

    def test_a_deny_on_a_child_category_blocks_a_request_for_its_parent(self, gov):
        gov.consent()
        gov.rule(data_categories=["mental-health"])

        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]
        assert reason_codes(gov.ask("research", "mental-health")) == ["community_rule"]
        assert gov.ask("research", "substance-use")["decision"] == "permit"

    def test_a_deny_on_a_parent_purpose_blocks_its_children(self, gov):
        gov.consent(purposes=["service-delivery"], data_categories=["housing"])
        gov.rule(purposes=["service-delivery"], data_categories=["*"])

        assert reason_codes(gov.ask("referral", "housing")) == ["community_rule"]

    def test_a_deny_for_one_requester_leaves_the_others(self, gov):
        gov.consent()
        gov.rule(requesters=[GOVERNMENT])

        assert gov.ask("research", "health", requester=GOVERNMENT)["decision"] == "deny"
        assert gov.ask("research", "health")["decision"] == "permit"

    def test_uses_the_rule_does_not_name_still_follow_the_consent(self, gov):
        gov.consent()
        gov.rule()

        assert gov.ask("service-planning", "housing")["decision"] == "permit"
        assert gov.ask("research", "housing")["decision"] == "permit"


class TestOutsidersAreUntouched:
    def test_a_person_who_is_not_a_member_is_decided_by_their_consent_alone(self, gov):
        gov.consent(subject=OUTSIDER, communities=[])
        gov.rule(data_categories=["*"])
        gov.rule(base=APPROVAL_RULE, purposes=["service-planning"])

        assert gov.ask("research", "health", subject=OUTSIDER)["decision"] == "permit"
        assert gov.ask("service-planning", "housing", subject=OUTSIDER)["decision"] == "permit"


class TestRetiringARuleRestoresAtOnce:
    def test_the_next_call_after_retiring_is_decided_without_the_rule(self, gov):
        gov.consent()
        rule = gov.rule()
        assert gov.ask()["decision"] == "deny"

        gov.retire(rule, reason="agreement reached")

        decision = gov.ask()
        assert decision["decision"] == "permit"
        assert reason_codes(decision) == ["consent"]

    def test_a_retired_approval_rule_no_longer_asks_for_an_approval(self, gov):
        gov.consent()
        rule = gov.rule(base=APPROVAL_RULE)
        assert reason_codes(gov.ask()) == ["approval_required"]

        gov.retire(rule)

        decision = gov.ask()
        # no rule asks for anything any more: only the deployment's own obligations remain
        assert (decision["decision"], decision["obligations"]) == ("permit", DEFAULT_OBLIGATIONS)


class TestTwoKeyApproval:
    """A require_approval rule needs both keys: the person's consent and the community's approval."""

    @pytest.fixture
    def rule(self, gov):
        gov.consent()
        return gov.rule(base=APPROVAL_RULE)

    def test_without_an_approval_the_answer_is_approval_required(self, gov, rule):
        decision = gov.ask()

        assert decision["decision"] == "deny"
        [reason] = decision["reasons"]
        assert (reason["code"], reason["rule_id"], reason["community"]) == (
            "approval_required",
            rule["id"],
            NATION_A,
        )

    def test_the_persons_consent_is_checked_before_the_approval(self, gov, rule):
        gov.approval()

        assert reason_codes(gov.ask(subject=OUTSIDER)) == ["no_consent"]

    def test_an_approval_for_another_requester_does_not_count(self, gov, rule):
        gov.approval(requester=GOVERNMENT)

        assert reason_codes(gov.ask()) == ["approval_required"]

    def test_an_approval_for_another_category_does_not_count(self, gov, rule):
        gov.approval(data_categories=["housing"])

        assert reason_codes(gov.ask()) == ["approval_required"]

    def test_an_approval_of_another_community_does_not_count(self, gov, rule):
        gov.approval(community=NATION_B)

        assert reason_codes(gov.ask()) == ["approval_required"]

    def test_an_expired_approval_does_not_count(self, gov, rule, monkeypatch):
        clock = Clock(monkeypatch)
        gov.approval(expires_at=in_days(1))
        assert gov.ask()["decision"] == "permit"

        clock.advance(timedelta(days=2))

        assert reason_codes(gov.ask()) == ["approval_required"]

    def test_a_revoked_approval_does_not_count_from_the_next_call(self, gov, rule):
        approval = gov.approval()
        assert gov.ask()["decision"] == "permit"

        gov.revoke(approval, reason="agreement ended")

        assert reason_codes(gov.ask()) == ["approval_required"]

    def test_a_valid_approval_permits_with_the_rules_obligations_and_labels(self, gov, rule):
        gov.approval(expires_at=in_days(365))

        decision = gov.ask()

        assert decision["decision"] == "permit"
        assert reason_codes(decision) == ["consent"]
        tags = {"rule_id": rule["id"], "community": NATION_A}
        assert decision["obligations"] == [
            {"code": "aggregate_only", "min_cell_size": 10, **tags},
            {"code": "return_results_to_community", **tags},
            {"code": "local_contexts", "labels": ["TK Non-Commercial", "BC Consent Verified"], **tags},
            *DEFAULT_OBLIGATIONS,
        ]

    def test_an_approval_of_a_parent_category_covers_its_children(self, gov, rule):
        gov.consent(data_categories=["mental-health"])
        gov.approval(data_categories=["health"])

        assert gov.ask("research", "mental-health")["decision"] == "permit"


class TestAMemberOfTwoCommunitiesIsBoundByBoth:
    def test_either_communitys_deny_is_enough(self, gov):
        gov.consent(communities=[NATION_A, NATION_B])
        gov.rule(NATION_A, base=APPROVAL_RULE)
        gov.approval(NATION_A)
        assert gov.ask()["decision"] == "permit"

        rule_b = gov.rule(NATION_B, reason="Nation B withholds health data")

        decision = gov.ask()
        assert decision["decision"] == "deny"
        assert [(r["code"], r["community"], r["rule_id"]) for r in decision["reasons"]] == [
            ("community_rule", NATION_B, rule_b["id"])
        ]

    def test_each_community_must_approve_on_its_own(self, gov):
        gov.consent(communities=[NATION_A, NATION_B])
        gov.rule(NATION_A, base=APPROVAL_RULE)
        rule_b = gov.rule(NATION_B, base=APPROVAL_RULE)
        gov.approval(NATION_A)

        decision = gov.ask()
        assert [(r["code"], r["community"], r["rule_id"]) for r in decision["reasons"]] == [
            ("approval_required", NATION_B, rule_b["id"])
        ]

        gov.approval(NATION_B)
        decision = gov.ask()
        assert decision["decision"] == "permit"
        communities = {item["community"] for item in decision["obligations"] if "rule_id" in item}
        assert communities == {NATION_A, NATION_B}


class TestMembershipOutlivesTheConsentThatRecordedIt:
    """Contract: revoking the consent that named the community does not lift its rules from the
    person's other consents."""

    def test_the_rules_still_bind_the_persons_other_consents(self, gov):
        naming = gov.consent(purposes=["service-planning"], data_categories=["housing"])
        gov.consent(communities=[])
        gov.rule()
        assert_ok(
            gov.client.post(
                f"/v1/consents/{naming['id']}/revoke", headers=gov.recorder(), json={"reason": "client asked"}
            )
        )

        decision = gov.ask("research", "health", subject=MEMBER)

        assert reason_codes(decision) == ["community_rule"]
