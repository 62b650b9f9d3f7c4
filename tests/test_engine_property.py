"""The decision engine held against a small reference evaluator written from the contract.

The reference below reads policies/vocabulary.toml itself and walks ``parent`` links by hand;
it shares no code with ``Hierarchy`` or ``CompiledRules``, so agreement on random worlds is
evidence that the engine's bucketing and ordering say what the contract says:

    1. a matching deny rule of one of the subject's communities    -> deny community_rule
    2. no one in-force consent covering purpose, categories, requester -> deny no_consent
    3. a matching require_approval rule without a usable approval   -> deny approval_required,
       or, when approvals cover it but every one is on hold:
         some covering approval's requester owes an overdue duty     -> deny duty_overdue
         otherwise (each one's agreement is past its review date)    -> deny agreement_review_overdue
    4. otherwise                                                    -> permit consent, with the
                                                                       matching rules' obligations
                                                                       and the deployment's

and the deployment policy, read from policies/deployment.toml by hand: a protected purpose it
does not allow is covered by no consent; every permit carries its default obligations, and the
obligations of each sensitive category requested unless the purpose descends from an exempt one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from consent_service.core.engine import (
    AccessRequest,
    ApprovalTerms,
    ConsentTerms,
    DecisionEngine,
    DutyTerms,
    Verdict,
)
from consent_service.core.policy import PolicyBase, Rule
from consent_service.core.wire import RuleEffect

POLICIES = Path(__file__).resolve().parents[1] / "policies"
NOW = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
WILDCARD = "*"

# -- the reference evaluator ----------------------------------------------------------------

with (POLICIES / "vocabulary.toml").open("rb") as _fh:
    _VOCABULARY = tomllib.load(_fh)
PURPOSE_PARENT = {code: term.get("parent") for code, term in _VOCABULARY["purposes"].items()}
CATEGORY_PARENT = {code: term.get("parent") for code, term in _VOCABULARY["data_categories"].items()}
with (POLICIES / "deployment.toml").open("rb") as _fh:
    _DEPLOYMENT = tomllib.load(_fh)
NEVER = {code for code, entry in _DEPLOYMENT["protected_purposes"].items() if not entry.get("allowed")}


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
    return (
        (WILDCARD in rule.requesters or request.requester in rule.requesters)
        and any(overlap(PURPOSE_PARENT, p, request.purpose) for p in rule.purposes)
        and any(
            c == WILDCARD or overlap(CATEGORY_PARENT, c, wanted)
            for c in rule.data_categories
            for wanted in request.data_categories
        )
    )


def grants(terms: ConsentTerms | ApprovalTerms, request: AccessRequest) -> bool:
    """Purpose covered, and every requested category covered, by this one grant."""
    return (
        in_force(terms)
        and covers(PURPOSE_PARENT, terms.purposes, request.purpose)
        and all(covers(CATEGORY_PARENT, terms.data_categories, c) for c in request.data_categories)
    )


def owes_overdue_duty(approval: ApprovalTerms) -> bool:
    return any(not duty.due_at > NOW for duty in approval.duties)


def review_passed(approval: ApprovalTerms) -> bool:
    return approval.review_at is not None and not approval.review_at > NOW


def approval_state(approvals: tuple[ApprovalTerms, ...], community: str, request: AccessRequest) -> str:
    """``met``, or the reason code for a require_approval rule of ``community``."""
    usable = [
        a
        for a in approvals
        if a.community == community and a.requester == request.requester and grants(a, request)
    ]
    if not usable:
        return "approval_required"
    if any(not owes_overdue_duty(a) and not review_passed(a) for a in usable):
        return "met"
    if any(owes_overdue_duty(a) for a in usable):
        return "duty_overdue"
    return "agreement_review_overdue"


def deployment_obligations(request: AccessRequest) -> frozenset[tuple[str, str]]:
    """("deployment" or "deployment:<category>", code) of what the deployment adds to a permit."""
    found = {("deployment", code) for code in _DEPLOYMENT["default_obligations"]}
    for entry in _DEPLOYMENT.get("category_obligations", []):
        exempt = any(code in lineage(PURPOSE_PARENT, request.purpose) for code in entry["except_purposes"])
        if entry["category"] in request.data_categories and not exempt:
            found |= {
                (f"deployment:{entry['category']}", name)
                for name, value in entry["obligations"].items()
                if value is True
            }
    return frozenset(found)


def obligation_codes(rule: Rule) -> set[str]:
    """Flags set to true are listed, and ``retention_days`` (its value is the number of days)."""
    codes = {name for name, value in rule.obligations.items() if value is True or name == "retention_days"}
    return codes | ({"local_contexts"} if rule.labels else set())


@dataclass(frozen=True)
class Summary:
    """What the comparison looks at; order of reasons and obligations is not compared."""

    outcome: str
    codes: frozenset[str]
    rules: frozenset[tuple[str, str, str]]  # (rule_id, community, reason code) named in reasons
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
    denies = frozenset((r.id, r.community, "community_rule") for r in matching if r.effect == RuleEffect.DENY)
    if denies:
        return Summary("deny", frozenset({"community_rule"}), denies, frozenset()), []

    covering = [
        c
        for c in world.consents
        if request.requester in c.recipients and grants(c, request) and request.purpose not in NEVER
    ]
    if not covering:
        return Summary("deny", frozenset({"no_consent"}), frozenset(), frozenset()), []

    conditional = [r for r in matching if r.effect == RuleEffect.REQUIRE_APPROVAL]
    unmet = frozenset(
        (r.id, r.community, code)
        for r in conditional
        if (code := approval_state(world.approvals, r.community, request)) != "met"
    )
    if unmet:
        return Summary("deny", frozenset(code for _, _, code in unmet), unmet, frozenset()), covering
    obligations = frozenset((r.id, code) for r in conditional for code in obligation_codes(r))
    obligations |= deployment_obligations(request)
    return Summary("permit", frozenset({"consent"}), frozenset(), obligations), covering


# -- the engine, and what is compared -------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> PolicyBase:
    return PolicyBase(POLICIES)


def run(base: PolicyBase, world: World) -> Verdict:
    compiled = [
        base.compile_rules(name, 1, [r for r in world.rules if r.community == name])
        for name in world.communities
    ]
    return DecisionEngine(base).decide(
        request=world.request,
        consents=world.consents,
        communities=compiled,
        approvals=world.approvals,
        now=NOW,
    )


def summarise(verdict: Verdict) -> Summary:
    return Summary(
        str(verdict.outcome),
        frozenset(str(r.code) for r in verdict.reasons),
        frozenset((r.rule_id, r.community, str(r.code)) for r in verdict.reasons if r.rule_id is not None),
        frozenset((obligation_source(o), o["code"]) for o in verdict.obligations),
    )


def obligation_source(item: dict[str, Any]) -> str:
    """A rule's id, or "deployment" / "deployment:<category>" for the deployment policy's."""
    if "rule_id" in item:
        return str(item["rule_id"])
    return ":".join(filter(None, (item["source"], item.get("category"))))


# -- random worlds --------------------------------------------------------------------------
# A world draws its codes from a small palette of real ones (a parent with its children, plus
# one code from anywhere) so that covering and overlapping decide often, and many of its
# consents and approvals are "tailored": they name at least the requested codes and the
# requester, so that every step of the decision is reached. Sets of codes are drawn as one
# integer each (see ``subset``) from strategies built once: generation stays cheap, and
# shrinks toward single codes.

ORGS = ("outreach-org", "gla", "univ")
CANARY = "canary-org"
COMMUNITIES = ("nation-a", "nation-b", "nation-c")
Codes = tuple[str, ...]
Draw = Callable[[st.SearchStrategy[Any]], Any]

SUBSET = st.integers(0, 30)
INDEX = st.integers(0, 4)
COUNT = st.integers(0, 3)
ORG = st.sampled_from(ORGS)
EXPIRY = st.sampled_from((None, None, None, NOW - timedelta(days=1), NOW, NOW + timedelta(days=1)))
ACTIVE = st.sampled_from((True, True, True, True, False))
REVIEW = st.sampled_from((None, None, None, NOW - timedelta(days=1), NOW, NOW + timedelta(days=30)))
DUE = st.sampled_from((NOW - timedelta(days=2), NOW, NOW + timedelta(days=1), NOW + timedelta(days=60)))
DUTY_KIND = st.sampled_from(("return_results", "progress_report", "destroy_data"))
EFFECT = st.sampled_from((RuleEffect.DENY, RuleEffect.REQUIRE_APPROVAL, RuleEffect.REQUIRE_APPROVAL))
WILD = st.sampled_from((False, False, True))
OBLIGATIONS = st.sampled_from(
    ({}, {"aggregate_only": True, "min_cell_size": 10}, {"no_linkage": True, "retention_days": 30})
)
LABELS = st.sampled_from(((), ("TK Attribution",)))


def subset(pool: Codes, number: int) -> Codes:
    """The non-empty subset of ``pool`` numbered ``number`` (0 is the first element alone)."""
    bits = number % (2 ** len(pool) - 1) + 1
    return tuple(code for i, code in enumerate(pool) if bits >> i & 1)


def pick(pool: Codes, index: int) -> str:
    return pool[index % len(pool)]


def union(*groups: Codes) -> Codes:
    return tuple(dict.fromkeys(code for group in groups for code in group))


def palette(parents: dict[str, str | None]) -> st.SearchStrategy[Codes]:
    families = [
        (code, *sorted(c for c, p in parents.items() if p == code))
        for code in sorted(parents)
        if code in parents.values()
    ]
    return st.tuples(st.sampled_from(families), st.sampled_from(sorted(parents))).map(
        lambda drawn: union(drawn[0], drawn[1:])
    )


@dataclass(frozen=True)
class Palette:
    purposes: Codes
    categories: Codes


PALETTE = st.builds(Palette, palette(PURPOSE_PARENT), palette(CATEGORY_PARENT))


def draw_rule(
    draw: Draw, rule_id: str, codes: Palette, communities: Codes, effect: RuleEffect | None = None
) -> Rule:
    return Rule(
        id=rule_id,
        community=pick(communities, draw(INDEX)),
        effect=effect or draw(EFFECT),
        purposes=subset(codes.purposes, draw(SUBSET)),
        data_categories=(WILDCARD,) if draw(WILD) else subset(codes.categories, draw(SUBSET)),
        requesters=(WILDCARD,) if draw(WILD) else subset((*ORGS, CANARY), draw(SUBSET)),
        obligations=draw(OBLIGATIONS),
        labels=draw(LABELS),
    )


def draw_grant(draw: Draw, codes: Palette, request: AccessRequest | None) -> tuple[Codes, Codes]:
    """Purposes and categories of a consent or approval; ``request`` given: tailored to it."""
    purposes, categories = subset(codes.purposes, draw(SUBSET)), subset(codes.categories, draw(SUBSET))
    if request is None:
        return purposes, categories
    return union(purposes, (request.purpose,)), union(categories, request.data_categories)


def draw_consent(draw: Draw, consent_id: str, codes: Palette, request: AccessRequest) -> ConsentTerms:
    tailored = draw(st.booleans())
    recipients = subset(ORGS, draw(SUBSET))
    return ConsentTerms(
        consent_id,
        1,
        *draw_grant(draw, codes, request if tailored else None),
        recipients=union(recipients, (request.requester,)) if tailored else recipients,
        expires_at=draw(EXPIRY),
        active=draw(ACTIVE),
        recorded_at=NOW - timedelta(days=draw(st.integers(1, 3))),
    )


def draw_duties(draw: Draw, approval_id: str) -> tuple[DutyTerms, ...]:
    """Most approvals owe nothing; some owe one or two duties, due before, at or after NOW."""
    count = draw(st.sampled_from((0, 0, 0, 1, 2)))
    return tuple(
        DutyTerms(f"{approval_id}-duty-{i}", draw(DUTY_KIND), f"duty {i} of {approval_id}", draw(DUE))
        for i in range(count)
    )


def draw_approval(
    draw: Draw, approval_id: str, codes: Palette, request: AccessRequest, rules: tuple[Rule, ...]
) -> ApprovalTerms:
    """Two in three are tailored, and come from a community that has a rule."""
    if draw(st.sampled_from((False, True, True))):
        community = pick(union(tuple(r.community for r in rules)) or COMMUNITIES, draw(INDEX))
        return ApprovalTerms(
            approval_id,
            community,
            request.requester,
            *draw_grant(draw, codes, request),
            expires_at=draw(EXPIRY),
            active=draw(ACTIVE),
            review_at=draw(REVIEW),
            duties=draw_duties(draw, approval_id),
        )
    return ApprovalTerms(
        approval_id,
        pick(COMMUNITIES, draw(INDEX)),
        draw(ORG),
        *draw_grant(draw, codes, None),
        expires_at=draw(EXPIRY),
        active=draw(ACTIVE),
        review_at=draw(REVIEW),
        duties=draw_duties(draw, approval_id),
    )


@st.composite
def worlds(draw: Draw) -> World:
    codes: Palette = draw(PALETTE)
    communities = subset(COMMUNITIES, draw(SUBSET))
    request = AccessRequest(
        requester=draw(ORG),
        purpose=pick(codes.purposes, draw(INDEX)),
        data_categories=union((pick(codes.categories, draw(INDEX)), pick(codes.categories, draw(INDEX)))),
    )
    rules = tuple(draw_rule(draw, f"rule-{i}", codes, communities) for i in range(draw(COUNT)))
    return World(
        request=request,
        communities=communities,
        consents=tuple(
            draw_consent(draw, f"consent-{i}", codes, request) for i in range(1 + draw(st.integers(0, 2)))
        ),
        rules=rules,
        approvals=tuple(
            draw_approval(draw, f"approval-{i}", codes, request, rules) for i in range(draw(COUNT))
        ),
        codes=codes,
    )


def shuffled(world: World, data: st.DataObject) -> World:
    return replace(
        world,
        consents=tuple(data.draw(st.permutations(world.consents))),
        rules=tuple(data.draw(st.permutations(world.rules))),
        approvals=tuple(data.draw(st.permutations(world.approvals))),
    )


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(world=worlds())
def test_engine_agrees_with_reference(base, world):
    verdict = run(base, world)
    expected, covering = reference(world)
    event(f"{expected.outcome}: {sorted(expected.codes)[0]}")

    assert summarise(verdict) == expected
    if verdict.permitted:
        assert verdict.consent in covering
        assert verdict.reasons[0].consent_id == verdict.consent.consent_id
        assert verdict.consent.recorded_at == max(c.recorded_at for c in covering)
    for reason in verdict.reasons:
        if str(reason.code) == "duty_overdue":  # the requester is told which of its duties, and when due
            duty = min(
                (
                    d
                    for a in world.approvals
                    if a.community == reason.community
                    and a.requester == world.request.requester
                    and grants(a, world.request)
                    for d in a.duties
                    if d.due_at <= NOW
                ),
                key=lambda d: (d.due_at, d.id),
            )
            assert duty.kind in reason.message and duty.description in reason.message
            assert duty.due_at.strftime("%Y-%m-%d") in reason.message


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds(), data=st.data())
def test_order_of_consents_rules_and_approvals_does_not_matter(base, world, data):
    before, after = run(base, world), run(base, shuffled(world, data))
    assert summarise(after) == summarise(before)
    assert after.consent == before.consent


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds(), data=st.data())
def test_adding_a_deny_rule_never_permits_more(base, world, data):
    extra = draw_rule(data.draw, "rule-extra", world.codes, world.communities, RuleEffect.DENY)
    after = run(base, replace(world, rules=(*world.rules, extra)))
    assert not after.permitted or run(base, world).permitted


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds(), data=st.data())
def test_revoking_a_consent_never_permits_more(base, world, data):
    index = data.draw(st.integers(0, len(world.consents) - 1))
    revoked = list(world.consents)
    revoked[index] = replace(revoked[index], active=False)
    after = run(base, replace(world, consents=tuple(revoked)))
    assert not after.permitted or run(base, world).permitted
    assert after.consent is None or after.consent.consent_id != world.consents[index].consent_id


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds(), data=st.data())
def test_an_overdue_duty_or_review_never_permits_more(base, world, data):
    if not world.approvals:
        return
    index = data.draw(st.integers(0, len(world.approvals) - 1))
    held = list(world.approvals)
    if data.draw(st.booleans()):
        duty = DutyTerms("late", "return_results", "late results", NOW - timedelta(days=1))
        held[index] = replace(held[index], duties=(*held[index].duties, duty))
    else:
        held[index] = replace(held[index], review_at=NOW - timedelta(days=1))
    after = run(base, replace(world, approvals=tuple(held)))
    assert not after.permitted or run(base, world).permitted


@settings(max_examples=300, derandomize=True, deadline=None)
@given(world=worlds())
def test_a_requester_no_consent_names_is_never_permitted(base, world):
    canary = replace(world, request=replace(world.request, requester=CANARY))
    assert not run(base, canary).permitted
