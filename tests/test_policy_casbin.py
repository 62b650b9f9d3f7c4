"""policy.py against Casbin itself: compiled rule buckets, hierarchies, who may manage.

policies/model.conf is the specification of "a rule matches a request"; ``CompiledRules`` is
the fast form the engine uses. For random rule sets, both must agree on a grid of requests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent_service.core.policy import PolicyBase, Rule
from consent_service.core.wire import WILDCARD, ManagementAction, RuleEffect

POLICIES = Path(__file__).resolve().parents[1] / "policies"
COMMUNITY, OTHER_COMMUNITY = "nation-a", "nation-b"
UNKNOWN_CATEGORY = "genomics"  # not in the vocabulary: a stale vocabulary must only deny more

_base = PolicyBase(POLICIES)  # built at import: hypothesis strategies below read its codes
PURPOSES = sorted(_base.vocabulary.purposes)
CATEGORIES = sorted(_base.vocabulary.data_categories)

# The grid every rule set is checked on: both code families with parents and children, a few
# codes outside them, an unknown category, a named and an unnamed requester, both effects.
GRID_REQUESTERS = ("univ", "gla")
GRID_PURPOSES = ("service-delivery", "referral", "care-coordination", "research", "commercial")
GRID_CATEGORIES = (
    "health",
    "mental-health",
    "substance-use",
    "demographic",
    "nationality",
    "indigenous-identity",
    "housing",
    UNKNOWN_CATEGORY,
)


@pytest.fixture(scope="module")
def base() -> PolicyBase:
    return _base


def codes(*pools: tuple[str, ...] | list[str]) -> st.SearchStrategy[tuple[str, ...]]:
    """One or two codes; a code in several pools is drawn more often."""
    pool = [code for p in pools for code in p if code != UNKNOWN_CATEGORY]
    return st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True).map(tuple)


@st.composite
def rule_sets(draw: st.DrawFn) -> list[Rule]:
    """One to four rules, some of another community (which must never match ours)."""
    return [
        Rule(
            id=f"rule-{i}",
            community=draw(st.sampled_from((COMMUNITY, COMMUNITY, OTHER_COMMUNITY))),
            effect=draw(st.sampled_from(RuleEffect)),
            purposes=draw(codes(PURPOSES, GRID_PURPOSES)),
            data_categories=draw(st.one_of(codes(CATEGORIES, GRID_CATEGORIES), st.just((WILDCARD,)))),
            requesters=draw(st.one_of(st.just((WILDCARD,)), codes(["univ", "gla", "home-office"]))),
        )
        for i in range(draw(st.integers(1, 4)))
    ]


class TestCompiledRulesAgreeWithCasbin:
    @settings(
        max_examples=80,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.differing_executors],
    )  # mutmut reruns in one process
    @given(rules=rule_sets())
    def test_on_every_request_of_the_grid(self, base, rules):
        enforcer = base.reference_enforcer(rules)
        compiled = base.compile_rules(COMMUNITY, 1, [r for r in rules if r.community == COMMUNITY])
        for requester in GRID_REQUESTERS:
            for purpose in GRID_PURPOSES:
                for category in GRID_CATEGORIES:
                    for effect in RuleEffect:
                        allowed, explain = enforcer.enforce_ex(
                            *base.rule_request(requester, COMMUNITY, purpose, category, str(effect))
                        )
                        matched = compiled.matching(
                            effect=effect, requester=requester, purpose=purpose, categories=[category]
                        )
                        where = (requester, purpose, category, effect)
                        assert allowed == bool(matched), where
                        if allowed:
                            assert explain[-1] in {r.id for r in matched}, where


class TestCodesOutsideTheVocabulary:
    """A rule may name a code the vocabulary no longer has (it changes on restart, rules stay in
    the database): the rule still matches that exact code, as Casbin's model says, and nothing else
    is lost; compiling it must not fail."""

    @pytest.mark.parametrize(
        ("purposes", "categories"),
        [
            (("research",), (UNKNOWN_CATEGORY,)),
            (("marketing",), ("health",)),  # "marketing" is no purpose of the vocabulary
        ],
    )
    def test_a_rule_naming_one_matches_that_code_exactly(self, base, purposes, categories):
        assert "marketing" not in PURPOSES and UNKNOWN_CATEGORY not in CATEGORIES
        rule = Rule(
            id="stale",
            community=COMMUNITY,
            effect=RuleEffect.DENY,
            purposes=purposes,
            data_categories=categories,
            requesters=(WILDCARD,),
        )
        compiled = base.compile_rules(COMMUNITY, 1, [rule])
        enforcer = base.reference_enforcer([rule])
        for purpose in (*GRID_PURPOSES, "marketing"):
            for category in GRID_CATEGORIES:
                matched = compiled.matching(
                    effect=RuleEffect.DENY, requester="univ", purpose=purpose, categories=[category]
                )
                expected = enforcer.enforce(
                    *base.rule_request("univ", COMMUNITY, purpose, category, str(RuleEffect.DENY))
                )
                assert bool(matched) == expected, (purpose, category)
        assert compiled.matching(
            effect=RuleEffect.DENY, requester="univ", purpose=purposes[0], categories=[categories[0]]
        ) == [rule]

    def test_an_unknown_code_overlaps_only_itself(self, base):
        assert base.categories.descendants(UNKNOWN_CATEGORY) == {UNKNOWN_CATEGORY}
        assert base.categories.overlapping(UNKNOWN_CATEGORY) == {UNKNOWN_CATEGORY}
        assert base.purposes.overlapping("marketing") == {"marketing"}


class TestHierarchy:
    @pytest.mark.parametrize(
        ("granted", "requested", "covered"),
        [
            ("health", "health", True),
            ("health", "mental-health", True),  # parent covers child
            ("mental-health", "health", False),  # child never covers parent
            ("mental-health", "substance-use", False),  # nor its sibling
            ("demographic", "indigenous-identity", False),  # sensitive: stands alone (v1: True)
            ("demographic", "nationality", False),
            ("nationality", "nationality", True),
            ("housing", "health", False),
        ],
    )
    def test_categories_cover(self, base, granted, requested, covered):
        assert base.categories.covers([granted], requested) is covered

    @pytest.mark.parametrize(
        ("granted", "requested", "covered"),
        [
            ("service-delivery", "referral", True),
            ("referral", "service-delivery", False),
            ("referral", "care-coordination", False),
            ("research", "research", True),
        ],
    )
    def test_purposes_cover(self, base, granted, requested, covered):
        assert base.purposes.covers([granted], requested) is covered

    def test_any_granted_code_may_cover(self, base):
        assert base.categories.covers(["housing", "health"], "substance-use")

    @pytest.mark.parametrize(
        ("code", "overlapping"),
        [
            ("health", {"health", "mental-health", "substance-use"}),  # parent: itself and descendants
            ("mental-health", {"mental-health", "health"}),  # child: itself and ancestors only
            ("housing", {"housing"}),
        ],
    )
    def test_category_overlap_goes_both_ways_but_not_sideways(self, base, code, overlapping):
        assert base.categories.overlapping(code) == overlapping

    def test_purpose_overlap(self, base):
        assert base.purposes.overlapping("referral") == {"referral", "service-delivery"}
        assert base.purposes.overlapping("service-delivery") == {
            "service-delivery",
            "referral",
            "care-coordination",
        }

    def test_an_unknown_code_is_only_itself(self, base):
        assert base.categories.ancestors(UNKNOWN_CATEGORY) == {UNKNOWN_CATEGORY}
        assert not base.categories.covers(["health"], UNKNOWN_CATEGORY)


class TestMayManage:
    STEWARDS = {COMMUNITY: ("nation-a-council",), OTHER_COMMUNITY: ("nation-b-council",)}

    def may(
        self,
        base: PolicyBase,
        organization: str,
        community: str,
        action: str,
        stewards: tuple[str, ...] | None = None,
    ) -> bool:
        return base.may_manage(
            organization=organization,
            community=community,
            action=action,
            stewards=self.STEWARDS[community] if stewards is None else stewards,
        )

    @pytest.mark.parametrize("action", list(ManagementAction))
    def test_a_steward_may_manage_its_community(self, base, action):
        assert self.may(base, "nation-a-council", COMMUNITY, action)

    def test_a_steward_of_one_community_may_not_manage_another(self, base):
        assert self.may(base, "nation-a-council", COMMUNITY, ManagementAction.RULES_CREATE)
        assert not self.may(base, "nation-a-council", OTHER_COMMUNITY, ManagementAction.RULES_CREATE)

    def test_a_non_steward_is_refused(self, base):
        assert not self.may(base, "univ", COMMUNITY, ManagementAction.RULES_CREATE)

    @pytest.mark.parametrize("action", ["rules:delete", "admin", "*", ""])
    def test_an_unknown_action_is_refused(self, base, action):
        assert not self.may(base, "nation-a-council", COMMUNITY, action)

    def test_a_community_without_stewards_is_managed_by_no_one(self, base):
        assert not self.may(base, "nation-a-council", COMMUNITY, ManagementAction.RULES_CREATE, stewards=())

    def test_comments_and_blank_lines_in_management_csv_are_skipped_not_the_end(self, tmp_path):
        """An operator may annotate policies/management.csv: every permission after a comment or
        a blank line still counts."""
        policies = tmp_path / "policies"
        shutil.copytree(POLICIES, policies)
        original = (POLICIES / "management.csv").read_text()
        (policies / "management.csv").write_text(
            "# Stewards manage their own community.\n\n" + original.replace("\n", "\n\n# next\n", 1)
        )
        annotated = PolicyBase(policies)
        for action in ManagementAction:
            assert self.may(annotated, "nation-a-council", COMMUNITY, action), action
        assert not self.may(annotated, "univ", COMMUNITY, ManagementAction.RULES_CREATE)

    def test_a_removed_steward_is_refused_at_once(self, base):
        assert self.may(base, "nation-a-council", COMMUNITY, ManagementAction.RULES_CREATE)
        assert not self.may(
            base, "nation-a-council", COMMUNITY, ManagementAction.RULES_CREATE, stewards=("new-council",)
        )


# Every name a policy knows, in every namespace, plus keywords and spellings of namespaces
# themselves: an organization (or community) may be given any of them as its id.
POLICY_NAMES = sorted(
    {
        "steward",
        "admin",
        "*",
        "org",
        "role",
        "community",
        "action",
        "purpose",
        "category",
        *(
            f"{ns}:{name}"
            for ns in ("org", "role", "community", "action")
            for name in ("steward", "*", "admin")
        ),
        *(str(a) for a in ManagementAction),
        *(f"action:{a}" for a in ManagementAction),
        *("consents:write", "consents:read", "authorize", "rules:write", "audit:read", "community:read"),
        COMMUNITY,
        OTHER_COMMUNITY,
        f"community:{COMMUNITY}",
        "nation-a-council",
        "org:nation-a-council",
        *PURPOSES,
        *CATEGORIES,
        *(f"purpose:{p}" for p in PURPOSES),
        *(f"category:{c}" for c in CATEGORIES),
        "deny",
        "require_approval",
        "role:steward:nation-a",
    }
)
ORG_IDS = st.one_of(st.sampled_from(POLICY_NAMES), st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:*-]{0,20}\Z"))


class TestNoNameGrantsWhatItWasNotGiven:
    """Issue 12: an organization whose id was ``steward`` managed every community, because
    pycasbin links two equal names. With every name namespaced, no id does."""

    def test_an_organization_named_steward_manages_nothing(self, base):
        for action in ManagementAction:
            assert not base.may_manage(
                organization="steward", community=COMMUNITY, action=action, stewards=["nation-a-council"]
            )
            assert not base.may_manage(
                organization="role:steward", community=COMMUNITY, action=action, stewards=["nation-a-council"]
            )

    @settings(
        max_examples=300,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.differing_executors],
    )
    @given(
        organization=ORG_IDS,
        community=ORG_IDS,
        stewards=st.lists(ORG_IDS, max_size=3),
        action=st.one_of(st.sampled_from([str(a) for a in ManagementAction]), ORG_IDS),
    )
    def test_may_manage_only_as_a_steward_of_that_community(
        self, base, organization, community, stewards, action
    ):
        granted = organization in stewards and action in {str(a) for a in ManagementAction}
        assert (
            base.may_manage(organization=organization, community=community, action=action, stewards=stewards)
            is granted
        )

    @settings(
        max_examples=150,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.differing_executors],
    )
    @given(
        requester=ORG_IDS,
        named=st.lists(ORG_IDS, min_size=1, max_size=2),
        community=ORG_IDS,
        asked_community=ORG_IDS,
        purpose=st.sampled_from(PURPOSES),
        category=st.sampled_from(CATEGORIES),
    )
    def test_a_rule_reaches_only_the_requesters_and_community_it_names(
        self, base, requester, named, community, asked_community, purpose, category
    ):
        """A rule naming organizations matches a request only from one of them (or from anyone
        for ``*``), and only in its own community, whatever the ids are."""
        rule = Rule(
            id="r1",
            community=community,
            effect=RuleEffect.DENY,
            purposes=(purpose,),
            data_categories=(category,),
            requesters=tuple(named),
        )
        enforcer = base.reference_enforcer([rule])
        matched = enforcer.enforce(
            *base.rule_request(requester, asked_community, purpose, category, str(RuleEffect.DENY))
        )
        expected = asked_community == community and (requester in named or WILDCARD in named)
        assert matched is expected
