"""Client credentials: generation and hashing.

Client secrets are 256-bit random strings, so a single SHA-256 is enough to make a stolen
table useless (a slow password hash defends low-entropy secrets; these have none to guess)
and keeps token requests cheap. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_client_id() -> str:
    return "cl_" + secrets.token_urlsafe(16)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
