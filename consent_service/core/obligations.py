"""Obligations a community rule may attach to what it allows, and how they are returned.

A rule stores them as a small object (``{"aggregate_only": true, "min_cell_size": 10}``);
a permit returns each as ``{"code": ..., <parameters>, "rule_id", "community"}`` so the
recipient can tell which community asked for what. The deployment policy's obligations
(policies/deployment.toml) come as ``{"code": ..., <parameters>, "source": "deployment"}``,
with ``"category"`` when a sensitive category brought them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# name -> the parameters it may carry (name: type); a boolean flag carries none.
KNOWN: dict[str, dict[str, type]] = {
    "aggregate_only": {"min_cell_size": int},
    "no_onward_disclosure": {},
    "purpose_limited": {},
    "no_linkage": {},
    "return_results_to_community": {},
    "community_review_before_publication": {},
    "attribution_required": {},
    "retention_days": {},  # its value is the number of days
}
PARAMETERS = {param for params in KNOWN.values() for param in params}
LOCAL_CONTEXTS = "local_contexts"


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def problems(obligations: Mapping[str, Any]) -> list[str]:
    """What is wrong with a rule's (or the deployment policy's) obligations, judged against ``KNOWN``.

    A flag must be ``true`` (leave it out to not impose it); a parameter such as
    ``min_cell_size`` needs its obligation; ``retention_days`` is a number of days. Anything
    the engine would silently drop is refused here, so a community never believes it asked
    for something that will not travel with a permit.
    """
    found = []
    for name, value in obligations.items():
        owners = [owner for owner, params in KNOWN.items() if name in params]
        if name in PARAMETERS:
            if not positive_int(value):
                found.append(f"{name} must be a whole number of at least 1")
            if not any(obligations.get(owner) is True for owner in owners):
                found.append(f"{name} needs {' or '.join(owners)}: true")
        elif name == "retention_days":
            if not positive_int(value):
                found.append("retention_days must be a whole number of days, at least 1")
        elif name in KNOWN:
            if value is not True:
                found.append(f"{name} must be true (leave it out to not impose it)")
        else:
            found.append(f"unknown obligation: {name}")
    return found


def as_list(obligations: Mapping[str, Any], *, labels: tuple[str, ...] = (), rule_id: str | None = None,
            community: str | None = None, **source: str) -> list[dict[str, Any]]:
    """Turn a rule's stored obligations into the wire list, in a stable order.

    A rule's items name ``rule_id`` and ``community``; the deployment policy's name what
    ``source`` gives instead (``source="deployment"``, ``category=...``).
    """
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
        item.update({"rule_id": rule_id, "community": community} if rule_id is not None else source)
        out.append(item)
    if labels:
        out.append({"code": LOCAL_CONTEXTS, "labels": list(labels), "rule_id": rule_id,
                    "community": community})
    return out
