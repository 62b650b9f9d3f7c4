"""The audit chain over HTTP: verify (optionally against exported checkpoints), sign a
checkpoint, and export the entries page by page.

Verification itself lives in :mod:`.audit` and :mod:`.audit_log` (shared with the CLI); this
module turns it into answers a client can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import audit_chain as audit
from consent_service.core.keys import InvalidSignature
from consent_service.errors import ValidationFailed
from consent_service.services import audit as audit_log
from consent_service.storage import audit as store
from consent_service.storage import audit_export as pages
from consent_service.storage.db import read_snapshot

MAX_PAGE = 1000


def _entry_dict(entry: Any) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "tag": entry.tag,
        "actor_org": entry.actor_org,
        "actor_client": entry.actor_client,
        "object_id": entry.object_id,
        "payload": entry.payload,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def verify(services: Services, *, checkpoint_tokens: Sequence[str] = ()) -> dict[str, Any]:
    """The chain's verification, plus what is stored at the broken place (if anything is).

    A checkpoint that is not signed by this service is a bad request, not a broken chain.
    """
    bad = {}
    for index, token in enumerate(checkpoint_tokens):
        try:
            audit.read_checkpoint(services.keys, token)
        except InvalidSignature as exc:
            bad[str(index)] = [f"not a checkpoint signed by this service ({exc})"]
    if bad:
        raise ValidationFailed("A checkpoint is not valid.", details={"checkpoints": bad})
    result = audit_log.verify(services, checkpoint_tokens=checkpoint_tokens)
    out = result.as_dict()
    out["entry"] = None
    if not result.ok and result.seq is not None:
        with read_snapshot(services.sessions) as session:
            stored = pages.at(session, result.seq)
            if stored is not None:
                out["entry"] = {
                    "seq": stored.seq,
                    "at": stored.at,
                    "tag": stored.tag,
                    "object_id": stored.object_id,
                }
    return out


def checkpoint(services: Services, *, now: datetime) -> dict[str, Any]:
    """A signed (seq, head hash) to keep outside the database; cutting the tail is then caught."""
    token = audit_log.checkpoint(services, now=now)
    header, claims = services.keys.verify(token, typ=audit.CHECKPOINT_TYP)
    return {
        "checkpoint": token,
        "seq": claims["seq"],
        "hash": claims["hash"],
        "at": datetime.fromtimestamp(claims["iat"], tz=now.tzinfo),
        "kid": header.get("kid"),
    }


def entries(services: Services, *, after: int, limit: int) -> dict[str, Any]:
    """One page of the chain for export; ``next_after`` is null on the last page."""
    limit = max(1, min(limit, MAX_PAGE))
    with read_snapshot(services.sessions) as session:
        head_seq, head_hash = store.head(session)
        rows = pages.page(session, after=after, limit=limit)
        items = [_entry_dict(row) for row in rows]
    last = items[-1]["seq"] if items else after
    return {
        "entries": items,
        "next_after": last if items and last < head_seq else None,
        "head": {"seq": head_seq, "hash": head_hash},
    }
