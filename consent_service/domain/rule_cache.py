"""Each worker's compiled community rules, kept fresh by the community's policy version.

Zero staleness: the decision reads ``(community, policy_version)`` in its own snapshot and
rebuilds a community whose cached version differs, from rules read in that same snapshot.
No time-based expiry anywhere. A rebuild is built aside and swapped in with one dict store,
so concurrent decisions keep using the old compiled rules until the new ones are ready.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..storage import communities as community_store
from .policy import CompiledRules, PolicyBase, Rule
from .wire import RuleEffect


class RuleCache:
    def __init__(self, policy: PolicyBase, *, testing_only_ignore_versions: bool = False) -> None:
        self.policy = policy
        self._compiled: dict[str, CompiledRules] = {}
        # A deliberately broken cache (setting TESTING_ONLY_STALE_RULE_CACHE): it keeps the rules
        # it compiled first whatever the policy version says, so bench/stale_check.py can show that
        # its check does catch stale permits. Never set it in a deployment.
        self._ignore_versions = testing_only_ignore_versions

    def compiled(self, session: Session, community: str, version: int) -> CompiledRules:
        cached = self._compiled.get(community)
        if cached is not None and (cached.version == version or self._ignore_versions):
            return cached
        rules = [Rule(id=row.id, community=row.community_id, effect=RuleEffect(row.effect),
                      purposes=tuple(row.purposes), data_categories=tuple(row.data_categories),
                      requesters=tuple(row.requesters), obligations=dict(row.obligations),
                      labels=tuple(row.labels), reason=row.reason)
                 for row in community_store.active_rules(session, community)]
        fresh = self.policy.compile_rules(community, version, rules)
        self._compiled[community] = fresh
        return fresh

    def clear(self) -> None:
        self._compiled.clear()
