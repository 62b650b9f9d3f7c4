"""Abuse limits (flask-limiter): whom a request is counted against, and the token endpoint's limits.

* Every request counts against one budget (``RATELIMIT_DEFAULT``, all endpoints together):
  its client's, when it carries a bearer token we signed, else its address's. The limiter
  runs before the ``/v1`` blueprints authenticate, so the key is taken from the token's
  verified claims (signature, issuer, audience, expiry; no database read, so a flood costs no
  queries); the full check, client still active, is the view's, and a bad token still
  answers 401 there.
* ``/oauth/token``: all requests per address (``RATELIMIT_TOKEN``), and failed ones per
  client id and per address (``RATELIMIT_TOKEN_FAILURES``): only answers >= 400 are counted,
  and once a key has used its budget even a correct request waits (otherwise the limit would
  not slow down guessing). Client ids are hashed into the key: the limiter logs keys, and a
  secret pasted into the client id field must not reach a log.
* ``/healthz`` and ``/readyz`` are exempt: a load balancer's probes must not be refused
  because another caller from the same address is throttled.

A key function never raises: an exception inside the limiter would make it give up on its
storage (and fall back to counting in memory); a request it cannot identify is counted by
address.

With ``RATELIMIT_STORAGE_URI=redis://...`` every instance shares the counters; if Redis
stops answering, each instance counts in its own memory until it returns (the limits hold
per instance; nothing is refused or let through because of the outage).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import time
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from consent_service.errors import Unauthorized
from consent_service.views.common import token_caller

LIMITER_EXTENSION = "consent_limiter"
TOKEN_ENDPOINT = "oauth.issue_token"
EXEMPT_ENDPOINTS = ("health.healthz", "health.readyz")


def _address() -> str:
    return get_remote_address() or "unknown"


def client_or_address() -> str:
    """Per client for a request with a valid bearer token, else per address."""
    try:
        if request.headers.get("Authorization", "")[:7].lower() == "bearer ":
            return f"client:{token_caller().client_id}"
    except Unauthorized:
        pass
    except Exception:  # never let the limiter see an exception (see the module's docstring)
        pass
    return f"addr:{_address()}"


def _token_request_client_id() -> str | None:
    """The client id a token request names (HTTP Basic or the form), unchecked."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        client_id, _, _ = decoded.partition(":")
        return unquote(client_id) or None
    if request.mimetype != "application/x-www-form-urlencoded":
        return None
    return request.form.get("client_id") or None


def token_client() -> str:
    """Failed token requests, counted per client id named (hashed), or per address if none."""
    try:
        client_id = _token_request_client_id()
    except Exception:  # a body over the limit, a broken form: the view will answer it
        client_id = None
    if client_id is None:
        return f"token-client:none:{_address()}"
    return "token-client:" + hashlib.sha256(client_id.encode("utf-8", "replace")).hexdigest()[:32]


def token_address() -> str:
    return f"token-addr:{_address()}"


def failed(response: Response) -> bool:
    """A token request that did not get a token (a 429 is the limit itself, not another failure)."""
    return response.status_code >= 400 and response.status_code != 429


def retry_after_seconds() -> int:
    """Whole seconds until the limit this request broke lets it through again (at least 1)."""
    limiter: Limiter | None = current_app.extensions.get(LIMITER_EXTENSION)
    current = limiter.current_limit if limiter is not None else None
    if current is None:
        return 1
    return max(1, math.ceil(current.reset_at - time.time()))


def _retry_after_as_in_body(response: Response) -> Response:
    """flask-limiter rewrites ``Retry-After`` (truncating); make it say what the body says."""
    if response.status_code == 429 and response.is_json:
        body: Any = response.get_json(silent=True)
        seconds = (body or {}).get("error", {}).get("details", {}).get("retry_after")
        if isinstance(seconds, int):
            response.headers["Retry-After"] = str(seconds)
    return response


def configure(app: Flask, settings: dict[str, Any]) -> None:
    """Flask-limiter's settings, from ours; call before ``limiter.init_app``."""
    app.config.update(
        RATELIMIT_ENABLED=settings["RATELIMIT_ENABLED"],
        RATELIMIT_STORAGE_URI=settings["RATELIMIT_STORAGE_URI"],
        RATELIMIT_APPLICATION=settings["RATELIMIT_DEFAULT"],
        RATELIMIT_KEY_PREFIX=settings["RATELIMIT_KEY_PREFIX"],
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
    )


def apply(app: Flask, limiter: Limiter, settings: dict[str, Any]) -> None:
    """The token endpoint's limits and the exemptions; call after ``limiter.init_app``."""
    app.extensions[LIMITER_EXTENSION] = limiter  # flask-limiter keeps only a weak reference
    view: Any = app.view_functions[TOKEN_ENDPOINT]  # flask-limiter's decorators are typed for async views
    view = limiter.limit(settings["RATELIMIT_TOKEN"], key_func=token_address)(view)
    view = limiter.limit(
        settings["RATELIMIT_TOKEN_FAILURES"],
        key_func=token_client,
        deduct_when=failed,
        scope="token-failures-client",
    )(view)
    view = limiter.limit(
        settings["RATELIMIT_TOKEN_FAILURES"],
        key_func=token_address,
        deduct_when=failed,
        scope="token-failures-address",
    )(view)
    app.view_functions[TOKEN_ENDPOINT] = view
    for endpoint in EXEMPT_ENDPOINTS:
        if endpoint in app.view_functions:
            exempt: Any = limiter.exempt(app.view_functions[endpoint])
            app.view_functions[endpoint] = exempt
    # After-request functions run last-registered first: put this one first in the list so
    # it runs after flask-limiter's header injection.
    app.after_request_funcs.setdefault(None, []).insert(0, _retry_after_as_in_body)
