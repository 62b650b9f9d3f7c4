"""The decision alone: ``DecisionEngine.decide`` in process, with everything already fetched.

One community with ``rules`` rules (the benchmark world's mix), compiled once as a worker
holds it; a subject with twelve consents (ten random, two that cover the requests, so that
decisions reach every step) and the community's approvals; the request shapes of the load.
Each call is timed on its own (``perf_counter_ns``), so p99 includes the odd slow call (GC,
the noisy neighbour), as OPA's published figures do.

Also measured: ``compile_ms``, the cost of rebuilding that community after a change (read
rules aside), which the first decision after a change pays once.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from consent_service.config import DEFAULT_POLICIES_DIR
from consent_service.core.engine import AccessRequest, ApprovalTerms, ConsentTerms, DecisionEngine
from consent_service.core.policy import PolicyBase, Rule
from consent_service.core.wire import RuleEffect

from .datagen import EPOCH, REQUESTER, REQUESTS, Sizes, consent_rows, rule_rows


def _world(rules: int, seed: int) -> tuple[list[Rule], list[ConsentTerms], list[ApprovalTerms]]:
    _, rule_table, approval_table = rule_rows(Sizes(consents=0, subjects=1, rules=rules, communities=1), seed)
    parsed = [
        Rule(
            id=r[0],
            community=r[1],
            effect=RuleEffect(r[2]),
            purposes=tuple(json.loads(r[3])),
            data_categories=tuple(json.loads(r[4])),
            requesters=tuple(json.loads(r[5])),
            obligations=json.loads(r[6]),
            reason=r[8],
        )
        for r in rule_table
    ]
    consent_table, version_table = consent_rows(
        Sizes(consents=10, subjects=1, rules=0, communities=1), "bench", seed
    )
    consents = [
        ConsentTerms(
            consent_id=c[0],
            version=1,
            purposes=tuple(json.loads(v[2])),
            data_categories=tuple(json.loads(v[3])),
            recipients=tuple(json.loads(v[4])),
            expires_at=None,
            active=c[3] == "active",
            recorded_at=EPOCH,
        )
        for c, v in zip(consent_table, version_table, strict=True)
    ]
    # two broad consents, so requests get past the consent step and reach the approval step
    consents += [
        ConsentTerms(
            consent_id=f"broad-{n}",
            version=1,
            purposes=("research", "public-health", "service-planning"),
            data_categories=("health", "housing", "income", "demographic"),
            recipients=(REQUESTER,),
            expires_at=None,
            active=True,
            recorded_at=EPOCH,
        )
        for n in range(2)
    ]
    approvals = [
        ApprovalTerms(
            id=a[0],
            community=a[1],
            requester=a[2],
            purposes=tuple(json.loads(a[3])),
            data_categories=tuple(json.loads(a[4])),
            expires_at=None,
            active=True,
        )
        for a in approval_table
    ]
    return parsed, consents, approvals


def run(*, rules: int = 1000, calls: int = 20000, seed: int = 11, world_seed: int = 11) -> dict[str, Any]:
    """``world_seed`` fixes the rules and consents (the same in every round); ``seed`` the request order."""
    base = PolicyBase(DEFAULT_POLICIES_DIR)
    engine = DecisionEngine(base)
    parsed, consents, approvals = _world(rules, world_seed)
    compile_ms = []
    for _ in range(5):
        started = time.perf_counter()
        compiled = base.compile_rules("comm-000000", 1, parsed)
        compile_ms.append((time.perf_counter() - started) * 1000)
    communities = [compiled]
    rng = random.Random(seed)
    requests = [
        AccessRequest(requester=REQUESTER, purpose=purpose, data_categories=tuple(categories))
        for purpose, categories in REQUESTS
    ]
    now = datetime.now(UTC)
    for request in requests * 200:  # warm up
        engine.decide(
            request=request, consents=consents, communities=communities, approvals=approvals, now=now
        )
    order = [rng.choice(requests) for _ in range(calls)]
    timings = []
    outcomes: dict[str, int] = {}
    clock = time.perf_counter_ns
    for request in order:
        started = clock()
        verdict = engine.decide(
            request=request, consents=consents, communities=communities, approvals=approvals, now=now
        )
        timings.append(clock() - started)
        outcomes[str(verdict.outcome)] = outcomes.get(str(verdict.outcome), 0) + 1
    timings.sort()
    return {
        "engine_us_p50": round(timings[len(timings) // 2] / 1000, 1),
        "engine_us_p99": round(timings[int(len(timings) * 0.99)] / 1000, 1),
        "engine_us_mean": round(statistics.fmean(timings) / 1000, 1),
        "calls": calls,
        "rules_in_community": rules,
        "outcomes": outcomes,
        "compile_ms_median": round(statistics.median(compile_ms), 2),
    }
