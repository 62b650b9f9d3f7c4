"""Each worker's compiled community rules, kept fresh by the community's policy version.

Zero staleness: the decision reads ``(community, policy_version)`` in its own snapshot and,
when the version it holds differs, brings the community up to date from rules read in that
same snapshot. No time-based expiry anywhere. Normally only the rules changed since the
held version are read and applied (each rule change stamps the version it bumped to), so
the first decision after a change costs little more than any other; a community not held
yet, or held at a newer version than this snapshot's, is compiled in full. Either way the
result is built aside and swapped in with one dict store, so concurrent decisions keep
using the old compiled rules until the new ones are ready.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from consent_service.core.policy import CompiledRules, PolicyBase, Rule
from consent_service.core.wire import RuleEffect
from consent_service.services import metrics
from consent_service.storage import communities as community_store

_NO_OBLIGATIONS: Mapping[str, Any] = MappingProxyType({})


def _codes(values: Iterable[str]) -> tuple[str, ...]:
    # Interned: a worker holding 100,000 rules keeps one copy of each code, not one per rule.
    return tuple(sys.intern(value) for value in values)


def _rule(community: str, row: Row) -> Rule:
    return Rule(
        id=row.id,
        community=community,
        effect=RuleEffect(row.effect),
        purposes=_codes(row.purposes),
        data_categories=_codes(row.data_categories),
        requesters=_codes(row.requesters),
        obligations=dict(row.obligations) if row.obligations else _NO_OBLIGATIONS,
        labels=_codes(row.labels),
        reason=row.reason,
    )


class RuleCache:
    def __init__(self, policy: PolicyBase, *, testing_only_ignore_versions: bool = False) -> None:
        self.policy = policy
        self._compiled: dict[str, CompiledRules] = {}
        # A deliberately broken cache (setting TESTING_ONLY_STALE_RULE_CACHE): it keeps the rules
        # it compiled first whatever the policy version says, so bench/stale_check.py can show that
        # its check does catch stale permits. Never set it in a deployment.
        self._ignore_versions = testing_only_ignore_versions

    def compiled(self, session: Session, community: str, version: int) -> CompiledRules:
        held = self._compiled.get(community)
        if held is not None and (held.version == version or self._ignore_versions):
            metrics.RULE_CACHE_HITS.inc()
            return held
        if held is not None and held.version < version:
            fresh = self._updated(session, held, version)
        else:
            fresh = self.compile_in_full(session, community, version)
        latest = self._compiled.get(community)
        if latest is None or latest.version <= fresh.version:
            # An older snapshot (held is newer) is answered from its own rules but not kept.
            self._compiled[community] = fresh
        return fresh

    def compile_in_full(self, session: Session, community: str, version: int) -> CompiledRules:
        rules = [_rule(community, row) for row in community_store.active_rules(session, community)]
        metrics.RULE_CACHE_COMPILES.labels("full").inc()
        return self.policy.compile_rules(community, version, rules)

    def _updated(self, session: Session, held: CompiledRules, version: int) -> CompiledRules:
        """``held`` plus the changes since its version, or a full compile when they are not
        plain additions and retirements.

        The API only ever adds a rule (stamped with a version above any ``held`` knows) or
        retires one, and applying exactly that gives the rules, in their storage order, that a
        full compile gives (``tests/test_rule_cache.py``). Anything else is compiled in full: a
        rule in force whose stamp is missing or not newer than ``held`` (written by something
        that did not stamp it, or backfilled), one ``held`` has already, or a count of rules in
        force that the changes do not explain (a retired rule put back by hand, say).
        """
        community = held.community
        changed = community_store.rules_changed_since(session, community, held.version)
        added = [row for row in changed if row.retired_at is None]
        plain = all(
            row.created_version is not None and row.created_version > held.version and not held.holds(row.id)
            for row in added
        )
        if plain:
            fresh = held.with_changes(
                version,
                in_force=[_rule(community, row) for row in added],
                retired=[row.id for row in changed if row.retired_at is not None],
            )
            if len(fresh.rules) == community_store.count_rules_in_force(session, community):
                metrics.RULE_CACHE_COMPILES.labels("changes").inc()
                return fresh
        return self.compile_in_full(session, community, version)

    def clear(self) -> None:
        self._compiled.clear()
