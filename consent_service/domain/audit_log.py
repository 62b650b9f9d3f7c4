"""Audit use cases: verify the chain and export signed checkpoints."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..storage import audit as store
from ..storage.db import read_snapshot
from . import audit
from .services import Services


def verify(services: Services, *, checkpoint_tokens: Iterable[str] = ()) -> audit.Verification:
    checkpoints = [audit.read_checkpoint(services.keys, token) for token in checkpoint_tokens]
    with read_snapshot(services.sessions) as session:
        head = store.head(session)
        entries = (
            audit.Entry(
                seq=e.seq,
                at=e.at,
                tag=e.tag,
                actor_org=e.actor_org,
                actor_client=e.actor_client,
                object_id=e.object_id,
                payload=e.payload,
                prev_hash=e.prev_hash,
                hash=e.hash,
            )
            for e in store.entries(session)
        )
        return audit.verify_chain(services.audit_key, entries, head=head, checkpoints=checkpoints)


def checkpoint(services: Services, *, now: datetime) -> str:
    with read_snapshot(services.sessions) as session:
        seq, head_hash = store.head(session)
    return audit.sign_checkpoint(services.keys, seq=seq, head_hash=head_hash, at=now)
