"""The rule cache brings a community up to date by its changes alone, and ends where a full compile would.

Issue 5: the first decision after a rule change may cost at most twice a normal one, so the
cache applies only the rules added or retired since the version it holds. Zero staleness is
not negotiable, so every test here compares the incremental result with compiling the
community afresh from the same snapshot.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from governance_helpers import (
    APPROVAL_RULE,
    DENY_RULE,
    NATION_A,
    RESEARCHER,
    reason_codes,
    seeded_governance,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_policy_casbin import (
    COMMUNITY,
    GRID_CATEGORIES,
    GRID_PURPOSES,
    GRID_REQUESTERS,
    PURPOSES,
    _base,
    codes,
)

from consent_service.core.policy import CompiledRules, Rule
from consent_service.core.wire import WILDCARD, RuleEffect
from consent_service.services.rule_cache import RuleCache
from consent_service.storage import communities as community_store
from consent_service.storage.db import read_snapshot, write
from consent_service.storage.models import CommunityRule


def answers(compiled: CompiledRules) -> dict[tuple[str, ...], list[str]]:
    """What the compiled rules say on the whole grid: the ids matched, in the order reported."""
    return {
        (str(effect), requester, purpose, category): [
            rule.id
            for rule in compiled.matching(
                effect=effect, requester=requester, purpose=purpose, categories=[category]
            )
        ]
        for effect in RuleEffect
        for requester in GRID_REQUESTERS
        for purpose in GRID_PURPOSES
        for category in GRID_CATEGORIES
    }


def same_as_fresh(compiled: CompiledRules) -> None:
    fresh = _base.compile_rules(compiled.community, compiled.version, compiled.rules)
    assert answers(compiled) == answers(fresh)


@st.composite
def rules(draw: st.DrawFn, prefix: str) -> list[Rule]:
    return [
        Rule(
            id=f"{prefix}-{i}",
            community=COMMUNITY,
            effect=draw(st.sampled_from(RuleEffect)),
            purposes=draw(codes(PURPOSES, GRID_PURPOSES)),
            data_categories=draw(st.one_of(codes(GRID_CATEGORIES), st.just((WILDCARD,)))),
            requesters=draw(st.one_of(st.just((WILDCARD,)), codes(["univ", "gla"]))),
        )
        for i in range(draw(st.integers(0, 5)))
    ]


class TestCompiledRulesWithChanges:
    @settings(
        max_examples=60,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.differing_executors],
    )  # mutmut reruns in one process
    @given(
        start=rules("old"),
        steps=st.lists(st.tuples(rules("new"), st.sets(st.integers(0, 9))), min_size=1, max_size=4),
    )
    def test_a_chain_of_changes_answers_like_compiling_the_result_afresh(self, start, steps):
        compiled = _base.compile_rules(COMMUNITY, 1, start)
        for version, (added, retiring) in enumerate(steps, start=2):
            held = list(compiled.rules)
            retired = [held[i].id for i in sorted(retiring) if i < len(held)]
            added = [dataclasses.replace(rule, id=f"{rule.id}-v{version}") for rule in added]
            before = answers(compiled)
            updated = compiled.with_changes(version, in_force=added, retired=retired)
            assert answers(compiled) == before  # built aside: the rules in use are untouched
            assert [r.id for r in updated.rules] == [r.id for r in held if r.id not in retired] + [
                r.id for r in added
            ]
            assert updated.version == version
            same_as_fresh(updated)
            compiled = updated

    def test_a_rule_given_again_replaces_the_one_held(self):
        rule = Rule(
            id="r",
            community=COMMUNITY,
            effect=RuleEffect.DENY,
            purposes=("research",),
            data_categories=("health",),
            requesters=(WILDCARD,),
        )
        changed = dataclasses.replace(rule, data_categories=("housing",))
        updated = _base.compile_rules(COMMUNITY, 1, [rule]).with_changes(2, in_force=[changed], retired=[])
        assert [r.id for r in updated.rules] == ["r"]
        assert not updated.matching(
            effect=RuleEffect.DENY, requester="univ", purpose="research", categories=["health"]
        )
        assert updated.matching(
            effect=RuleEffect.DENY, requester="univ", purpose="research", categories=["housing"]
        ) == [changed]


governance_seeds, seed, database_start, gov = seeded_governance(
    "rule-cache", show_community_id=True, also=lambda governance: governance.consent()
)


@pytest.fixture
def services(world) -> Any:
    return world.services


def compiled_now(services: Any) -> tuple[CompiledRules, CompiledRules]:
    """(what the cache answers with, a full compile) for Nation A, both from one snapshot."""
    with read_snapshot(services.sessions) as session:
        version = community_store.get(session, NATION_A).policy_version
        return (
            services.rules.compiled(session, NATION_A, version),
            services.rules.compile_in_full(session, NATION_A, version),
        )


def add_unstamped_deny_rule(services: Any) -> str:
    """A deny rule (research, health) added by hand: version bumped, the rule left unstamped."""
    rule_id = str(uuid.uuid4())
    with write(services.sessions) as session:
        session.add(
            CommunityRule(
                id=rule_id,
                community_id=NATION_A,
                effect="deny",
                purposes=["research"],
                data_categories=["health"],
                requesters=["*"],
                obligations={},
                labels=[],
                reason=DENY_RULE["reason"],
                created_at=datetime.now(UTC),
                created_by="nation-a-council",
                created_by_client="hand",
            )
        )
        community_store.bump_policy_version(session, NATION_A)
        session.commit()
    return rule_id


def full_reads_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the rule cache read every rule of a community it already held")

    monkeypatch.setattr(community_store, "active_rules", refuse)


class TestTheCacheFollowsChangesThroughTheApi:
    def test_after_warming_only_changes_are_read_and_decisions_follow_at_once(
        self, gov, services, monkeypatch
    ):
        kept = gov.rule(base=APPROVAL_RULE, purposes=["service-planning"], data_categories=["housing"])
        assert gov.ask("research", "health")["decision"] == "permit"  # warms the cache
        full_reads_forbidden(monkeypatch)

        deny = gov.rule()
        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]
        gov.retire(deny)
        assert gov.ask("research", "health")["decision"] == "permit"
        gov.rule(base=APPROVAL_RULE)
        assert reason_codes(gov.ask("research", "health")) == ["approval_required"]

        monkeypatch.undo()
        cached, fresh = compiled_now(services)
        assert [r.id for r in cached.rules] == [r.id for r in fresh.rules]
        assert kept["id"] in {r.id for r in cached.rules}
        assert answers(cached) == answers(fresh)

    def test_a_rule_written_without_a_version_stamp_is_still_seen(self, gov, services, app):
        """Anything that adds or retires a rule without stamping it (an older release during a
        rolling upgrade, a hand-written fix) leaves NULL, which counts as changed every time."""
        assert gov.ask("research", "health")["decision"] == "permit"  # warms the cache
        rule_id = add_unstamped_deny_rule(services)
        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]
        gov.rule(base=APPROVAL_RULE, purposes=["service-planning"])  # a stamped change after it
        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]

        with write(services.sessions) as session:
            session.get(CommunityRule, rule_id).retired_at = datetime.now(UTC)
            community_store.bump_policy_version(session, NATION_A)
            session.commit()
        assert gov.ask("research", "health")["decision"] == "permit"

    def test_a_retired_rule_put_back_in_force_by_hand_is_seen(self, gov, services):
        """Rules are never edited through the API; an edit by hand that the stamps cannot show
        is caught by the count of rules in force, and the community is compiled in full."""
        deny = gov.rule()
        gov.retire(deny)
        assert gov.ask("research", "health")["decision"] == "permit"  # warm, with the rule retired
        with write(services.sessions) as session:
            session.get(CommunityRule, deny["id"]).retired_at = None
            community_store.bump_policy_version(session, NATION_A)
            session.commit()
        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]

    def test_a_decision_from_an_older_snapshot_does_not_wind_the_cache_back(self, gov, services):
        gov.rule(base=APPROVAL_RULE, purposes=["service-planning"])
        assert gov.ask("research", "health")["decision"] == "permit"  # warms the cache
        with read_snapshot(services.sessions) as old:
            old_version = community_store.get(old, NATION_A).policy_version  # the snapshot starts here
            gov.rule()  # committed after that snapshot began
            assert reason_codes(gov.ask("research", "health")) == ["community_rule"]
            newest = services.rules._compiled[NATION_A]
            assert newest.version == old_version + 1

            answered = services.rules.compiled(old, NATION_A, old_version)
        assert answered.version == old_version and len(answered.rules) == len(newest.rules) - 1
        assert services.rules._compiled[NATION_A] is newest
        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]

    def test_the_requester_named_by_a_new_rule_is_matched_exactly(self, gov):
        assert gov.ask("research", "health")["decision"] == "permit"
        gov.rule(requesters=["gla"])
        assert gov.ask("research", "health", requester=RESEARCHER)["decision"] == "permit"


class TestWhatTheCacheHolds:
    def test_rules_read_from_the_database_are_the_rules_the_steward_wrote(self, gov, services):
        """Both ways in (the changes since the held version, and a full compile) give the engine
        the rule as written: its community (cited in reasons, matched against approvals), its
        obligations, labels and reason (returned with a permit or a deny)."""
        assert gov.ask("research", "health")["decision"] == "permit"  # warms the cache
        written = gov.rule(base=APPROVAL_RULE)
        expected = Rule(
            id=written["id"],
            community=NATION_A,
            effect=RuleEffect.REQUIRE_APPROVAL,
            purposes=("research",),
            data_categories=("health",),
            requesters=(WILDCARD,),
            obligations=APPROVAL_RULE["obligations"],
            labels=tuple(APPROVAL_RULE["labels"]),
            reason=APPROVAL_RULE["reason"],
        )
        cached, fresh = compiled_now(services)  # by the changes, and in full
        assert list(cached.rules) == [expected]
        assert list(fresh.rules) == [expected]
        [reason] = gov.ask("research", "health")["reasons"]
        assert (reason["code"], reason["community"], reason["rule_id"]) == (
            "approval_required",
            NATION_A,
            written["id"],
        )

    def test_a_community_held_at_the_current_version_is_not_read_again(self, gov, services, monkeypatch):
        gov.rule()
        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]  # warms the cache
        full_reads_forbidden(monkeypatch)

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the rule cache read changes although it holds the current version")

        monkeypatch.setattr(community_store, "rules_changed_since", refuse)
        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]

    @pytest.mark.parametrize("ignore_versions", [None, False, True])
    def test_only_the_testing_flag_makes_a_cache_keep_stale_rules(self, gov, services, ignore_versions):
        """A cache made without the flag (or with it off) follows the policy version; the
        deliberately broken one (bench/stale_check.py's positive control) keeps its first rules."""
        cache = (
            RuleCache(services.policy)
            if ignore_versions is None
            else RuleCache(services.policy, testing_only_ignore_versions=ignore_versions)
        )
        with read_snapshot(services.sessions) as session:
            before = cache.compiled(session, NATION_A, community_store.get(session, NATION_A).policy_version)
        written = gov.rule()
        with read_snapshot(services.sessions) as session:
            after = cache.compiled(session, NATION_A, community_store.get(session, NATION_A).policy_version)
        assert not before.rules
        if ignore_versions:
            assert after is before
        else:
            assert [r.id for r in after.rules] == [written["id"]]

    def test_an_unstamped_rule_takes_its_place_in_storage_order(self, gov, services):
        """A rule written without a version stamp sorts first among the rules in force; one the
        cache does not hold must not be appended after them by an incremental update, or a deny
        would cite its rules in another order than a fresh worker's."""
        stamped = gov.rule()
        assert reason_codes(gov.ask("research", "health")) == ["community_rule"]  # warms the cache
        unstamped = add_unstamped_deny_rule(services)
        cached, fresh = compiled_now(services)
        assert [r.id for r in fresh.rules] == [unstamped, stamped["id"]]
        assert [r.id for r in cached.rules] == [r.id for r in fresh.rules]
        assert answers(cached) == answers(fresh)
        assert [reason["rule_id"] for reason in gov.ask("research", "health")["reasons"]] == [
            unstamped,
            stamped["id"],
        ]
