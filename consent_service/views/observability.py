"""What an operator watches: ``GET /metrics`` (Prometheus text, scope ``metrics:read``), a request
id on every answer, and one log line per answer.

``/metrics`` is outside ``/v1`` (where Prometheus looks for it) but behind the same bearer check:
a token of a client of the ``admin`` organization holding ``metrics:read`` (Prometheus gets one
itself with its ``oauth2`` client-credentials scrape setting, docs/deploy.md). No token or a bad
one is a 401, another scope a 403: the counts describe the whole deployment.

Every request gets a ``request_id`` (a proxy's ``X-Request-ID`` if it is a plain hex/uuid token,
else a fresh one), sent back in ``X-Request-ID`` and stamped on every log record of the request
(log_hygiene.RequestContext); authorize adds its ``decision_id`` (batch: ``batch_id``). The log
line of an answer names the route *template*, never the path (which can hold an id), nor the
query string, the client or the organization.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Blueprint, Flask, Response, g, request
from flask.typing import ResponseReturnValue

from consent_service.core.permissions import Scope
from consent_service.services import metrics
from consent_service.views.common import caller_with, services

blp = Blueprint("metrics", __name__)
log = logging.getLogger("consent_service.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_UPSTREAM_ID = re.compile(r"[0-9A-Fa-f-]{16,64}")


@blp.get("/metrics")
def scrape() -> ResponseReturnValue:
    """Prometheus text format: every worker's counters (multiprocess mode) and the audit chain's length."""
    caller = caller_with(Scope.METRICS_READ)
    body = metrics.exposition(services(), caller=caller)
    return Response(body, mimetype=None, content_type=metrics.CONTENT_TYPE)


def _started() -> None:
    g.request_started = time.perf_counter()
    upstream = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = upstream if _UPSTREAM_ID.fullmatch(upstream) else uuid.uuid4().hex


def _answered(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:  # a request refused before our first hook ran
        return response
    seconds = time.perf_counter() - started
    endpoint = request.url_rule.rule if request.url_rule is not None else None
    metrics.observe_request(endpoint, request.method, response.status_code, seconds)
    response.headers.setdefault(REQUEST_ID_HEADER, g.request_id)
    log.info(
        "answered",
        extra={
            "endpoint": endpoint or metrics.UNMATCHED,
            "method": request.method,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
        },
    )
    return response


def register(app: Flask) -> None:
    # First of all hooks, so that a refusal by a later one (the NUL check, a rate limit) is timed.
    app.before_request_funcs.setdefault(None, []).insert(0, _started)
    app.after_request(_answered)
    app.register_blueprint(blp)
