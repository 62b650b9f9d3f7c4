"""What an operator scrapes at ``GET /metrics`` (scope ``metrics:read``): Prometheus counters.

Decisions by outcome and reason code, requests and their latency per endpoint, 503 answers,
rule-cache hits and compiles, and the audit chain's length (read from the store at each scrape).

Cheap on the decision path: a counter increment per decision (a batch adds its counts once),
no per-subject, per-client or per-organization label. Every label takes its values from a
closed set (an outcome, a reason code of core/wire.py, a route *template* such as
``/v1/consents/<consent_id>``, a method, a status code), so the number of series is bounded
and no identifier ever reaches a label.

Several worker processes (gunicorn): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
writable by the workers *before* the service starts; each process then writes its counters
there and a scrape of any worker adds them all up (prometheus-client's multiprocess mode;
``consent-service serve`` empties the directory at start and forgets an exited worker's
live values). Without it, each process counts alone (one worker, or tests).
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from consent_service.core.caller import Caller
from consent_service.core.engine import Verdict
from consent_service.storage import audit as audit_store

if TYPE_CHECKING:  # the container imports the rule cache, which counts here
    from consent_service.container import Services

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "(unmatched)"  # a request no route matched: its path is never a label

DECISIONS = Counter(
    "consent_decisions",
    "Access decisions recorded, by outcome and first reason code (a batch counts each subject).",
    ["outcome", "reason"],
)
REQUESTS = Counter(
    "consent_http_requests",
    "HTTP answers, by route template, method and status.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "consent_http_request_duration_seconds",
    "Time to answer, by route template and method.",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
UNAVAILABLE = Counter(
    "consent_unavailable_answers",
    "503 answers (the store could not be reached: a decision is a deny), by route template.",
    ["endpoint"],
)
RULE_CACHE_HITS = Counter(
    "consent_rule_cache_hits", "Community rules served from a worker's compiled cache, unchanged."
)
RULE_CACHE_COMPILES = Counter(
    "consent_rule_cache_compiles",
    "Community rules compiled by a worker: in full, or by applying the changes since its copy.",
    ["kind"],
)


def count_decisions(verdicts: Iterable[Verdict]) -> None:
    """One increment per distinct (outcome, reason) of the answer."""
    tally = Tally((str(v.outcome.value), str(v.reasons[0].code) if v.reasons else "none") for v in verdicts)
    for (outcome, reason), n in tally.items():
        DECISIONS.labels(outcome, reason).inc(n)


def observe_request(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    route = endpoint or UNMATCHED
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)
    if status == 503:
        UNAVAILABLE.labels(route).inc()


class _AuditChain:
    """The chain's length, read from the store when scraped (the same for every worker)."""

    def __init__(self, services: Services, caller: Caller | None) -> None:
        self.services, self.caller = services, caller

    def collect(self) -> Iterator[Metric]:
        with self.services.reading(self.caller) as session:
            seq, _ = audit_store.head(session)
        gauge = GaugeMetricFamily("consent_audit_chain_length", "Entries in the tamper-evident audit chain.")
        gauge.add_metric([], seq)
        yield gauge


class _ThisProcess:
    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition(services: Services, *, caller: Caller | None) -> bytes:
    """The text format of every metric: all workers' counters (multiprocess) or this process's.

    The store is read first, inside ``caller``'s own check (a disabled client gets a 401).
    """
    registry = CollectorRegistry()
    chain = _AuditChain(services, caller)
    registry.register(chain)
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    return generate_latest(registry)


def reset_multiprocess_dir() -> None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` of a previous run's files (once, before workers start)."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))


def worker_exited(pid: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
