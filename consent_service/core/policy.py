"""Casbin: the one module that imports it.

What Casbin holds here is what is small and shared (design.md, "Casbin decides; the database
finds"):

* the purpose and category hierarchies, as role links ``g``/``g2`` of policies/model.conf,
  read from policies/vocabulary.toml; every coverage and overlap question is answered from
  Casbin's role manager (closed once at start, since the vocabulary changes only on restart);
* each community's rules, compiled against that model into exact-key buckets so a decision
  costs the same with ten rules or a hundred thousand (pycasbin's ``enforce`` scans every
  line at ~200 µs a call here; tests hold the buckets against ``enforce`` on model.conf);
* who may manage a community: RBAC with domains (policies/management.conf + .csv), the
  domain being the community and the role links its stewards.

Every name handed to Casbin carries its namespace (``org:``, ``role:``, ``community:``,
``action:``, ``purpose:``, ``category:``; only the policy's own ``*`` wildcard stays bare).
pycasbin links two equal strings, so without namespaces an organization whose id is
``steward`` was the steward role of every community (issue 12). Ids are codes, which may hold
``:`` themselves; a prefix on every name of every kind keeps the kinds apart all the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import casbin

from consent_service.core.deployment import DeploymentPolicy, load_deployment
from consent_service.core.permissions import Role, load_roles
from consent_service.core.vocabulary import Vocabulary, load_vocabulary
from consent_service.core.wire import WILDCARD, RuleEffect


def org(name: str) -> str:
    return f"org:{name}"


def role(name: str) -> str:
    return f"role:{name}"


def community_name(name: str) -> str:
    return f"community:{name}"


def action_name(name: str) -> str:
    return f"action:{name}"


def purpose_name(code: str) -> str:
    return f"purpose:{code}"


def category_name(code: str) -> str:
    return f"category:{code}"


def _or_wildcard(namer: Any, value: str) -> str:
    return WILDCARD if value == WILDCARD else namer(value)


STEWARD_ROLE = role("steward")


class Hierarchy:
    """Ancestor/descendant closure of one code tree, read from a Casbin role manager."""

    def __init__(self, codes: Iterable[str], role_manager: Any, namer: Any) -> None:
        codes = list(codes)
        self.codes = frozenset(codes)
        self._ancestors = {
            c: frozenset(p for p in codes if role_manager.has_link(namer(c), namer(p))) | {c} for c in codes
        }
        descendants: dict[str, set[str]] = {c: set() for c in codes}
        for child, ancestors in self._ancestors.items():
            for ancestor in ancestors:
                descendants[ancestor].add(child)
        self._descendants = {c: frozenset(d) for c, d in descendants.items()}

    def ancestors(self, code: str) -> frozenset[str]:
        """The code and every code above it (an unknown code has only itself)."""
        return self._ancestors.get(code, frozenset((code,)))

    def descendants(self, code: str) -> frozenset[str]:
        return self._descendants.get(code, frozenset((code,)))

    def overlapping(self, code: str) -> frozenset[str]:
        """Codes that overlap ``code``: itself, its ancestors and its descendants."""
        return self.ancestors(code) | self.descendants(code)

    def covers(self, granted: Iterable[str], requested: str) -> bool:
        """True when a granted code is ``requested`` or an ancestor of it."""
        return not self.ancestors(requested).isdisjoint(granted)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    community: str
    effect: RuleEffect
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    requesters: tuple[str, ...]
    obligations: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    reason: str = ""


class PolicyBase:
    """Everything loaded from policies/ at start: vocabulary, hierarchies, deployment policy, model files."""

    def __init__(self, policies_dir: Path | str) -> None:
        self.dir = Path(policies_dir)
        self.model_path = str(self.dir / "model.conf")
        self.vocabulary: Vocabulary = load_vocabulary(self.dir)
        reference = self.reference_enforcer()
        self.purposes = Hierarchy(
            self.vocabulary.purposes, reference.get_named_role_manager("g"), purpose_name
        )
        self.categories = Hierarchy(
            self.vocabulary.data_categories, reference.get_named_role_manager("g2"), category_name
        )
        # policies/deployment.toml: protected purposes, settings, obligations on every permit.
        below = {code: self.purposes.descendants(code) for code in self.purposes.codes}
        self.deployment: DeploymentPolicy = load_deployment(self.dir, self.vocabulary, below)
        self.roles: dict[str, Role] = load_roles(self.dir)  # policies/roles.toml: a person's roles
        self._management_model_text = (self.dir / "management.conf").read_text()
        # Bucket keys recur across communities ("deny", "*", "research", "health"): every
        # community's index points at one shared tuple per key (issue 5: memory per rule).
        self.shared_keys: dict[tuple[str, str, str, str], tuple[str, str, str, str]] = {}
        self._management_lines = _read_policy_csv(self.dir / "management.csv")

    def reference_enforcer(self, rules: Iterable[Rule] = ()) -> casbin.Enforcer:
        """A plain Casbin enforcer on model.conf with the hierarchies and the given rules.

        Too slow for the request path (it scans every line); it is the executable statement
        of what "a rule matches a request" means, against which the compiled buckets are tested.
        """
        enforcer = casbin.Enforcer(self.model_path)
        for kind, terms, namer in (
            ("g", self.vocabulary.purposes, purpose_name),
            ("g2", self.vocabulary.data_categories, category_name),
        ):
            links = [[namer(t.code), namer(t.parent)] for t in terms.values() if t.parent]
            if links:
                enforcer.add_named_grouping_policies(kind, links)
        lines = [
            [
                _or_wildcard(org, requester),
                community_name(r.community),
                purpose_name(purpose),
                _or_wildcard(category_name, category),
                str(r.effect),
                r.id,
            ]
            for r in rules
            for requester in r.requesters
            for purpose in r.purposes
            for category in r.data_categories
        ]
        if lines:
            enforcer.add_policies(lines)
        return enforcer

    @staticmethod
    def rule_request(
        requester: str, community: str, purpose: str, category: str, effect: str
    ) -> tuple[str, str, str, str, str]:
        """The namespaced request ``reference_enforcer``'s model is asked."""
        return (
            org(requester),
            community_name(community),
            purpose_name(purpose),
            category_name(category),
            effect,
        )

    def compile_rules(self, community: str, version: int, rules: Iterable[Rule]) -> CompiledRules:
        return CompiledRules(community=community, version=version, rules=rules, base=self)

    def may_manage(self, *, organization: str, community: str, action: str, stewards: Iterable[str]) -> bool:
        """Casbin RBAC-with-domains check: is ``organization`` a steward allowed ``action``?

        Built per call from the community's own steward links only: the role manager's first
        enforce is quadratic in the names it holds, so it never holds every community's.
        """
        model = casbin.model.Model()  # fresh per call: an enforcer adds its links to its model
        model.load_model_from_text(self._management_model_text)
        enforcer = casbin.Enforcer(model)
        enforcer.add_policies(self._management_lines)
        domain = community_name(community)
        links = [[org(steward), STEWARD_ROLE, domain] for steward in set(stewards)]
        if links:
            enforcer.add_grouping_policies(links)
        return bool(enforcer.enforce(org(organization), domain, action_name(action)))


def _read_policy_csv(path: Path) -> list[list[str]]:
    lines = []
    for raw in path.read_text().splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        kind, *values = [part.strip() for part in raw.split(",")]
        if kind == "p":
            lines.append(values)
    return lines


class CompiledRules:
    """One community's active rules, bucketed by every exact (purpose, category) they match.

    Each rule is expanded once, at compile time, to the codes that overlap its purposes and
    categories (using the Casbin hierarchies), so a lookup is a handful of dict hits whatever
    the number of rules. After a change, :meth:`with_changes` expands only the rules that
    changed and shares everything else with the rules it replaces (issue 5: the first decision
    after a change costs at most twice a normal one); the result is the same as compiling the
    community's rules afresh, which a property test holds.
    """

    def __init__(self, *, community: str, version: int, rules: Iterable[Rule], base: PolicyBase) -> None:
        self.community = community
        self.version = version
        self._base = base
        self.rules: tuple[Rule, ...] = tuple(rules)
        buckets: dict[tuple[str, str, str, str], list[Rule]] = defaultdict(list)
        for rule in self.rules:
            for key in self._keys(rule):
                buckets[key].append(rule)
        # Most keys hold one rule: they share that rule's one 1-tuple.
        alone = {rule.id: (rule,) for rule in self.rules}
        self._buckets = {
            key: alone[value[0].id] if len(value) == 1 else tuple(value) for key, value in buckets.items()
        }
        self._order = {rule.id: index for index, rule in enumerate(self.rules)}

    def _keys(self, rule: Rule) -> set[tuple[str, str, str, str]]:
        """Every exact (effect, requester, purpose, category) key the rule answers for."""
        purposes: set[str] = set()
        for code in rule.purposes:
            purposes |= self._base.purposes.overlapping(code)
        if WILDCARD in rule.data_categories:
            categories: set[str] = set(self._base.categories.codes) | {WILDCARD}
        else:
            categories = set()
            for code in rule.data_categories:
                categories |= self._base.categories.overlapping(code)
        effect, shared = str(rule.effect), self._base.shared_keys
        keys = {
            (effect, requester, purpose, category)
            for requester in set(rule.requesters)
            for purpose in purposes
            for category in categories
        }
        return {shared.setdefault(key, key) for key in keys}

    def holds(self, rule_id: str) -> bool:
        return rule_id in self._order

    def with_changes(
        self, version: int, *, in_force: Iterable[Rule], retired: Iterable[str]
    ) -> CompiledRules:
        """These rules after a change: ``retired`` ids removed, ``in_force`` rules added (or,
        for an id held already, replaced), new rules after the old ones in the order given.

        Built aside: ``self`` is not modified, so decisions using it meanwhile are unaffected.
        Costs a copy of the bucket index plus the expansion of the changed rules only.
        """
        in_force = list(in_force)
        leaving = set(retired) | {rule.id for rule in in_force}
        old = [rule for rule in self.rules if rule.id in leaving]
        fresh = object.__new__(CompiledRules)
        fresh.community, fresh.version, fresh._base = self.community, version, self._base
        fresh.rules = tuple(rule for rule in self.rules if rule.id not in leaving) + tuple(in_force)
        fresh._order = {rule.id: index for index, rule in enumerate(fresh.rules)}
        buckets = dict(self._buckets)
        for rule in old:
            for key in self._keys(rule):
                kept = tuple(r for r in buckets.get(key, ()) if r.id != rule.id)
                if kept:
                    buckets[key] = kept
                else:
                    buckets.pop(key, None)
        for rule in in_force:
            alone = (rule,)
            for key in self._keys(rule):
                held = buckets.get(key)
                buckets[key] = (*held, rule) if held else alone
        fresh._buckets = buckets
        return fresh

    def matching(
        self, *, effect: RuleEffect, requester: str, purpose: str, categories: Iterable[str]
    ) -> list[Rule]:
        """Rules of ``effect`` matching the request, each once, in rule order.

        An unknown category code (one not in the vocabulary) still matches ``*`` rules and
        rules naming that exact code, so a stale vocabulary can only deny more, never less.
        """
        found: dict[str, Rule] = {}
        for category in categories:
            for who in (requester, WILDCARD):
                # Only "*" rules sit under the "*" category key, which catches unknown codes.
                for key_category in (category, WILDCARD):
                    for rule in self._buckets.get((str(effect), who, purpose, key_category), ()):
                        found.setdefault(rule.id, rule)
        return sorted(found.values(), key=lambda rule: self._order[rule.id])
