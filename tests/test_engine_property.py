"""The decision engine held against a small reference evaluator written from the contract.

The reference below reads policies/vocabulary.toml itself and walks ``parent`` links by hand;
it shares no code with ``Hierarchy`` or ``CompiledRules``, so agreement on random worlds is
evidence that the engine's bucketing and ordering say what the contract says:

    1. a matching deny rule of any of the subject's communities   -> deny community_rule
    2. no in-force consent covering purpose, every category, requester -> deny no_consent
    3. a matching require_approval rule without a usable approval  -> deny approval_required
    4. otherwise permit (consent), with every matching rule's obligations
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from consent_service.domain.engine import (
    AccessRequest,
    ApprovalTerms,
    ConsentTerms,
    DecisionEngine,
    Verdict,
)
from consent_service.domain.policy import PolicyBase, Rule
from consent_service.domain.wire import RuleEffect

POLICIES = Path(__file__).resolve().parents[1] / "policies"
NOW = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
WILDCARD = "*"

# -- the reference evaluator ----------------------------------------------------------------

with (POLICIES / "vocabulary.toml").open("rb") as _fh:
    _VOCABULARY = tomllib.load(_fh)
PURPOSE_PARENT = {code: term.get("parent") for code, term in _VOCABULARY["purposes"].items()}
CATEGORY_PARENT = {code: term.get("parent") for code, term in _VOCABULARY["data_categories"].items()}


def lineage(parents: dict[str, str | None], code: str) -> set[str]:
    """``code`` and every code above it."""
    found: set[str] = set()
    current: str | None = code
    while current is not None and current not in found:
        found.add(current)
        current = parents.get(current)
    return found


def covers(parents: dict[str, str | None], granted: tuple[str, ...], requested: str) -> bool:
    """A grant covers a code when it names that code or an ancestor of it."""
    return any(code in lineage(parents, requested) for code in granted)


def overlap(parents: dict[str, str | None], a: str, b: str) -> bool:
    """Two codes overlap when one is the other or an ancestor of it."""
    return a in lineage(parents, b) or b in lineage(parents, a)


def in_force(terms: ConsentTerms | ApprovalTerms) -> bool:
    return terms.active and (terms.expires_at is None or terms.expires_at > NOW)


def rule_matches(rule: Rule, request: AccessRequest) -> bool:
    return ((WILDCARD in rule.requesters or request.requester in rule.requesters)
            and any(overlap(PURPOSE_PARENT, p, request.purpose) for p in rule.purposes)
            and any(c == WILDCARD or overlap(CATEGORY_PARENT, c, wanted)
                    for c in rule.data_categories for wanted in request.data_categories))


def grants(terms: ConsentTerms | ApprovalTerms, request: AccessRequest) -> bool:
    """Purpose covered, and every requested category covered, by this one grant."""
    return (in_force(terms) and covers(PURPOSE_PARENT, terms.purposes, request.purpose)
            and all(covers(CATEGORY_PARENT, terms.data_categories, c) for c in request.data_categories))


def obligation_codes(rule: Rule) -> set[str]:
    codes = {name for name, value in rule.obligations.items() if value is True}
    return codes | ({"local_contexts"} if rule.labels else set())


@dataclass(frozen=True)
class Summary:
    """What the comparison looks at; order of reasons and obligations is not compared."""

    outcome: str
    codes: frozenset[str]
    rules: frozenset[tuple[str, str]]  # (rule_id, community) named in reasons
    obligations: frozenset[tuple[str, str]]  # (rule_id, code)


@dataclass(frozen=True)
class World:
    request: AccessRequest
    communities: tuple[str, ...]  # the subject's communities
    consents: tuple[ConsentTerms, ...]
    rules: tuple[Rule, ...]
    approvals: tuple[ApprovalTerms, ...]
    codes: Palette  # the codes this world was drawn from


def reference(world: World) -> tuple[Summary, list[ConsentTerms]]:
    """The contract's decision, and the consents that would justify a permit."""
    request = world.request
    matching = [r for r in world.rules if r.community in world.communities and rule_matches(r, request)]
    denies = frozenset((r.id, r.community) for r in matching if r.effect == RuleEffect.DENY)
    if denies:
        return Summary("deny", frozenset({"community_rule"}), denies, frozenset()), []

    covering = [c for c in world.consents if request.requester in c.recipients and grants(c, request)]
    if not covering:
        return Summary("deny", frozenset({"no_consent"}), frozenset(), frozenset()), []

    conditional = [r for r in matching if r.effect == RuleEffect.REQUIRE_APPROVAL]
    unmet = frozenset(
        (r.id, r.community) for r in conditional
        if not any(a.community == r.community and a.requester == request.requester and grants(a, request)
                   for a in world.approvals))
    if unmet:
        return Summary("deny", frozenset({"approval_required"}), unmet, frozenset()), covering
    obligations = frozenset((r.id, code) for r in conditional for code in obligation_codes(r))
    return Summary("permit", frozenset({"consent"}), frozenset(), obligations), covering


# -- the engine, and what is compared -------------------------------------------------------

@pytest.fixture(scope="module")
def base() -> PolicyBase:
    return PolicyBase(POLICIES)


def run(base: PolicyBase, world: World) -> Verdict:
    compiled = [base.compile_rules(name, 1, [r for r in world.rules if r.community == name])
                for name in world.communities]
    return DecisionEngine(base).decide(request=world.request, consents=world.consents,
                                       communities=compiled, approvals=world.approvals, now=NOW)


def summarise(verdict: Verdict) -> Summary:
    return Summary(
        str(verdict.outcome),
        frozenset(str(r.code) for r in verdict.reasons),
        frozenset((r.rule_id, r.community) for r in verdict.reasons if r.rule_id is not None),
        frozenset((o["rule_id"], o["code"]) for o in verdict.obligations))


# -- random worlds --------------------------------------------------------------------------
# Each world uses a small palette of real codes (a parent with its children, plus one code
# from anywhere), so that covering and overlapping decide often, and a third of its consents
# and approvals are "tailored": they name at least the requested codes and the requester.
# Sets of codes are drawn as one integer each (see ``subset``): generation stays cheap and
# shrinks toward single codes.

ORGS = ("outreach-org", "gla", "univ")
CANARY = "canary-org"
COMMUNITIES = ("nation-a", "nation-b", "nation-c")
EXPIRIES = (None, None, NOW - timedelta(days=1), NOW, NOW + timedelta(days=1))
ACTIVE = (True, True, True, False)
EFFECTS = (RuleEffect.DENY, RuleEffect.REQUIRE_APPROVAL, RuleEffect.REQUIRE_APPROVAL)
WILD = (False, False, True)
OBLIGATIONS = ({}, {"aggregate_only": True, "min_cell_size": 10}, {"no_linkage": True, "retention_days": 30})
LABELS = ((), ("TK Attribution",))
Codes = tuple[str, ...]


def subset(pool: Codes, number: int) -> Codes:
    """The non-empty subset of ``pool`` numbered ``number`` (0 is the first element alone)."""
    bits = number % (2 ** len(pool) - 1) + 1
    return tuple(code for i, code in enumerate(pool) if bits >> i & 1)


def families(parents: dict[str, str | None]) -> list[Codes]:
    """Each parent code with its children."""
    return [(code, *sorted(c for c, p in parents.items() if p == code))
            for code in sorted(parents) if code in parents.values()]


def palette(parents: dict[str, str | None]) -> st.SearchStrategy[Codes]:
    return st.tuples(st.sampled_from(families(parents)), st.sampled_from(sorted(parents))).map(
        lambda drawn: tuple(dict.fromkeys((*drawn[0], drawn[1]))))


@dataclass(frozen=True)
class Palette:
    purposes: Codes
    categories: Codes

    def rule(self, rule_id: str, communities: Codes, drawn: tuple) -> Rule:
        community, effect, purposes, any_category, categories, anyone, requesters, obligations, labels = drawn
        return Rule(
            id=rule_id, community=communities[community % len(communities)], effect=effect,
            purposes=subset(self.purposes, purposes),
            data_categories=(WILDCARD,) if any_category else subset(self.categories, categories),
            requesters=(WILDCARD,) if anyone else subset((*ORGS, CANARY), requesters),
            obligations=obligations, labels=labels)


SUBSET = st.integers(0, 30)
palettes = st.builds(Palette, palette(PURPOSE_PARENT), palette(CATEGORY_PARENT))
TAILORED = (False, False, True)
consent_draws = st.tuples(st.sampled_from(TAILORED), SUBSET, SUBSET, SUBSET, st.sampled_from(EXPIRIES), st.sampled_from(ACTIVE),
                          st.integers(1, 3))
rule_draws = st.tuples(st.integers(0, 2), st.sampled_from(EFFECTS), SUBSET, st.sampled_from(WILD), SUBSET,
                       st.sampled_from(WILD), SUBSET, st.sampled_from(OBLIGATIONS), st.sampled_from(LABELS))
approval_draws = st.tuples(st.sampled_from(TAILORED), st.sampled_from(COMMUNITIES), st.sampled_from(ORGS), SUBSET, SUBSET,
                           st.sampled_from(EXPIRIES), st.sampled_from(ACTIVE))
request_draws = st.tuples(st.sampled_from(ORGS), st.integers(0, 4), st.integers(0, 4), st.integers(0, 4))


def build_world(codes: Palette, communities: int, consents: list[tuple], rules: list[tuple],
                approvals: list[tuple], request: tuple) -> World:
    member_of = subset(COMMUNITIES, communities)
    requester, purpose, *categories = request
    wanted = AccessRequest(
        requester=requester, purpose=codes.purposes[purpose % len(codes.purposes)],
        data_categories=tuple(dict.fromkeys(codes.categories[c % len(codes.categories)]
                                            for c in categories)))

    def with_request(tailored: bool, purposes: int, categories: int) -> tuple[Codes, Codes]:
        drawn = subset(codes.purposes, purposes), subset(codes.categories, categories)
        if not tailored:
            return drawn
        return (tuple(dict.fromkeys((*drawn[0], wanted.purpose))),
                tuple(dict.fromkeys(drawn[1] + wanted.data_categories)))

    def consent(i: int, tailored: bool, purposes: int, categories: int, recipients: int,
                expires_at: datetime | None, active: bool, days_ago: int) -> ConsentTerms:
        recipients_ = subset(ORGS, recipients)
        return ConsentTerms(
            f"consent-{i}", 1, *with_request(tailored, purposes, categories),
            tuple(dict.fromkeys((*recipients_, requester))) if tailored else recipients_,
            expires_at, active, NOW - timedelta(days=days_ago))

    def approval(i: int, tailored: bool, community: str, grantee: str, purposes: int, categories: int,
                 expires_at: datetime | None, active: bool) -> ApprovalTerms:
        return ApprovalTerms(f"approval-{i}", community, requester if tailored else grantee,
                             *with_request(tailored, purposes, categories), expires_at, active)

    return World(
        request=wanted, communities=member_of,
        consents=tuple(consent(i, *drawn) for i, drawn in enumerate(consents)),
        rules=tuple(codes.rule(f"rule-{i}", member_of, drawn) for i, drawn in enumerate(rules)),
        approvals=tuple(approval(i, *drawn) for i, drawn in enumerate(approvals)),
        codes=codes)


worlds = st.builds(build_world, palettes, st.integers(0, 6), st.lists(consent_draws, max_size=3),
                   st.lists(rule_draws, max_size=3), st.lists(approval_draws, max_size=3), request_draws)


def shuffled(world: World, data: st.DataObject) -> World:
    return replace(world, consents=tuple(data.draw(st.permutations(world.consents))),
                   rules=tuple(data.draw(st.permutations(world.rules))),
                   approvals=tuple(data.draw(st.permutations(world.approvals))))


# -- properties -----------------------------------------------------------------------------

@settings(max_examples=1500, derandomize=True, deadline=None)
@given(world=worlds)
def test_engine_agrees_with_reference(base, world):
    verdict = run(base, world)
    expected, covering = reference(world)
    event(f"{expected.outcome}: {sorted(expected.codes)[0]}")

    assert summarise(verdict) == expected
    if verdict.permitted:
        assert verdict.consent in covering
        assert verdict.reasons[0].consent_id == verdict.consent.consent_id
        assert verdict.consent.recorded_at == max(c.recorded_at for c in covering)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds, data=st.data())
def test_order_of_consents_rules_and_approvals_does_not_matter(base, world, data):
    before, after = run(base, world), run(base, shuffled(world, data))
    assert summarise(after) == summarise(before)
    assert after.consent == before.consent


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds, data=st.data())
def test_adding_a_deny_rule_never_permits_more(base, world, data):
    extra = replace(world.codes.rule("rule-extra", world.communities, data.draw(rule_draws)),
                    effect=RuleEffect.DENY)
    after = run(base, replace(world, rules=(*world.rules, extra)))
    assert not after.permitted or run(base, world).permitted


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds, data=st.data())
def test_revoking_a_consent_never_permits_more(base, world, data):
    if not world.consents:
        return
    index = data.draw(st.integers(0, len(world.consents) - 1))
    revoked = list(world.consents)
    revoked[index] = replace(revoked[index], active=False)
    after = run(base, replace(world, consents=tuple(revoked)))
    assert not after.permitted or run(base, world).permitted
    assert after.consent is None or after.consent.consent_id != world.consents[index].consent_id


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds)
def test_a_requester_no_consent_names_is_never_permitted(base, world):
    canary = replace(world, request=replace(world.request, requester=CANARY))
    assert not run(base, canary).permitted
