"""Pseudonymous subject keys: the service never stores a raw subject identifier.

A subject is ``(system, value)``; its key is HMAC-SHA256 under the service's secret, so the
same person recorded by the same identifier system always maps to the same key, while the
key reveals nothing without the secret (a plain hash of a health-card number could be
reversed by hashing every possible number).

One person, one spelling (contract v1.1 section 5): :func:`subject_key` normalizes the
identifier before it is hashed, and it is the only way to a key, so every path (API, web
pages, batch, bench data) agrees on every spelling:

* ``value``: Unicode NFC, surrounding white space removed; case-folded (then NFC again) when
  the system is registered as case-insensitive;
* ``system``: NFC, surrounding white space removed; must be an absolute ``urn:`` or
  ``https:`` URI; the scheme, and a URN's namespace identifier, compare in lower case.

:func:`key_as_given` hashes the identifier exactly as sent: it is only for finding subjects
recorded before normalization (their keys cannot be recomputed, the raw identifier having
never been kept), see ``services.subjects``.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from functools import lru_cache

_SEPARATOR = b"\x1f"  # unit separator: cannot occur in a validated system or value
SCHEMES = ("urn", "https")


@lru_cache(maxsize=1024)  # a deployment has few systems; a batch names one 10,000 times
def system_problem(system: str) -> str | None:
    """Why ``system`` is not an acceptable identifier system, or None."""
    text = unicodedata.normalize("NFC", system).strip()
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() not in SCHEMES or not rest.strip():
        return "must be an absolute URI: urn:... or https:..."
    if scheme.lower() == "urn" and not rest.partition(":")[0]:
        return "a urn: system needs a namespace (urn:namespace:...)"
    return None


@lru_cache(maxsize=1024)
def normalize_system(system: str) -> str:
    """The system in its one spelling (call :func:`system_problem` first: it must be valid)."""
    text = unicodedata.normalize("NFC", system).strip()
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    if scheme == "urn":
        namespace, colon, specific = rest.partition(":")
        rest = namespace.lower() + colon + specific
    return f"{scheme}:{rest}"


def normalize_value(value: str, *, case_insensitive: bool = False) -> str:
    text = unicodedata.normalize("NFC", value).strip()
    if case_insensitive:
        text = unicodedata.normalize("NFC", text.casefold())
    return text


def _hmac(secret: bytes, system: str, value: str) -> str:
    message = system.encode("utf-8") + _SEPARATOR + value.encode("utf-8")
    return hmac.digest(secret, message, "sha256").hex()


def subject_key(secret: bytes, *, system: str, value: str, case_insensitive: bool = False) -> str:
    """The subject's pseudonymous key, of its normalized spelling."""
    return _hmac(secret, normalize_system(system), normalize_value(value, case_insensitive=case_insensitive))


def key_as_given(secret: bytes, *, system: str, value: str) -> str:
    """The key v1 computed: of the identifier exactly as sent (for subjects recorded then)."""
    return _hmac(secret, system, value)


def keys(secret: bytes, *, system: str, value: str, given_system: str, given_value: str) -> tuple[str, str]:
    """``subject_key(system, value)`` and ``key_as_given(given_system, given_value)``: the second
    HMAC is skipped when both hash the same text (an identifier sent already normalized)."""
    key_system, key_value = normalize_system(system), normalize_value(value)
    key = _hmac(secret, key_system, key_value)
    if (key_system, key_value) == (given_system, given_value):
        return key, key
    return key, _hmac(secret, given_system, given_value)


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A separate key for each use of the one service secret (pseudonyms, audit chain)."""
    return hmac.new(secret, b"consent-service/" + purpose.encode("ascii"), hashlib.sha256).digest()
