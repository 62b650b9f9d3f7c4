"""The service's secrets: the pseudonymisation secret and the asymmetric signing keys.

Both come from configuration or, if not configured, are generated once and kept in the
instance folder. Creation is atomic (write aside, then hard-link into place), so several
workers starting together agree on one key instead of each minting its own.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fcntl
import functools
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

ALGORITHM = "ES256"
SECRET_FILE = "secret_key"
SIGNING_KEYS_FILE = "signing_keys.json"
VERIFIED_CACHE_SIZE = 4096  # tokens remembered per worker (a few MB at most)


class InvalidSignature(ValueError):
    """A token or receipt that is malformed, not signed by one of our keys, or of the wrong type."""


def _create_once(path: Path, content: str) -> str:
    """Write ``content`` to ``path`` unless it exists; return what the file holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            with contextlib.suppress(FileExistsError):  # another worker won the race: use its file
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text()


def load_secret(configured: str, instance: Path) -> bytes:
    if configured:
        return configured.encode("utf-8")
    return _create_once(instance / SECRET_FILE, secrets.token_hex(32)).strip().encode("ascii")


def new_signing_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"alg": ALGORITHM, "use": "sig"}, auto_kid=True)


def _replace(path: Path, content: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(content)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass
class StagedRotation:
    """A new signing key ready to go first in the instance key file (see :func:`staged_rotation`)."""

    path: Path
    kid: str
    previous: list[str]  # the kids already in the file, in order; all still verify
    content: str
    before: str | None
    applied: bool = False

    def apply(self) -> None:
        _replace(self.path, self.content)
        self.applied = True

    def undo(self) -> None:
        if self.before is None:
            self.path.unlink(missing_ok=True)
        else:
            _replace(self.path, self.before)
        self.applied = False


@contextlib.contextmanager
def staged_rotation(instance: Path) -> Iterator[StagedRotation]:
    """A new key for the instance key file, put in place by ``apply()`` inside the block.

    The key file is locked for the whole block, so two rotations cannot drop each other's key;
    if the block raises after ``apply()`` (the audit entry recording the rotation could not be
    committed, say), the old file is put back: a rotation and its record happen together.
    """
    path = instance / SIGNING_KEYS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = path.read_text() if path.exists() else None
        old = json.loads(before)["keys"] if before else []
        key = new_signing_key()
        staged = StagedRotation(
            path=path,
            kid=str(key.kid),
            previous=[str(k.get("kid")) for k in old],
            content=json.dumps({"keys": [key.as_dict(private=True), *old]}),
            before=before,
        )
        try:
            yield staged
        except BaseException:
            if staged.applied:
                staged.undo()
            raise


def _b64_bytes(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64(text: str) -> bytes:
    return _b64_bytes(text.encode("utf-8"))


def claims_text(claims: dict[str, Any]) -> str:
    """The JSON text of a claims set as :meth:`SigningKeys.sign_many` signs it."""
    return json.dumps(claims, separators=(",", ":"), ensure_ascii=False)


class SigningKeys:
    """A key set whose first key signs; the others are kept so old receipts still verify."""

    def __init__(self, keyset: KeySet) -> None:
        if not keyset.keys:
            raise ValueError("the signing key set is empty")
        self.keyset = keyset
        self.current = keyset.keys[0]
        # A client sends the same access token on every call for its 15 minutes, and checking an
        # ES256 signature costs ~0.2 ms. Whether a given token verifies against this key set
        # never changes, so a good verification is remembered (bounded; failures are not, so
        # bad tokens cannot fill it). Claims such as expiry are still judged on every call.
        self._verified = functools.lru_cache(maxsize=VERIFIED_CACHE_SIZE)(self._verify_signature)

    @classmethod
    def load(cls, configured: str, instance: Path) -> SigningKeys:
        if configured:
            text = Path(configured).read_text() if not configured.lstrip().startswith("{") else configured
        else:
            fresh = KeySet([new_signing_key()]).as_dict(private=True)
            text = _create_once(instance / SIGNING_KEYS_FILE, json.dumps(fresh))
        return cls(KeySet.import_key_set(json.loads(text)))

    def public_jwks(self) -> dict[str, Any]:
        return dict(self.keyset.as_dict(private=False))

    def sign(self, claims: dict[str, Any], *, typ: str) -> str:
        header = {"alg": ALGORITHM, "kid": self.current.kid, "typ": typ}
        return jwt.encode(header, claims, self.current, algorithms=[ALGORITHM])

    def sign_many(self, claims: Iterator[dict[str, Any]] | list[dict[str, Any]], *, typ: str) -> list[str]:
        """Compact JWS of each claims set, as :meth:`sign` makes them, for a bulk import.

        The same header and algorithm (ES256, raw r||s per RFC 7518 section 3.4), signed straight
        with the key's ``cryptography`` object: joserfc's checks per call cost more than the
        signature itself. The tokens verify with :meth:`verify` like any other.
        """
        return self.sign_serialized([claims_text(one) for one in claims], typ=typ)

    def sign_serialized(self, texts: list[str], *, typ: str) -> list[str]:
        """:meth:`sign_many` of claims sets given as their JSON text (``claims_text`` of each, or
        any JSON object's text): the text signed is the text given."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        private = self.current.private_key
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        header = _b64(
            json.dumps({"typ": typ, "alg": ALGORITHM, "kid": self.current.kid}, separators=(",", ":"))
        )
        algorithm = ec.ECDSA(hashes.SHA256())
        out = []
        for text in texts:
            signing_input = header + b"." + _b64(text)
            r, s = decode_dss_signature(private.sign(signing_input, algorithm))
            signature = _b64_bytes(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
            out.append((signing_input + b"." + signature).decode("ascii"))
        return out

    def verify(self, token: str, *, typ: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check signature and type; return (header, claims). Expiry etc. are the caller's."""
        header, claims = self._verified(token)
        if header.get("typ") != typ:
            raise InvalidSignature(f"expected a {typ} token")
        return copy.deepcopy(header), copy.deepcopy(claims)  # the cached ones stay as verified

    def _verify_signature(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            decoded = jwt.decode(token, self.keyset, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidSignature("not a valid signed token") from exc
        return dict(decoded.header), dict(decoded.claims)
