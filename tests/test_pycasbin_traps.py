"""pycasbin traps (issue 5, item 4), each held against the version we pin (pyproject.toml).

For every trap there are two kinds of test:

* ``test_trap_*`` shows what the pinned pycasbin (2.8.0) does. It fails when an upgrade removes
  or changes the trap: then revisit the workaround in consent_service/core/policy.py and the
  "pycasbin traps, held by tests" section of docs/performance.md, and update this file.
* ``test_we_*`` shows that policy.py (the only module that imports casbin) avoids the trap,
  checked on the objects it builds rather than on its source text.

The quadratic trap is measured by counting the role manager's name comparisons at N and 2N
names, never by timing: speed targets belong to the benchmarks, not to unit tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import casbin
import pytest
from casbin.core_enforcer import CoreEnforcer
from casbin.model import FastModel, Model
from casbin.rbac import RoleManager as RoleManagerInterface
from casbin.rbac.default_role_manager import role_manager as default_role_manager

from consent_service.core.policy import PolicyBase, Rule
from consent_service.core.wire import ManagementAction, RuleEffect
from consent_service.schemas.communities import CommunityIn

POLICIES = Path(__file__).resolve().parents[1] / "policies"
MODEL_CONF = POLICIES / "model.conf"
MANAGEMENT_CONF = POLICIES / "management.conf"
COMMUNITY = "nation-a"
CHANGED = (
    "pycasbin's behaviour changed: the trap is gone or changed; revisit policy.py's "
    "workaround and docs/performance.md ('pycasbin traps, held by tests')"
)

# A plain ACL model, enough for FastEnforcer's key cache (its keys index the p lines).
ACL_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
"""

THREE_HIERARCHIES = ACL_MODEL.replace(
    "[policy_effect]", "[role_definition]\ng = _, _\ng2 = _, _\ng3 = _, _\n\n[policy_effect]"
)


@pytest.fixture(scope="module")
def base() -> PolicyBase:
    return PolicyBase(POLICIES)


@pytest.fixture
def acl_conf(tmp_path: Path) -> str:
    path = tmp_path / "acl.conf"
    path.write_text(ACL_MODEL)
    return str(path)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[CoreEnforcer]:
    """Every Casbin enforcer (of any class) constructed while the test runs, in order."""
    enforcers: list[CoreEnforcer] = []
    original = CoreEnforcer.__init__

    def recording_init(self: CoreEnforcer, *args: Any, **kwargs: Any) -> None:
        enforcers.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(CoreEnforcer, "__init__", recording_init)
    return enforcers


@pytest.fixture
def name_comparisons(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A one-item counter of the default role manager's name comparisons (its ``_matching_fn``).

    In 2.8.0 every link added to a role manager that has a matching function compares the new
    names with every name it already holds; the domain role manager always sets one.
    """
    role_manager = default_role_manager.RoleManager
    if not hasattr(role_manager, "_matching_fn"):
        pytest.fail(f"RoleManager._matching_fn is gone: {CHANGED}")
    counter = [0]
    original = role_manager._matching_fn

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(role_manager, "_matching_fn", counting)
    yield counter


def exercise_policy_py(base: PolicyBase) -> None:
    """Every path through policy.py that builds Casbin objects."""
    PolicyBase(POLICIES)
    rule = Rule(
        id="r1",
        community=COMMUNITY,
        effect=RuleEffect.DENY,
        purposes=("research",),
        data_categories=("health",),
        requesters=("univ",),
    )
    base.reference_enforcer([rule])
    base.compile_rules(COMMUNITY, 1, [rule])
    base.may_manage(
        organization="nation-a-council",
        community=COMMUNITY,
        action=str(ManagementAction.RULES_CREATE),
        stewards=["nation-a-council"],
    )


# --- Trap 1: FastModel drops the role definitions after the first (g2, g3, ...) -----------------


class TestFastModelDropsG2:
    def test_trap_fast_model_still_drops_g2_and_g3(self):
        """2.8.0 still has it: FastModel.add_def returns None, and Model._load_section stops at
        the first falsy answer, so only ``g`` is loaded (likewise p2, r2, ...)."""
        plain, fast = Model(), FastModel([0, 1])
        plain.load_model_from_text(THREE_HIERARCHIES)
        fast.load_model_from_text(THREE_HIERARCHIES)
        assert sorted(plain["g"].keys()) == ["g", "g2", "g3"]
        assert sorted(fast["g"].keys()) == ["g"], CHANGED
        assert FastModel([0, 1]).add_def("g", "g2", "_, _") is None, CHANGED

    def test_trap_fast_enforcer_on_our_model_loses_the_category_hierarchy(self):
        """With a cache key, FastEnforcer builds a FastModel: model.conf's g2 is gone, so the
        category links cannot be added and the matcher's g2() is undefined."""
        enforcer = casbin.FastEnforcer(str(MODEL_CONF), cache_key_order=[0, 1])
        assert sorted(enforcer.model["g"].keys()) == ["g"], CHANGED
        with pytest.raises(KeyError):
            enforcer.add_named_grouping_policy("g2", "mental-health", "health")
        enforcer.add_policy("univ", COMMUNITY, "research", "health", "deny", "r1")
        with pytest.raises(Exception, match="'g2' not defined"):
            enforcer.enforce("univ", COMMUNITY, "research", "health", "deny")

    def test_we_build_plain_enforcers_and_models_only(self, base, built):
        """policy.py builds neither FastEnforcer nor FastModel (nor FastPolicy line stores)."""
        exercise_policy_py(base)
        assert len(built) >= 3  # hierarchies, reference, management
        for enforcer in built:
            assert type(enforcer) is casbin.Enforcer, type(enforcer)
            assert type(enforcer.model) is Model, type(enforcer.model)
            for assertion in enforcer.model["p"].values():
                assert type(assertion.policy) is list, type(assertion.policy)

    def test_we_keep_both_hierarchies_and_honour_a_g2_link(self, base):
        """The reference enforcer keeps model.conf's g and g2; a rule on a parent code matches
        a request for a child code only through those links."""
        rule = Rule(
            id="r1",
            community=COMMUNITY,
            effect=RuleEffect.DENY,
            purposes=("service-delivery",),
            data_categories=("health",),
            requesters=("univ",),
        )
        enforcer = base.reference_enforcer([rule])
        assert sorted(enforcer.model["g"].keys()) == ["g", "g2"]
        assert enforcer.get_named_role_manager("g2").has_link("category:mental-health", "category:health")
        assert enforcer.get_named_role_manager("g").has_link("purpose:referral", "purpose:service-delivery")
        deny = str(RuleEffect.DENY)
        ask = base.rule_request
        assert enforcer.enforce(*ask("univ", COMMUNITY, "service-delivery", "mental-health", deny))  # via g2
        assert enforcer.enforce(*ask("univ", COMMUNITY, "referral", "health", deny))  # via g
        assert not enforcer.enforce(*ask("univ", COMMUNITY, "service-delivery", "housing", deny))


# --- Trap 2: FastEnforcer's key cache works with exactly two key fields ------------------------


class TestFastEnforcerKeyWidth:
    @pytest.mark.parametrize("key", [[0], [1]])
    def test_trap_one_field_key_still_breaks_add_policy(self, acl_conf, key):
        """2.8.0 still has it: FastPolicy.__len__ walks the cache as exactly two dict levels, so
        with one key field add_policy raises AttributeError after storing the line (half
        applied: a retry then reports it as already there)."""
        enforcer = casbin.FastEnforcer(acl_conf, cache_key_order=key)
        try:
            enforcer.add_policy("alice", "data1", "read")
        except AttributeError as error:
            raised = str(error)
        else:
            raised = "nothing"
        assert raised == "'set' object has no attribute 'values'", CHANGED
        assert enforcer.has_policy("alice", "data1", "read"), CHANGED
        assert enforcer.add_policy("alice", "data1", "read") is False, CHANGED

    def test_trap_three_field_key_still_takes_duplicates_and_lists_garbage(self, acl_conf):
        """With as many key fields as the line has, FastPolicy.__contains__ always says no
        (duplicates go in) and iterating yields the characters of the last key."""
        enforcer = casbin.FastEnforcer(acl_conf, cache_key_order=[0, 1, 2])
        assert enforcer.add_policy("alice", "data1", "read")
        assert enforcer.add_policy("alice", "data1", "read"), CHANGED  # a duplicate accepted
        assert list(enforcer.model["p"]["p"].policy) == [["r", "e", "a", "d"]], CHANGED

    def test_trap_two_field_key_works(self, acl_conf):
        """The control: two key fields are what FastPolicy was written for."""
        enforcer = casbin.FastEnforcer(acl_conf, cache_key_order=[0, 1])
        assert enforcer.add_policy("alice", "data1", "read")
        assert not enforcer.add_policy("alice", "data1", "read")
        assert list(enforcer.model["p"]["p"].policy) == [["alice", "data1", "read"]]
        assert enforcer.enforce("alice", "data1", "read")
        assert not enforcer.enforce("alice", "data2", "read")

    def test_we_store_rule_lines_in_plain_lists_that_round_trip(self, base, built):
        """Our six-field rule lines go into a plain list (no key cache) and come back intact."""
        rules = [
            Rule(
                id=f"r{i}",
                community=COMMUNITY,
                effect=RuleEffect.DENY,
                purposes=("research",),
                data_categories=(category,),
                requesters=("univ", "gla"),
            )
            for i, category in enumerate(("health", "housing"))
        ]
        enforcer = base.reference_enforcer(rules)
        assert type(enforcer) is casbin.Enforcer and type(enforcer.model["p"]["p"].policy) is list
        expected = [
            [
                f"org:{who}",
                f"community:{COMMUNITY}",
                "purpose:research",
                f"category:{r.data_categories[0]}",
                "deny",
                r.id,
            ]
            for r in rules
            for who in r.requesters
        ]
        assert sorted(enforcer.get_policy()) == sorted(expected)
        assert all(enforcer.has_policy(*line) for line in expected)
        assert not enforcer.add_policy(*expected[0])  # a duplicate is refused


# --- Trap 3: FastEnforcer is not thread-safe -----------------------------------------------------


class TestFastEnforcerThreads:
    def test_trap_fast_enforcer_still_shares_one_filter_across_threads(self, acl_conf):
        """2.8.0 still has it: FastEnforcer.enforce narrows the one shared FastPolicy to the
        request's key (``_current_filter``) without a lock, then scans. Forcing the interleaving
        "A narrows, B narrows, A scans" (with events, not luck) makes A scan B's lines and deny
        a request that is allowed."""
        enforcer = casbin.FastEnforcer(acl_conf, cache_key_order=[0, 1])
        enforcer.add_policies([["alice", "data1", "read"], ["bob", "data2", "write"]])
        policy = enforcer.model["p"]["p"].policy
        a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
        seen_by_a: list[tuple[bool, list[list[str]]]] = []
        scan = enforcer.enforce_ex  # the bound method, called after the filter is applied

        def paused_scan(*rvals: str) -> Any:
            if rvals[0] == "alice":  # thread A: its filter is on; let B put its own on
                a_inside.set()
                b_entered = b_inside.wait(timeout=2)
                seen_by_a.append((b_entered, [list(line) for line in policy]))
                try:
                    return scan(*rvals)
                finally:
                    a_done.set()
            b_inside.set()  # thread B: its filter is on; wait until A has scanned
            a_done.wait(timeout=2)
            return scan(*rvals)

        enforcer.enforce_ex = paused_scan  # type: ignore[method-assign]
        results: dict[str, bool] = {}

        def thread_b() -> None:
            a_inside.wait(timeout=2)
            results["bob"] = enforcer.enforce("bob", "data2", "write")

        b = threading.Thread(target=thread_b)
        b.start()
        results["alice"] = enforcer.enforce("alice", "data1", "read")
        b.join(timeout=5)
        assert not b.is_alive()
        assert seen_by_a == [(True, [["bob", "data2", "write"]])], CHANGED  # A scanned B's lines
        assert results == {"alice": False, "bob": True}, CHANGED  # alice wrongly denied
        del enforcer.enforce_ex
        assert enforcer.enforce("alice", "data1", "read")  # the right answer, one thread at a time

    def test_we_share_no_enforcer_between_calls(self, base, built):
        """No Casbin object outlives a call: may_manage and reference_enforcer build a fresh
        plain Enforcer each time, and the base keeps only frozensets from the role managers,
        so request threads never share mutable Casbin state (and never a FastEnforcer)."""
        for _ in range(2):
            base.may_manage(
                organization="nation-a-council",
                community=COMMUNITY,
                action=str(ManagementAction.RULES_LIST),
                stewards=["nation-a-council"],
            )
        base.reference_enforcer()
        assert len(built) == 3 and len({id(e) for e in built}) == 3
        assert all(type(e) is casbin.Enforcer for e in built)

        def casbin_objects(obj: object, depth: int = 0) -> list[object]:
            found: list[object] = []
            if isinstance(obj, CoreEnforcer | RoleManagerInterface | Model):
                return [obj]
            if depth < 3 and hasattr(obj, "__dict__"):
                for value in vars(obj).values():
                    found += casbin_objects(value, depth + 1)
            return found

        assert casbin_objects(base) == []
        assert casbin_objects(base.compile_rules(COMMUNITY, 1, [])) == []


# --- Trap 4: the domain role manager's first enforce is quadratic in a domain's names ----------


def load_domain_enforcer(tmp_path: Path, names: int) -> casbin.Enforcer:
    """The raw library path: management.conf loaded with ``names`` members of one domain."""
    csv = tmp_path / f"management-{names}.csv"
    lines = ["p, steward, *, rules:create", *(f"g, org-{i}, steward, {COMMUNITY}" for i in range(names))]
    csv.write_text("\n".join(lines) + "\n")
    return casbin.Enforcer(str(MANAGEMENT_CONF), str(csv))


class TestDomainRoleManagerIsQuadratic:
    def test_trap_first_enforce_after_a_load_is_still_quadratic(self, tmp_path, name_comparisons):
        """2.8.0 still has it: the domain manager builds a domain's RoleManager on its first
        has_link, with an equality matching function, so each added link compares its names
        with every name already held: doubling the names quadruples the comparisons. The built
        manager is cached, so the next enforce costs none."""
        first, second = {}, {}
        for names in (150, 300):
            enforcer = load_domain_enforcer(tmp_path, names)
            name_comparisons[0] = 0
            assert enforcer.enforce("org-0", COMMUNITY, "rules:create")
            first[names] = name_comparisons[0]
            name_comparisons[0] = 0
            assert enforcer.enforce("org-1", COMMUNITY, "rules:create")
            second[names] = name_comparisons[0]
        assert first[150] >= 150**2, (first, CHANGED)
        assert 3.5 <= first[300] / first[150] <= 4.5, (first, CHANGED)
        assert second == {150: 0, 300: 0}, (second, CHANGED)

    def test_we_give_the_role_manager_one_communitys_stewards_only(self, base, built):
        """may_manage's enforcer holds the stewards it was given (the caller passes one
        community's, read by index) in that community's domain, and nothing else."""
        stewards = ["council", "elders", "data-office"]
        assert base.may_manage(
            organization="elders",
            community=COMMUNITY,
            action=str(ManagementAction.RULES_CREATE),
            stewards=stewards,
        )
        (enforcer,) = built
        links = enforcer.get_named_grouping_policy("g")
        domain = f"community:{COMMUNITY}"
        assert sorted(links) == sorted([f"org:{s}", "role:steward", domain] for s in stewards)

    def test_we_stay_linear_in_communities_and_bounded_per_community(self, base, name_comparisons):
        """Ours grows linearly in the communities asked about (each call starts from nothing)
        and a call costs the same after N or 2N other communities; per call the cost is bounded
        by the API's cap on a community's stewards (members never enter Casbin)."""
        cap = next(v.max for v in CommunityIn().fields["stewards"].validators if hasattr(v, "max"))
        stewards = [f"steward-{i}" for i in range(cap)]

        def ask(community: str) -> int:
            before = name_comparisons[0]
            assert base.may_manage(
                organization="steward-0",
                community=community,
                action=str(ManagementAction.RULES_LIST),
                stewards=stewards,
            )
            return name_comparisons[0] - before

        def serve(communities: int) -> tuple[int, int]:
            """Comparisons for ``communities`` calls, then for one more call after them."""
            total = sum(ask(f"community-{i}") for i in range(communities))
            return total, ask(COMMUNITY)

        total_n, after_n = serve(20)
        total_2n, after_2n = serve(40)
        assert total_2n == 2 * total_n
        assert after_n == after_2n
        assert after_n <= 2 * (cap + 1) ** 2  # 2.8.0: 1.5 per (link, name held) pair
