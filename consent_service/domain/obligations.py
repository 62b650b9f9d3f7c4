"""Obligations a community rule may attach to what it allows, and how they are returned.

A rule stores them as a small object (``{"aggregate_only": true, "min_cell_size": 10}``);
a permit returns each as ``{"code": ..., <parameters>, "rule_id", "community"}`` so the
recipient can tell which community asked for what.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# name -> the parameters it may carry (name: type); a boolean flag carries none.
KNOWN: dict[str, dict[str, type]] = {
    "aggregate_only": {"min_cell_size": int},
    "no_onward_disclosure": {},
    "no_linkage": {},
    "return_results_to_community": {},
    "community_review_before_publication": {},
    "attribution_required": {},
    "retention_days": {},  # its value is the number of days
}
PARAMETERS = {param for params in KNOWN.values() for param in params}
LOCAL_CONTEXTS = "local_contexts"


def as_list(obligations: Mapping[str, Any], *, labels: tuple[str, ...] = (), rule_id: str,
            community: str) -> list[dict[str, Any]]:
    """Turn a rule's stored obligations into the wire list, in a stable order."""
    out: list[dict[str, Any]] = []
    for name in sorted(obligations):
        if name in PARAMETERS:
            continue
        value = obligations[name]
        if name == "retention_days":
            item: dict[str, Any] = {"code": name, "days": value}
        elif value is True:
            item = {"code": name}
            for param in KNOWN.get(name, {}):
                if param in obligations:
                    item[param] = obligations[param]
        else:
            continue
        item.update(rule_id=rule_id, community=community)
        out.append(item)
    if labels:
        out.append({"code": LOCAL_CONTEXTS, "labels": list(labels), "rule_id": rule_id,
                    "community": community})
    return out
