"""The person's access codes: how they are made, typed and kept (pure; no framework).

A code is 20 symbols drawn uniformly (``secrets``) from a 32-symbol alphabet without the
look-alikes 0/O and 1/I, so it carries 20 x 5 = 100 bits: at 1,000 guesses a second for a
year against a million live codes, the chance that any guess opens anything is about
2.5e-14 (1000 x 31,536,000 x 10^6 / 2^100). It is printed and shown in groups of four
(``ABCD-EFGH-...``); what the person types is read case-insensitively, spaces and hyphens
ignored.

Only a keyed hash is kept: HMAC-SHA256 under a key derived from the service secret. A slow
password hash (Argon2) protects low-entropy secrets from a stolen table; a 100-bit random code
cannot be guessed offline either way, and the key is not in the database, so a fast hash loses
nothing and lets a code be found by one look-up in a unique index (no per-row salt to try).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols: no 0, 1, I, O
LENGTH = 20
BITS = LENGTH * 5  # log2(32) bits per symbol
GROUP = 4
_IGNORED = str.maketrans("", "", " -\t\n\r._")


def new_code() -> str:
    """A fresh code (the bare 20 symbols)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize(typed: str) -> str | None:
    """The code as typed, in its bare form; None when it cannot be a code (wrong length or symbol)."""
    if len(typed) > 200:
        return None
    code = typed.translate(_IGNORED).upper()
    if len(code) != LENGTH or any(symbol not in ALPHABET for symbol in code):
        return None
    return code


def display(code: str) -> str:
    """The code as printed: groups of four joined by hyphens."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def digest(key: bytes, code: str) -> str:
    """The keyed hash kept in the database (hex); ``code`` in its bare form."""
    return hmac.new(key, code.encode("ascii"), hashlib.sha256).hexdigest()
