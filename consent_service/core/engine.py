"""The decision engine: the contract's decision order as named steps, deny overriding.

Pure: it is handed the subject's consents, the compiled rules of the subject's communities
and the requester's approvals, all read from one snapshot, and ``now``. It does no I/O and
keeps no state, so it can be tested exhaustively and held against a reference evaluator.

Order (contract, "Decision"):
1. a matching community ``deny`` rule            -> deny ``community_rule``
2. no active, unexpired, covering consent         -> deny ``no_consent``
3. a matching ``require_approval`` rule unmet     -> deny ``approval_required``;
   or met only by approvals on hold:               -> deny ``duty_overdue`` (the requester owes
      the community an overdue duty, named) or ``agreement_review_overdue`` (the approval's
      data sharing agreement is past its review date)
4. otherwise                                      -> permit ``consent`` + every matching rule's obligations
                                                     + the deployment policy's obligations

A purpose the deployment policy protects and does not allow (policies/deployment.toml) is
covered by no consent, whatever was recorded before the policy existed. The deployment's
obligations depend only on the request's purpose and categories: they are built once per
distinct (purpose, categories) and the same tuple is shared by every permit of that shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consent_service.core import obligations as obligation_list
from consent_service.core.policy import CompiledRules, PolicyBase, Rule
from consent_service.core.wire import Outcome, ReasonCode, RuleEffect


@dataclass(frozen=True)
class AccessRequest:
    requester: str
    purpose: str
    data_categories: tuple[str, ...]


@dataclass(frozen=True)
class ConsentTerms:
    consent_id: str
    version: int
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    recipients: tuple[str, ...]
    expires_at: datetime | None
    active: bool
    recorded_at: datetime

    def in_force(self, now: datetime) -> bool:
        return self.active and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class DutyTerms:
    """A duty the requester owes the community under one of its agreements, not yet met."""

    id: str
    kind: str
    description: str
    due_at: datetime


@dataclass(frozen=True)
class ApprovalTerms:
    id: str
    community: str
    requester: str
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    expires_at: datetime | None
    active: bool
    review_at: datetime | None = None  # its agreement's review date (None: no agreement, or none set)
    duties: tuple[DutyTerms, ...] = ()  # unmet duties the requester owes this community

    def in_force(self, now: datetime) -> bool:
        return self.active and (self.expires_at is None or self.expires_at > now)

    def overdue_duty(self, now: datetime) -> DutyTerms | None:
        """The earliest unmet duty already due, or None."""
        overdue = [duty for duty in self.duties if duty.due_at <= now]
        return min(overdue, key=lambda duty: (duty.due_at, duty.id)) if overdue else None

    def review_overdue(self, now: datetime) -> bool:
        return self.review_at is not None and self.review_at <= now


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str
    consent_id: str | None = None
    rule_id: str | None = None
    community: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": str(self.code), "message": self.message}
        for name in ("consent_id", "rule_id", "community"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


# Messages never name a community: whether a requester may see the community's id is the
# community's choice, applied by core/disclosure.py to the ``community`` field alone.
DEFAULT_DENY = "A community rule does not allow this use of its members' data."
NEEDS_APPROVAL = "The community must approve this use first"


ON_HOLD = "The community's approval is on hold"


@dataclass(frozen=True)
class Hold:
    """Why a community's matching approvals do not satisfy its rule (None in its place: they do)."""

    code: ReasonCode
    message: str


NOT_APPROVED = Hold(ReasonCode.APPROVAL_REQUIRED, "")


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def duty_hold(duty: DutyTerms) -> Hold:
    """The requester's own duty is named to it: what, and when it was due."""
    return Hold(
        ReasonCode.DUTY_OVERDUE,
        f"{ON_HOLD} until a duty owed to it is met: "
        f"{duty.kind} ({duty.description}), due {_day(duty.due_at)}.",
    )


def review_hold(review_at: datetime) -> Hold:
    return Hold(
        ReasonCode.AGREEMENT_REVIEW_OVERDUE,
        f"{ON_HOLD}: its data sharing agreement was due for review on {_day(review_at)}.",
    )


def no_consent(request: AccessRequest) -> Reason:
    """The reason when no consent covers the request. It is also all that an unknown subject's
    answer says, and all that a requester no consent names is told (core/disclosure.py)."""
    return Reason(
        ReasonCode.NO_CONSENT,
        f"No active consent lets {request.requester} use "
        f"{', '.join(request.data_categories)} for {request.purpose}.",
    )


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[Reason, ...]
    obligations: tuple[dict[str, Any], ...] = ()
    consent: ConsentTerms | None = None
    rules: tuple[Rule, ...] = field(default=())

    @property
    def permitted(self) -> bool:
        return self.outcome is Outcome.PERMIT


_SHAPES_KEPT = 4096  # distinct (purpose, categories) whose deployment obligations are kept


class DecisionEngine:
    def __init__(self, base: PolicyBase) -> None:
        self.base = base
        self._refused = base.deployment.refused_purposes
        self._deployment_obligations: dict[tuple[str, tuple[str, ...]], tuple[dict[str, Any], ...]] = {}

    def deployment_obligations(self, request: AccessRequest) -> tuple[dict[str, Any], ...]:
        """The deployment policy's obligations for this request's shape (built once per shape)."""
        key = (request.purpose, request.data_categories)
        found = self._deployment_obligations.get(key)
        if found is None:
            if len(self._deployment_obligations) >= _SHAPES_KEPT:
                self._deployment_obligations.clear()
            found = self._deployment_obligations[key] = self.base.deployment.obligations_for(
                request.purpose, request.data_categories
            )
        return found

    def decide(
        self,
        *,
        request: AccessRequest,
        consents: Iterable[ConsentTerms],
        communities: Sequence[CompiledRules],
        approvals: Iterable[ApprovalTerms],
        now: datetime,
    ) -> Verdict:
        denying = self.community_denies(request, communities)
        if denying:
            return Verdict(
                Outcome.DENY,
                tuple(
                    Reason(
                        ReasonCode.COMMUNITY_RULE,
                        rule.reason or DEFAULT_DENY,
                        rule_id=rule.id,
                        community=rule.community,
                    )
                    for rule in denying
                ),
                rules=tuple(denying),
            )

        consent = self.covering_consent(request, consents, now)
        if consent is None:
            return Verdict(Outcome.DENY, (no_consent(request),))

        conditional = self.rules_of(RuleEffect.REQUIRE_APPROVAL, request, communities)
        in_force = [a for a in approvals if a.in_force(now)]
        # Whether an approval is met depends on the rule's community only: judge each community once.
        held: dict[str, Hold | None] = {}
        for rule in conditional:
            if rule.community not in held:
                held[rule.community] = self.hold(request, rule, in_force, now)
        unmet = [(rule, hold) for rule in conditional if (hold := held[rule.community]) is not None]
        if unmet:
            return Verdict(
                Outcome.DENY,
                tuple(
                    Reason(
                        hold.code,
                        hold.message
                        or (f"{NEEDS_APPROVAL}: {rule.reason}" if rule.reason else f"{NEEDS_APPROVAL}."),
                        rule_id=rule.id,
                        community=rule.community,
                    )
                    for rule, hold in unmet
                ),
                consent=consent,
                rules=tuple(rule for rule, _ in unmet),
            )

        return Verdict(
            Outcome.PERMIT,
            (
                Reason(
                    ReasonCode.CONSENT,
                    f"Consent {consent.consent_id} (version {consent.version}) covers this use.",
                    consent_id=consent.consent_id,
                ),
            ),
            obligations=self.obligations(request, conditional),
            consent=consent,
            rules=tuple(conditional),
        )

    # -- the steps -------------------------------------------------------------------------

    def obligations(self, request: AccessRequest, rules: Sequence[Rule]) -> tuple[dict[str, Any], ...]:
        """A permit's obligations: every matching rule's, then the deployment's. Without rules the
        deployment's shared tuple itself, so a cohort's permits share one value."""
        deployment = self.deployment_obligations(request)
        if not rules:
            return deployment
        return (
            tuple(
                item
                for rule in rules
                for item in obligation_list.as_list(
                    rule.obligations, labels=rule.labels, rule_id=rule.id, community=rule.community
                )
            )
            + deployment
        )

    def rules_of(
        self, effect: RuleEffect, request: AccessRequest, communities: Sequence[CompiledRules]
    ) -> list[Rule]:
        return [
            rule
            for compiled in communities
            for rule in compiled.matching(
                effect=effect,
                requester=request.requester,
                purpose=request.purpose,
                categories=request.data_categories,
            )
        ]

    def community_denies(self, request: AccessRequest, communities: Sequence[CompiledRules]) -> list[Rule]:
        return self.rules_of(RuleEffect.DENY, request, communities)

    def covering_consent(
        self, request: AccessRequest, consents: Iterable[ConsentTerms], now: datetime
    ) -> ConsentTerms | None:
        """The newest consent in force that covers purpose, every category, and the requester.

        None for a protected purpose the deployment does not allow, whatever the consents say.
        """
        if request.purpose in self._refused:
            return None
        best: ConsentTerms | None = None
        for consent in consents:
            if not (
                consent.in_force(now)
                and request.requester in consent.recipients
                and self.base.purposes.covers(consent.purposes, request.purpose)
                and all(
                    self.base.categories.covers(consent.data_categories, category)
                    for category in request.data_categories
                )
            ):
                continue
            if best is None or (consent.recorded_at, consent.consent_id) > (
                best.recorded_at,
                best.consent_id,
            ):
                best = consent
        return best

    def covering_approvals(
        self, request: AccessRequest, rule: Rule, approvals: Iterable[ApprovalTerms]
    ) -> list[ApprovalTerms]:
        return [
            approval
            for approval in approvals
            if approval.community == rule.community
            and approval.requester == request.requester
            and self.base.purposes.covers(approval.purposes, request.purpose)
            and all(
                self.base.categories.covers(approval.data_categories, category)
                for category in request.data_categories
            )
        ]

    def approved(self, request: AccessRequest, rule: Rule, approvals: Iterable[ApprovalTerms]) -> bool:
        """Some approval (in force: the caller's filter) covers the request for the rule's community."""
        return bool(self.covering_approvals(request, rule, approvals))

    def hold(
        self, request: AccessRequest, rule: Rule, approvals: Iterable[ApprovalTerms], now: datetime
    ) -> Hold | None:
        """None when an approval in force covers the request and is not on hold; else why not:
        no covering approval (``approval_required``), or every covering one is held by an overdue
        duty of the requester (named: the earliest) or, failing that, by its agreement's review."""
        covering = self.covering_approvals(request, rule, approvals)
        if not covering:
            return NOT_APPROVED
        duties: list[DutyTerms] = []
        reviews: list[datetime] = []
        for approval in covering:
            duty = approval.overdue_duty(now)
            if duty is not None:
                duties.append(duty)
            elif approval.review_overdue(now):
                reviews.append(approval.review_at)  # type: ignore[arg-type]
            else:
                return None
        if duties:
            return duty_hold(min(duties, key=lambda duty: (duty.due_at, duty.id)))
        return review_hold(min(reviews))
