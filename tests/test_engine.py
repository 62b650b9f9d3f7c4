"""The decision engine, one class per step of the contract's "Decision, in order".

Pure domain tests: the engine is handed consents, compiled community rules and approvals
as plain values, so every case below is one call to ``DecisionEngine.decide``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consent_service.core import obligations as obligation_list
from consent_service.core.engine import (
    AccessRequest,
    ApprovalTerms,
    ConsentTerms,
    DecisionEngine,
    DutyTerms,
    Verdict,
)
from consent_service.core.policy import PolicyBase, Rule
from consent_service.core.wire import Outcome, ReasonCode, RuleEffect

POLICIES = Path(__file__).resolve().parents[1] / "policies"
NOW = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
REQUESTER = "univ"
NATION_A = "nation-a"
NATION_B = "nation-b"
# What policies/deployment.toml attaches to every permit, whoever asks.
DEFAULT_OBLIGATIONS = (
    {"code": "no_onward_disclosure", "source": "deployment"},
    {"code": "purpose_limited", "source": "deployment"},
)
NATIONALITY_AGGREGATE = {
    "code": "aggregate_only",
    "min_cell_size": 10,
    "source": "deployment",
    "category": "nationality",
}


# -- factories -----------------------------------------------------------------------------


def consent(
    consent_id: str = "consent-1",
    *,
    purposes: Iterable[str] = ("research",),
    categories: Iterable[str] = ("health",),
    recipients: Iterable[str] = (REQUESTER,),
    expires_at: datetime | None = None,
    active: bool = True,
    recorded_at: datetime = NOW - timedelta(days=30),
) -> ConsentTerms:
    return ConsentTerms(
        consent_id=consent_id,
        version=1,
        purposes=tuple(purposes),
        data_categories=tuple(categories),
        recipients=tuple(recipients),
        expires_at=expires_at,
        active=active,
        recorded_at=recorded_at,
    )


def rule(
    rule_id: str = "rule-1",
    *,
    community: str = NATION_A,
    effect: RuleEffect = RuleEffect.DENY,
    purposes: Iterable[str] = ("research",),
    categories: Iterable[str] = ("health",),
    requesters: Iterable[str] = ("*",),
    obligations: dict[str, Any] | None = None,
    labels: Iterable[str] = (),
    reason: str = "",
) -> Rule:
    return Rule(
        id=rule_id,
        community=community,
        effect=effect,
        purposes=tuple(purposes),
        data_categories=tuple(categories),
        requesters=tuple(requesters),
        obligations=obligations or {},
        labels=tuple(labels),
        reason=reason,
    )


def conditional(rule_id: str = "rule-1", **terms: Any) -> Rule:
    """A ``require_approval`` rule."""
    return rule(rule_id, effect=RuleEffect.REQUIRE_APPROVAL, **terms)


def approval(
    approval_id: str = "approval-1",
    *,
    community: str = NATION_A,
    requester: str = REQUESTER,
    purposes: Iterable[str] = ("research",),
    categories: Iterable[str] = ("health",),
    expires_at: datetime | None = None,
    active: bool = True,
    review_at: datetime | None = None,
    duties: Iterable[DutyTerms] = (),
) -> ApprovalTerms:
    return ApprovalTerms(
        id=approval_id,
        community=community,
        requester=requester,
        purposes=tuple(purposes),
        data_categories=tuple(categories),
        expires_at=expires_at,
        active=active,
        review_at=review_at,
        duties=tuple(duties),
    )


def duty(
    duty_id: str = "duty-1",
    *,
    due_at: datetime = NOW - timedelta(days=1),
    description: str = "Share the results",
) -> DutyTerms:
    return DutyTerms(id=duty_id, kind="return_results", description=description, due_at=due_at)


def request(
    *, requester: str = REQUESTER, purpose: str = "research", categories: Iterable[str] = ("health",)
) -> AccessRequest:
    return AccessRequest(requester=requester, purpose=purpose, data_categories=tuple(categories))


# -- fixtures and assertions ---------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> PolicyBase:
    return PolicyBase(POLICIES)


@pytest.fixture(scope="module")
def decide(base: PolicyBase):
    """``decide(request, consents=..., rules=..., approvals=...)`` at ``NOW``.

    The subject is a member of every community that has a rule here; each community's rules
    are compiled on their own, as the service does.
    """
    engine = DecisionEngine(base)

    def _decide(
        req: AccessRequest | None = None,
        *,
        consents: Iterable[ConsentTerms] = (consent(),),
        rules: Iterable[Rule] = (),
        approvals: Iterable[ApprovalTerms] = (),
    ) -> Verdict:
        by_community: dict[str, list[Rule]] = {}
        for r in rules:
            by_community.setdefault(r.community, []).append(r)
        compiled = [base.compile_rules(name, 1, members) for name, members in by_community.items()]
        return engine.decide(
            request=req or request(), consents=consents, communities=compiled, approvals=approvals, now=NOW
        )

    return _decide


def assert_permit(verdict: Verdict, *, consent_id: str = "consent-1") -> None:
    assert verdict.outcome is Outcome.PERMIT, verdict.reasons
    assert [(r.code, r.consent_id) for r in verdict.reasons] == [(ReasonCode.CONSENT, consent_id)]


def assert_deny(verdict: Verdict, code: ReasonCode, *rules: Rule) -> None:
    """Denied for ``code``, citing exactly ``rules`` in that order: in the reasons (rule_id and
    community) and in ``verdict.rules``, which the decision record keeps as its ``rule_ids``."""
    assert verdict.outcome is Outcome.DENY
    assert verdict.obligations == ()
    assert [r.code for r in verdict.reasons] == [code] * max(len(rules), 1)
    assert [(r.rule_id, r.community) for r in verdict.reasons if r.rule_id] == [
        (x.id, x.community) for x in rules
    ]
    assert verdict.rules == rules


# -- 1. community deny ----------------------------------------------------------------------


class TestCommunityDeny:
    def test_overrides_a_covering_consent(self, decide):
        deny = rule(reason="Nation A has not approved health research")
        verdict = decide(rules=[deny])
        assert_deny(verdict, ReasonCode.COMMUNITY_RULE, deny)
        assert verdict.reasons[0].message == "Nation A has not approved health research"

    def test_comes_before_no_consent(self, decide):
        deny = rule()
        assert_deny(decide(consents=[], rules=[deny]), ReasonCode.COMMUNITY_RULE, deny)

    @pytest.mark.parametrize(
        ("rule_category", "requested"),
        [
            ("health", "health"),
            ("mental-health", "health"),  # the request would include mental-health data
            ("health", "mental-health"),  # the rule covers its descendants
            ("nationality", "nationality"),
            ("*", "nationality"),  # a sensitive category stands alone, but a rule's * still matches it
            ("*", "health"),
            ("*", "child-welfare"),
        ],
    )
    def test_category_overlap_matches(self, decide, rule_category, requested):
        deny = rule(categories=[rule_category])
        verdict = decide(
            request(categories=[requested]),
            consents=[consent(categories=["health", "nationality", "child-welfare"])],
            rules=[deny],
        )
        assert_deny(verdict, ReasonCode.COMMUNITY_RULE, deny)

    @pytest.mark.parametrize(
        ("rule_category", "requested"),
        [
            ("mental-health", "substance-use"),  # siblings do not overlap
            ("nationality", "indigenous-identity"),
            ("housing", "health"),
        ],
    )
    def test_category_without_overlap_does_not_match(self, decide, rule_category, requested):
        verdict = decide(
            request(categories=[requested]),
            consents=[consent(categories=["health", "demographic", "indigenous-identity"])],
            rules=[rule(categories=[rule_category])],
        )
        assert_permit(verdict)

    @pytest.mark.parametrize("sensitive", ["nationality", "indigenous-identity"])
    def test_a_rule_naming_demographic_does_not_match_a_sensitive_category(self, decide, sensitive):
        verdict = decide(
            request(categories=[sensitive]),
            consents=[consent(categories=[sensitive])],
            rules=[rule(categories=["demographic"])],
        )
        assert_permit(verdict)

    def test_one_overlapping_category_among_several_is_enough(self, decide):
        deny = rule(categories=["mental-health"])
        verdict = decide(
            request(categories=["housing", "health"]),
            consents=[consent(categories=["housing", "health"])],
            rules=[deny],
        )
        assert_deny(verdict, ReasonCode.COMMUNITY_RULE, deny)

    @pytest.mark.parametrize(
        ("rule_purpose", "requested"),
        [
            ("service-delivery", "referral"),
            ("referral", "service-delivery"),
        ],
    )
    def test_purpose_overlap_matches(self, decide, rule_purpose, requested):
        deny = rule(purposes=[rule_purpose])
        verdict = decide(
            request(purpose=requested), consents=[consent(purposes=["service-delivery"])], rules=[deny]
        )
        assert_deny(verdict, ReasonCode.COMMUNITY_RULE, deny)

    @pytest.mark.parametrize("rule_purpose", ["care-coordination", "public-health"])
    def test_purpose_without_overlap_does_not_match(self, decide, rule_purpose):
        verdict = decide(
            request(purpose="referral"),
            consents=[consent(purposes=["service-delivery"])],
            rules=[rule(purposes=[rule_purpose])],
        )
        assert_permit(verdict)

    @pytest.mark.parametrize("requesters", [["*"], [REQUESTER], ["gla", REQUESTER]])
    def test_requesters_named_or_wildcard_match(self, decide, requesters):
        deny = rule(requesters=requesters)
        assert_deny(decide(rules=[deny]), ReasonCode.COMMUNITY_RULE, deny)

    def test_rule_for_another_requester_does_not_match(self, decide):
        assert_permit(decide(rules=[rule(requesters=["home-office", "gla"])]))

    def test_every_matching_deny_is_reported_in_rule_order(self, decide):
        first, second = rule("rule-1"), rule("rule-2", categories=["*"])
        other = rule("rule-3", requesters=["gla"])
        assert_deny(decide(rules=[first, other, second]), ReasonCode.COMMUNITY_RULE, first, second)


# -- 2. no consent ---------------------------------------------------------------------------


class TestNoConsent:
    def test_no_consents(self, decide):
        assert_deny(decide(consents=[]), ReasonCode.NO_CONSENT)

    def test_reason_names_no_consent_or_rule(self, decide):
        (reason,) = decide(consents=[]).reasons
        assert (reason.consent_id, reason.rule_id, reason.community) == (None, None, None)

    def test_reason_says_who_asked_for_what(self, decide):
        (reason,) = decide(request(categories=["health", "housing"]), consents=[]).reasons
        assert reason.message == "No active consent lets univ use health, housing for research."

    def test_revoked(self, decide):
        assert_deny(decide(consents=[consent(active=False)]), ReasonCode.NO_CONSENT)

    @pytest.mark.parametrize("expires_at", [NOW, NOW - timedelta(seconds=1)])
    def test_expired_at_or_before_now(self, decide, expires_at):
        assert_deny(decide(consents=[consent(expires_at=expires_at)]), ReasonCode.NO_CONSENT)

    def test_expiring_after_now_still_grants(self, decide):
        assert_permit(decide(consents=[consent(expires_at=NOW + timedelta(seconds=1))]))

    def test_requester_not_a_recipient(self, decide):
        assert_deny(decide(consents=[consent(recipients=["outreach-org", "gla"])]), ReasonCode.NO_CONSENT)

    @pytest.mark.parametrize(
        ("granted", "requested"),
        [
            ("service-delivery", "service-delivery"),
            ("service-delivery", "referral"),
            ("service-delivery", "care-coordination"),
        ],
    )
    def test_purpose_covers_itself_and_descendants(self, decide, granted, requested):
        assert_permit(decide(request(purpose=requested), consents=[consent(purposes=[granted])]))

    @pytest.mark.parametrize(
        ("granted", "requested"),
        [
            ("referral", "service-delivery"),  # child never covers parent
            ("referral", "care-coordination"),  # nor a sibling
            ("research", "public-health"),
        ],
    )
    def test_purpose_never_covers_parent_or_sibling(self, decide, granted, requested):
        assert_deny(
            decide(request(purpose=requested), consents=[consent(purposes=[granted])]), ReasonCode.NO_CONSENT
        )

    @pytest.mark.parametrize(
        ("granted", "requested"),
        [
            ("health", "mental-health"),
            ("health", "substance-use"),
        ],
    )
    def test_category_covers_descendants(self, decide, granted, requested):
        assert_permit(decide(request(categories=[requested]), consents=[consent(categories=[granted])]))

    @pytest.mark.parametrize(
        ("granted", "requested"),
        [
            ("mental-health", "health"),
            ("mental-health", "substance-use"),
            ("nationality", "demographic"),
            ("demographic", "nationality"),  # sensitive: covered only when named (v1 said otherwise)
            ("demographic", "indigenous-identity"),
            ("nationality", "indigenous-identity"),
        ],
    )
    def test_category_never_covers_parent_or_sibling(self, decide, granted, requested):
        assert_deny(
            decide(request(categories=[requested]), consents=[consent(categories=[granted])]),
            ReasonCode.NO_CONSENT,
        )

    def test_every_requested_category_must_be_covered(self, decide):
        verdict = decide(request(categories=["health", "housing"]), consents=[consent(categories=["health"])])
        assert_deny(verdict, ReasonCode.NO_CONSENT)

    def test_categories_split_across_two_consents_do_not_add_up(self, decide):
        consents = [consent("consent-1", categories=["health"]), consent("consent-2", categories=["housing"])]
        assert_deny(
            decide(request(categories=["health", "housing"]), consents=consents), ReasonCode.NO_CONSENT
        )

    def test_comes_before_approval_required(self, decide):
        assert_deny(decide(consents=[], rules=[conditional()]), ReasonCode.NO_CONSENT)


# -- 3. approval required -------------------------------------------------------------------


class TestApprovalRequired:
    def test_rule_without_approval(self, decide):
        needs = conditional(reason="Health research needs the council's approval")
        verdict = decide(rules=[needs])
        assert_deny(verdict, ReasonCode.APPROVAL_REQUIRED, needs)
        assert "Health research needs the council's approval" in verdict.reasons[0].message

    def test_rule_without_a_reason_still_says_who_must_approve(self, decide):
        (reason,) = decide(rules=[conditional()]).reasons
        # The message never names the community: its id travels in ``community`` alone, which
        # disclosure may withhold (docs/security.md, "membership disclosure").
        assert reason.message == "The community must approve this use first."
        assert reason.community == "nation-a" and "nation-a" not in reason.message

    def test_approval_satisfies_it(self, decide):
        assert_permit(decide(rules=[conditional()], approvals=[approval()]))

    def test_approval_of_a_parent_code_satisfies_it(self, decide):
        verdict = decide(
            request(purpose="referral", categories=["mental-health"]),
            consents=[consent(purposes=["service-delivery"])],
            rules=[conditional(purposes=["referral"])],
            approvals=[approval(purposes=["service-delivery"], categories=["health"])],
        )
        assert_permit(verdict)

    @pytest.mark.parametrize(
        "unusable",
        [
            approval(requester="gla"),
            approval(expires_at=NOW),
            approval(expires_at=NOW - timedelta(days=1)),
            approval(active=False),
            approval(community=NATION_B),
            approval(purposes=["public-health"]),
            approval(categories=["mental-health"]),  # a child does not cover the requested parent
        ],
        ids=[
            "other-requester",
            "expired-at-now",
            "expired",
            "revoked",
            "other-community",
            "other-purpose",
            "child-category",
        ],
    )
    def test_unusable_approval_does_not_count(self, decide, unusable):
        needs = conditional()
        assert_deny(decide(rules=[needs], approvals=[unusable]), ReasonCode.APPROVAL_REQUIRED, needs)

    def test_approval_covering_only_some_categories_does_not_count(self, decide):
        needs = conditional()
        verdict = decide(
            request(categories=["health", "housing"]),
            consents=[consent(categories=["health", "housing"])],
            rules=[needs],
            approvals=[approval(categories=["health"])],
        )
        assert_deny(verdict, ReasonCode.APPROVAL_REQUIRED, needs)

    def test_comes_after_community_deny(self, decide):
        deny = rule("rule-deny")
        assert_deny(decide(rules=[conditional("rule-approve"), deny]), ReasonCode.COMMUNITY_RULE, deny)

    def test_every_unmet_rule_is_reported(self, decide):
        first, second = conditional("rule-1"), conditional("rule-2", categories=["*"])
        assert_deny(decide(rules=[first, second]), ReasonCode.APPROVAL_REQUIRED, first, second)

    def test_rule_for_another_requester_asks_nothing(self, decide):
        assert_permit(decide(rules=[conditional(requesters=["gla"])]))


class TestApprovalOnHold:
    """3b. An approval whose agreement is past its review date, or whose requester owes the
    community an overdue duty, does not satisfy the rule; the answer says which."""

    def test_an_agreement_past_its_review_date_holds_the_approval(self, decide):
        needs = conditional()
        verdict = decide(rules=[needs], approvals=[approval(review_at=NOW - timedelta(days=1))])
        assert_deny(verdict, ReasonCode.AGREEMENT_REVIEW_OVERDUE, needs)
        assert "2027-01-30" in verdict.reasons[0].message

    def test_the_review_date_itself_is_already_overdue(self, decide):
        needs = conditional()
        assert_deny(
            decide(rules=[needs], approvals=[approval(review_at=NOW)]),
            ReasonCode.AGREEMENT_REVIEW_OVERDUE,
            needs,
        )

    def test_a_review_date_still_ahead_permits(self, decide):
        assert_permit(decide(rules=[conditional()], approvals=[approval(review_at=NOW + timedelta(days=1))]))

    def test_an_overdue_duty_holds_the_approval_and_is_named(self, decide):
        needs = conditional()
        owed = duty(description="Return the aggregate tables to the council")
        verdict = decide(rules=[needs], approvals=[approval(duties=[owed])])
        assert_deny(verdict, ReasonCode.DUTY_OVERDUE, needs)
        message = verdict.reasons[0].message
        assert "Return the aggregate tables to the council" in message and "2027-01-30" in message
        assert "return_results" in message

    def test_a_duty_not_yet_due_permits(self, decide):
        assert_permit(
            decide(
                rules=[conditional()], approvals=[approval(duties=[duty(due_at=NOW + timedelta(hours=1))])]
            )
        )

    def test_the_earliest_overdue_duty_is_named(self, decide):
        later = duty("duty-late", due_at=NOW - timedelta(days=1), description="Progress report")
        earlier = duty("duty-early", due_at=NOW - timedelta(days=9), description="Destroy the extract")
        verdict = decide(rules=[conditional()], approvals=[approval(duties=[later, earlier])])
        assert "Destroy the extract" in verdict.reasons[0].message

    def test_a_duty_outranks_an_overdue_review(self, decide):
        needs = conditional()
        held = approval(review_at=NOW - timedelta(days=1), duties=[duty()])
        assert_deny(decide(rules=[needs], approvals=[held]), ReasonCode.DUTY_OVERDUE, needs)

    def test_another_usable_approval_still_permits(self, decide):
        held = approval("approval-held", review_at=NOW - timedelta(days=1))
        assert_permit(decide(rules=[conditional()], approvals=[held, approval("approval-ok")]))

    def test_a_held_approval_that_would_not_cover_the_request_is_just_missing(self, decide):
        needs = conditional()
        held = approval(categories=["housing"], review_at=NOW - timedelta(days=1), duties=[duty()])
        assert_deny(decide(rules=[needs], approvals=[held]), ReasonCode.APPROVAL_REQUIRED, needs)

    def test_a_revoked_or_expired_approval_is_missing_not_held(self, decide):
        needs = conditional()
        for gone in (approval(active=False, duties=[duty()]), approval(expires_at=NOW, review_at=NOW)):
            assert_deny(decide(rules=[needs], approvals=[gone]), ReasonCode.APPROVAL_REQUIRED, needs)

    def test_no_rule_no_hold(self, decide):
        """Agreements and duties hold approvals, not consents: without a require_approval rule the
        overdue duty changes nothing."""
        assert_permit(decide(approvals=[approval(duties=[duty()], review_at=NOW - timedelta(days=1))]))

    def test_a_deny_rule_still_comes_first(self, decide):
        deny = rule("rule-deny")
        verdict = decide(rules=[conditional("rule-approve"), deny], approvals=[approval(duties=[duty()])])
        assert_deny(verdict, ReasonCode.COMMUNITY_RULE, deny)

    def test_each_community_is_judged_on_its_own_approvals(self, decide):
        a_rule, b_rule = conditional("rule-a"), conditional("rule-b", community=NATION_B)
        verdict = decide(
            rules=[a_rule, b_rule],
            approvals=[approval("approval-a", duties=[duty()]), approval("approval-b", community=NATION_B)],
        )
        assert_deny(verdict, ReasonCode.DUTY_OVERDUE, a_rule)


# -- 4. permit ------------------------------------------------------------------------------


class TestPermit:
    def test_reason_names_the_consent(self, decide):
        verdict = decide()
        assert_permit(verdict)
        assert verdict.obligations == DEFAULT_OBLIGATIONS
        assert verdict.consent == consent()
        assert verdict.reasons[0].message == "Consent consent-1 (version 1) covers this use."

    def test_lists_the_rules_whose_obligations_apply(self, decide):
        needs = conditional("rule-1", obligations={"aggregate_only": True})
        unmatched = conditional("rule-2", purposes=["commercial"])
        verdict = decide(rules=[needs, unmatched], approvals=[approval()])
        assert_permit(verdict)
        assert verdict.rules == (needs,)

    def test_returns_obligations_of_every_matching_rule(self, decide):
        aggregate = conditional("rule-1", obligations={"aggregate_only": True, "min_cell_size": 10})
        labelled = conditional(
            "rule-2",
            categories=["*"],
            obligations={"no_onward_disclosure": True},
            labels=["BC Provenance", "TK Attribution"],
        )
        unmatched = conditional("rule-3", purposes=["commercial"], obligations={"no_linkage": True})
        verdict = decide(rules=[aggregate, unmatched, labelled], approvals=[approval()])

        assert_permit(verdict)
        assert list(verdict.obligations) == [
            item
            for r in (aggregate, labelled)
            for item in obligation_list.as_list(
                r.obligations, labels=r.labels, rule_id=r.id, community=r.community
            )
        ] + list(DEFAULT_OBLIGATIONS)
        assert {
            "code": "aggregate_only",
            "min_cell_size": 10,
            "rule_id": "rule-1",
            "community": NATION_A,
        } in verdict.obligations
        assert {
            "code": "local_contexts",
            "labels": ["BC Provenance", "TK Attribution"],
            "rule_id": "rule-2",
            "community": NATION_A,
        } in verdict.obligations

    def test_newest_covering_consent_is_chosen(self, decide):
        consents = [
            consent("older", recorded_at=NOW - timedelta(days=9)),
            consent("newest", recorded_at=NOW - timedelta(days=3)),
            consent("newer-but-revoked", recorded_at=NOW - timedelta(days=1), active=False),
            consent("newer-but-narrower", recorded_at=NOW - timedelta(days=1), categories=["housing"]),
        ]
        verdict = decide(consents=consents)
        assert_permit(verdict, consent_id="newest")
        assert verdict.consent == consents[1]


# -- reasons on the wire ---------------------------------------------------------------------


class TestReasonOnTheWire:
    """``Reason.as_dict`` is the contract's reason: code and message, and each of consent_id,
    rule_id and community only when it has one (never ``null``)."""

    def test_a_permit_names_the_consent(self, decide):
        assert decide().reasons[0].as_dict() == {
            "code": "consent",
            "message": "Consent consent-1 (version 1) covers this use.",
            "consent_id": "consent-1",
        }

    def test_a_community_deny_names_rule_and_community(self, decide):
        (reason,) = decide(rules=[rule(reason="Not for research")]).reasons
        assert reason.as_dict() == {
            "code": "community_rule",
            "message": "Not for research",
            "rule_id": "rule-1",
            "community": NATION_A,
        }

    def test_no_consent_has_code_and_message_only(self, decide):
        (reason,) = decide(consents=[]).reasons
        assert reason.as_dict() == {
            "code": "no_consent",
            "message": "No active consent lets univ use health for research.",
        }


# -- a subject who is a member of two communities --------------------------------------------


class TestTwoCommunities:
    @pytest.mark.parametrize("denying", [NATION_A, NATION_B])
    def test_a_deny_of_either_community_applies(self, decide, denying):
        deny = rule("rule-deny", community=denying)
        others = [conditional(f"rule-{name}", community=name) for name in (NATION_A, NATION_B)]
        approvals = [approval(f"approval-{name}", community=name) for name in (NATION_A, NATION_B)]
        assert_deny(decide(rules=[*others, deny], approvals=approvals), ReasonCode.COMMUNITY_RULE, deny)

    def test_denies_of_both_are_reported(self, decide):
        deny_a, deny_b = rule("rule-a", community=NATION_A), rule("rule-b", community=NATION_B)
        assert_deny(decide(rules=[deny_a, deny_b]), ReasonCode.COMMUNITY_RULE, deny_a, deny_b)

    def test_each_community_must_approve_its_own_rule(self, decide):
        needs_a = conditional("rule-a", community=NATION_A)
        needs_b = conditional("rule-b", community=NATION_B)
        verdict = decide(rules=[needs_a, needs_b], approvals=[approval(community=NATION_A)])
        assert_deny(verdict, ReasonCode.APPROVAL_REQUIRED, needs_b)

    def test_both_approvals_permit_with_both_obligations(self, decide):
        rules = [
            conditional(f"rule-{name}", community=name, obligations={"aggregate_only": True})
            for name in (NATION_A, NATION_B)
        ]
        approvals = [approval(f"approval-{name}", community=name) for name in (NATION_A, NATION_B)]
        verdict = decide(rules=rules, approvals=approvals)
        assert_permit(verdict)
        assert [(o["rule_id"], o["community"]) for o in verdict.obligations if "rule_id" in o] == [
            ("rule-nation-a", NATION_A),
            ("rule-nation-b", NATION_B),
        ]


# -- the deployment policy (policies/deployment.toml) ------------------------------------------


class TestDeploymentPolicy:
    def test_a_planning_permit_says_the_data_may_not_be_passed_on(self, decide):
        verdict = decide(
            request(requester="gla", purpose="service-planning", categories=["housing"]),
            consents=[consent(purposes=["service-planning"], categories=["housing"], recipients=["gla"])],
        )
        assert_permit(verdict)
        assert verdict.obligations == DEFAULT_OBLIGATIONS

    @pytest.mark.parametrize("purpose", ["service-planning", "research", "program-evaluation"])
    def test_nationality_outside_service_delivery_is_aggregate_only_in_cells_of_10(self, decide, purpose):
        verdict = decide(
            request(purpose=purpose, categories=["housing", "nationality"]),
            consents=[consent(purposes=[purpose], categories=["housing", "nationality"])],
        )
        assert_permit(verdict)
        assert verdict.obligations == (*DEFAULT_OBLIGATIONS, NATIONALITY_AGGREGATE)

    @pytest.mark.parametrize("purpose", ["service-delivery", "referral", "care-coordination"])
    def test_nationality_for_service_delivery_and_its_children_carries_the_defaults_only(
        self, decide, purpose
    ):
        verdict = decide(
            request(purpose=purpose, categories=["nationality"]),
            consents=[consent(purposes=["service-delivery"], categories=["nationality"])],
        )
        assert_permit(verdict)
        assert verdict.obligations == DEFAULT_OBLIGATIONS

    def test_indigenous_identity_carries_no_category_obligation_built_in(self, decide):
        verdict = decide(
            request(categories=["indigenous-identity"]),
            consents=[consent(categories=["indigenous-identity"])],
        )
        assert verdict.obligations == DEFAULT_OBLIGATIONS

    @pytest.mark.parametrize("purpose", ["immigration-enforcement", "law-enforcement"])
    def test_a_protected_purpose_is_never_covered_even_by_a_consent_recorded_before(self, decide, purpose):
        verdict = decide(
            request(requester="home-office", purpose=purpose, categories=["nationality"]),
            consents=[consent(purposes=[purpose], categories=["nationality"], recipients=["home-office"])],
        )
        assert_deny(verdict, ReasonCode.NO_CONSENT)

    def test_permits_of_one_shape_share_one_obligations_tuple(self, base):
        engine = DecisionEngine(base)
        first, second = (
            engine.decide(request=request(), consents=[consent(cid)], communities=[], approvals=[], now=NOW)
            for cid in ("consent-1", "consent-2")
        )
        assert first.obligations is second.obligations
