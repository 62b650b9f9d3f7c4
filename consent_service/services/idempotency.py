"""``Idempotency-Key`` for writes a client may retry (recording and revoking consent).

The record of which resource a key produced is written in the same transaction as the
resource itself, so after a crash either both exist or neither. A retry with the same key
and the same request gets the resource as it is now (and is told it was a replay); the same
key with a different request is a 409, because silently doing either would be wrong.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from consent_service.core.audit_chain import canonical
from consent_service.core.caller import Caller
from consent_service.errors import Conflict
from consent_service.storage import idempotency as store
from consent_service.storage.models import IdempotencyRecord


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    fingerprint: str

    @classmethod
    def for_request(cls, key: str, *, operation: str, body: Any, secret: bytes) -> IdempotencyKey:
        """Fingerprint the request with a keyed hash: the body holds the raw subject, and a
        plain hash would let someone who can guess the rest of it confirm who the person is."""
        digest = hmac.new(secret, operation.encode() + b"\n" + canonical(body), hashlib.sha256).hexdigest()
        return cls(key=key, fingerprint=digest)


def earlier_result(session: Session, caller: Caller, idempotency: IdempotencyKey | None) -> str | None:
    """The resource id an earlier request with this key produced, if any."""
    if idempotency is None:
        return None
    record = store.get(session, client_id=caller.client_id, key=idempotency.key)
    if record is None:
        return None
    if record.request_hash != idempotency.fingerprint:
        raise Conflict("This Idempotency-Key was already used for a different request.")
    return str(record.body["resource_id"])


def remember(
    session: Session,
    caller: Caller,
    idempotency: IdempotencyKey | None,
    *,
    resource_id: str,
    status: int,
    now: datetime,
) -> None:
    if idempotency is None:
        return
    store.add(
        session,
        IdempotencyRecord(
            client_id=caller.client_id,
            key=idempotency.key,
            request_hash=idempotency.fingerprint,
            status=status,
            body={"resource_id": resource_id},
            created_at=now,
        ),
    )
