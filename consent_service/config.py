"""Configuration: built-in defaults, then ``CONSENT_*`` environment variables, then test config.

Every setting a deployment may change is listed in ``DEFAULTS`` so that one place documents
them all. Environment values are parsed to the type of their default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_POLICIES_DIR = PACKAGE_ROOT.parent / "policies"

DEFAULTS: dict[str, Any] = {
    # Storage. Empty means a SQLite file in the instance folder.
    "DATABASE_URL": "",
    # SQLite: how long a writer waits for the lock before the request fails (503), in ms.
    "SQLITE_BUSY_TIMEOUT_MS": 5000,
    # SQLite: how much of the database file each connection reads through a memory map (the OS
    # page cache itself, shared by every worker) instead of a read() per page; 0 turns it off.
    # Address space, not memory: measured in docs/performance.md ("How each figure scales").
    "SQLITE_MMAP_MB": 1024,
    # PostgreSQL: statement timeout for every statement, in ms (a hung database is a 503).
    "PG_STATEMENT_TIMEOUT_MS": 5000,
    "DB_POOL_SIZE": 5,
    # PostgreSQL: the schema to use (search_path); empty means the server's default.
    "DB_SCHEMA": "",
    # The pseudonymisation key (HMAC of subject identifiers). Empty: generated once and
    # kept in the instance folder. All instances of a deployment must share it.
    "SECRET_KEY": "",
    # A JWKS (JSON text or a path to a file) with private signing keys; the first key signs.
    # Empty: an ES256 key is generated once and kept in the instance folder.
    "SIGNING_KEYS": "",
    "POLICIES_DIR": str(DEFAULT_POLICIES_DIR),
    # OAuth 2.0 / RFC 9068 access tokens.
    "TOKEN_ISSUER": "urn:consent-service",
    "TOKEN_AUDIENCE": "urn:consent-service:api",
    "TOKEN_EXPIRES_IN": 900,
    # Request limits.
    "MAX_CONTENT_LENGTH": 256 * 1024,
    "MAX_LIST_LENGTH": 100,
    # POST /v1/authorize/batch alone: 10,000 subjects of up to 2 x 256 characters each.
    "BATCH_MAX_CONTENT_LENGTH": 8 * 1024 * 1024,
    # POST /v1/consents/import alone: a CSV file or FHIR Bundle of consents (about 50,000 rows).
    "IMPORT_MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
    # Rate limits (flask-limiter syntax); storage "memory://" or "redis://host:port".
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    # RATELIMIT_DEFAULT: every request, all endpoints together, per client (valid bearer token)
    # or else per address. RATELIMIT_TOKEN: token requests per address. RATELIMIT_TOKEN_FAILURES:
    # failed token requests, per client id named and per address (see views/limits.py).
    "RATELIMIT_DEFAULT": "1200 per minute",
    "RATELIMIT_TOKEN": "30 per minute",
    "RATELIMIT_TOKEN_FAILURES": "10 per minute",
    # Prefix of the counters' keys (instances of one deployment share it; others sharing
    # the Redis server use another).
    "RATELIMIT_KEY_PREFIX": "consent",
    # TESTING ONLY, never in a deployment: each worker keeps the community rules it compiled
    # first and ignores policy_version, i.e. serves stale decisions. bench/stale_check.py --stale
    # sets it to show that its check catches stale permits (the service logs a warning at start).
    "TESTING_ONLY_STALE_RULE_CACHE": False,
    # Web pages for people (community stewards, intake workers).
    # Sign-ins per address (flask-limiter syntax), on top of the per-account lockout below.
    "RATELIMIT_SIGN_IN": "20 per minute",
    # Failed sign-ins in a row that lock an account, and for how many minutes.
    "WEB_LOCKOUT_THRESHOLD": 5,
    "WEB_LOCKOUT_MINUTES": 15,
    # A signed-in session ends after this many minutes without use.
    "WEB_SESSION_MINUTES": 480,
    # Session cookies are Secure whenever the request came over TLS; true: always (set it
    # behind a TLS-terminating proxy, where the app itself sees plain HTTP).
    "WEB_SECURE_COOKIES": False,
    # Argon2id cost of password hashes (argon2-cffi's defaults, RFC 9106's low-memory profile).
    "WEB_PASSWORD_TIME_COST": 3,
    "WEB_PASSWORD_MEMORY_KIB": 65536,
    # Single sign-on for the web pages through an OpenID provider (docs/deploy.md, "Single
    # sign-on"). OIDC_ISSUER empty: off. Its metadata is read from
    # {OIDC_ISSUER}/.well-known/openid-configuration; https only (plain http on loopback alone).
    # OIDC_ORGANIZATION_CLAIM names the claim holding the person's organization id here;
    # OIDC_ROLES_CLAIM the claim listing their roles (names of policies/roles.toml; others are
    # ignored); either may be a dotted path into nested claims. OIDC_DISPLAY_NAME is the
    # button's text ("Sign in with ..."). A session begun through the provider ends after
    # OIDC_SESSION_MAX_MINUTES however much it is used, so the provider is asked again (and a
    # person switched off there cannot go on here).
    "OIDC_ISSUER": "",
    "OIDC_CLIENT_ID": "",
    "OIDC_CLIENT_SECRET": "",
    "OIDC_SCOPES": "openid email profile",
    "OIDC_ORGANIZATION_CLAIM": "organization",
    "OIDC_ROLES_CLAIM": "roles",
    "OIDC_DISPLAY_NAME": "your organization's account",
    "OIDC_SESSION_MAX_MINUTES": 480,
    # False: no password form and every password sign-in refused (people sign in only through
    # the OpenID provider; accounts made with ``users create`` cannot sign in).
    "LOCAL_PASSWORDS": True,
    # The person's own view (/me, with the access code of their receipt): a session ends this
    # many minutes after the code was entered, whatever the use. Codes entered per address
    # (every attempt), and wrong codes for all addresses together (only failures count; once
    # used up, every code waits, right ones too: guessing stays slow whoever spreads it).
    "PERSON_SESSION_MINUTES": 15,
    "RATELIMIT_PERSON_CODE": "10 per minute",
    "RATELIMIT_PERSON_CODE_FAILURES": "600 per hour",
    # The IANA time zone every page and printable document shows times in (never bare UTC);
    # a date typed in a form ends at midnight in this zone.
    "TIMEZONE": "America/Toronto",
    # Days a proposed change of a community's stewards waits for a second steward's
    # confirmation before it expires (it is then shown expired and cannot be confirmed).
    "STEWARD_CHANGE_DAYS": 7,
    # A data sharing agreement's document: the largest accepted, in bytes, and the media types
    # accepted (comma-separated). Anything else is refused and nothing is kept.
    "AGREEMENT_MAX_BYTES": 10 * 1024 * 1024,
    "AGREEMENT_MEDIA_TYPES": "application/pdf,text/plain,"
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    # Agreements whose review date falls within this many days are listed as due soon.
    "AGREEMENT_REMIND_DAYS": 30,
    # Logs of ``consent-service serve``: "json" (one JSON object a line, with request_id and
    # decision_id; log_hygiene.py) or "text"; and the level of the service's own loggers.
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
    # Change events (webhooks, `consent-service events deliver`). Webhook URLs must be https
    # and, unless WEBHOOKS_ALLOW_LOOPBACK_HTTP, must not resolve to a private, loopback,
    # link-local or reserved address (checked at registration and again before each delivery).
    # WEBHOOKS_ALLOW_LOOPBACK_HTTP (tests, a single-host trial): http://127.0.0.1 / ::1 /
    # localhost is accepted too, and the address check is skipped.
    "WEBHOOKS_ALLOW_LOOPBACK_HTTP": False,
    # The deliverer: seconds per POST, events claimed per round, the first retry's delay and
    # the longest (exponential backoff with full jitter between them), poll interval when idle,
    # seconds between sweeps for expired consents, how far back a sweep looks (days).
    "EVENTS_TIMEOUT_SECONDS": 10.0,
    "EVENTS_BATCH": 50,
    "EVENTS_BACKOFF_BASE_SECONDS": 5.0,
    "EVENTS_BACKOFF_MAX_SECONDS": 3600.0,
    "EVENTS_POLL_SECONDS": 1.0,
    # How long a claimed event is not due again (a deliverer killed mid-send: it is sent again
    # after this); at least twice the timeout and a second, whatever is set.
    "EVENTS_LEASE_SECONDS": 60.0,
    "EVENTS_SWEEP_SECONDS": 60.0,
    "EVENTS_EXPIRY_LOOKBACK_DAYS": 30,
    # A community change reaches the organizations that received a permit touching the
    # community's members within this many days (bounds the decision-log query).
    "EVENTS_PERMIT_LOOKBACK_DAYS": 365,
}


def _coerce(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


# Settings a deployment may still set that no longer exist: refused at start, never ignored
# (an operator who set one believes it has an effect).
REMOVED = {
    "TRUSTED_ISSUER_JWKS": "external token issuers are not supported: only tokens this service "
    "issues are accepted (issue 12: the setting was never read)",
}


def load(test_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the effective settings; later sources override earlier ones."""
    for name, why in REMOVED.items():
        if os.environ.get(f"CONSENT_{name}") or (test_config and name in test_config):
            raise ValueError(f"CONSENT_{name} is set but {why}; unset it.")
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        raw = os.environ.get(f"CONSENT_{name}")
        if raw is not None and raw != "":
            settings[name] = _coerce(raw, default)
    if test_config:
        settings.update(test_config)
    return settings
