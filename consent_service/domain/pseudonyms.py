"""Pseudonymous subject keys: the service never stores a raw subject identifier.

A subject is ``(system, value)``; its key is HMAC-SHA256 under the service's secret, so the
same person recorded by the same identifier system always maps to the same key, while the
key reveals nothing without the secret (a plain hash of a health-card number could be
reversed by hashing every possible number).
"""

from __future__ import annotations

import hashlib
import hmac

_SEPARATOR = b"\x1f"  # unit separator: cannot occur in a validated system or value


def subject_key(secret: bytes, *, system: str, value: str) -> str:
    message = system.encode("utf-8") + _SEPARATOR + value.encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A separate key for each use of the one service secret (pseudonyms, audit chain)."""
    return hmac.new(secret, b"consent-service/" + purpose.encode("ascii"), hashlib.sha256).digest()
