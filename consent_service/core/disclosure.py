"""What a decision's reader may be told: the one place that turns a recorded decision into the
answer its requester sees (docs/security.md, "membership disclosure").

A decision is recorded with its true reasons (the decision row and its audit entry keep them).
The requester is told less when the truth would reveal that the person belongs to a community:

* a requester that no consent in force of the subject names as a recipient is told exactly
  what it would be told about a person the service has never heard of: ``deny`` with the single
  reason ``no_consent`` (the very message the engine writes for an unknown subject), no
  obligations, no rule ids, no policy versions. Its answer and an unknown subject's answer are
  byte-identical apart from ``decision_id`` and ``receipt``;
* a requester that some consent names is told the community rules that decided (``rule_id``
  and the rule's reason); the community's id appears only for a community that chose to show
  it (``community.show_community_id``, default not shown), in reasons, permit obligations and
  the policy versions of the receipt and the decision lookup alike.

Messages never name a community (the engine and the batch gate write them without), so
withholding the id is removing one field. The cost on the decision path is a scan of the
subject's few consents, already read in the decision's snapshot, and a set lookup per reason.

Single authorize, batch authorize, the signed decision receipt, ``GET /v1/decisions/{id}``
for the requester and the FHIR export all go through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent_service.core.engine import AccessRequest, ConsentTerms, no_consent

# The fields of a decision a requester is told, as stored (``decision_record.decision_values``).
TOLD_FIELDS = ("outcome", "reasons", "obligations", "rule_ids", "policy_versions")


@dataclass(frozen=True)
class Audience:
    """Who reads a decision about one subject: is it named by a consent in force, and which of
    the subject's communities show their id."""

    named: bool
    shown: frozenset[str] = frozenset()

    def community_visible(self, community: str | None) -> bool:
        return self.named and community is not None and community in self.shown


NOBODY = Audience(named=False)


def named_by(consents: Iterable[ConsentTerms], *, requester: str, now: datetime) -> bool:
    """Does some consent in force of the subject name ``requester`` as a recipient?"""
    return any(requester in consent.recipients and consent.in_force(now) for consent in consents)


def audience(
    consents: Iterable[ConsentTerms],
    *,
    requester: str,
    now: datetime,
    communities: Iterable[str],
    showing: frozenset[str],
) -> Audience:
    """The requester as the reader of a decision about a subject with these consents and
    communities (``showing``: every community that shows its id, as read in the snapshot)."""
    if not named_by(consents, requester=requester, now=now):
        return NOBODY
    return Audience(named=True, shown=frozenset(c for c in communities if c in showing))


def _without_community(item: Mapping[str, Any], audience: Audience) -> dict[str, Any]:
    if "community" in item and not audience.community_visible(item["community"]):
        return {key: value for key, value in item.items() if key != "community"}
    return dict(item)


def told(recorded: Mapping[str, Any], *, request: AccessRequest, audience: Audience) -> dict[str, Any]:
    """The fields of ``TOLD_FIELDS`` as the requester may see them, from the recorded values."""
    if not audience.named:
        if recorded["outcome"] != "deny":  # a permit always comes from a consent naming the requester
            raise RuntimeError("a permit for a requester no consent names")
        return {
            "outcome": "deny",
            "reasons": [no_consent(request).as_dict()],
            "obligations": [],
            "rule_ids": [],
            "policy_versions": {},
        }
    return {
        "outcome": recorded["outcome"],
        "reasons": [_without_community(r, audience) for r in recorded["reasons"]],
        "obligations": [_without_community(o, audience) for o in recorded["obligations"]],
        "rule_ids": list(recorded["rule_ids"]),
        "policy_versions": {
            c: v for c, v in recorded["policy_versions"].items() if audience.community_visible(c)
        },
    }


def difference(recorded: Mapping[str, Any], view: Mapping[str, Any]) -> dict[str, Any] | None:
    """``view`` when it differs from what is recorded (stored as ``decision.told``), else None."""
    return None if all(recorded[name] == view[name] for name in TOLD_FIELDS) else dict(view)


def as_told(recorded: Mapping[str, Any], told_values: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A recorded decision (row values) with what its requester was told in place of the truth
    (``recorded`` itself when the two are the same: the caller must not change it)."""
    return {**recorded, **told_values} if told_values else recorded


def visible_rules(rules: Iterable[Any], *, audience: Audience) -> list[tuple[Any, bool]]:
    """Community rules a reader may be shown (FHIR), each with whether its community's id may be."""
    if not audience.named:
        return []
    return [(rule, audience.community_visible(rule.community_id)) for rule in rules]
