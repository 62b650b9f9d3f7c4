"""Audit use cases: verify the chain and the rows it binds, and export signed checkpoints.

Verification reads one snapshot and streams: the chain in sequence order, then every bound
table in key order (see :mod:`.audit_rows`); memory does not grow with the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from consent_service.container import Services
from consent_service.core import audit_chain as audit
from consent_service.errors import Conflict
from consent_service.services import audit_rows
from consent_service.services.audit_rows import Progress
from consent_service.storage import audit as store
from consent_service.storage.db import read_snapshot


def work(services: Services) -> int:
    """How many steps :func:`verify` takes (entries + bound rows), for a progress bar; 0 if
    counting failed (a count of a huge table may hit the statement timeout): no bar then."""
    try:
        with read_snapshot(services.sessions) as session:
            return audit_rows.work(session)
    except SQLAlchemyError:
        return 0


def _run(services: Services, checkpoints: list[tuple[int, str, str | None]],
         progress: Progress | None) -> tuple[audit.Verification, str]:
    """The verification and the commitment to the state at the head (meaningful only if ok)."""
    states = {seq: state for seq, _, state in checkpoints if state is not None}
    tally = audit_rows.Tally(services.state_key)
    commitments: dict[int, str] = {}
    seen: dict[str, object] = {}
    with read_snapshot(services.sessions) as session:
        head = store.head(session)
        entries = (
            audit.Entry(seq=e.seq, at=e.at, tag=e.tag, actor_org=e.actor_org, actor_client=e.actor_client,
                        object_id=e.object_id, payload=e.payload, prev_hash=e.prev_hash, hash=e.hash)
            for e in store.entries(session)
        )
        result = audit.verify_chain(
            services.audit_key,
            audit_rows.tallying(entries, tally, at_seqs=states, commitments=commitments, progress=progress,
                                seen=seen),
            head=head, checkpoints=[(seq, digest) for seq, digest, _ in checkpoints])
        if not result.ok:
            return result, ""
        if isinstance(seen.get("malformed"), int):
            seq = int(seen["malformed"])  # type: ignore[call-overload]
            return replace(result, ok=False, seq=seq, problem=(
                f"entry {seq} names rows in a form the service never writes")), ""
        for seq, state in sorted(states.items()):
            if commitments.get(seq) != state:
                return replace(result, ok=False, seq=seq, problem=(
                    f"the rows recorded up to entry {seq} differ from the signed checkpoint")), ""
        if seen.get("legacy") and not seen.get("baseline"):
            return replace(result, ok=False, problem=(
                "the chain began before audit entries recorded rows, and the rows that existed then were "
                "never bound: run `consent-service db upgrade`")), ""
        problems = audit_rows.check_state(session, services.rows_key, tally, progress)
    if problems:
        first = problems[0]
        return replace(result, ok=False, problem=first.problem, seq=first.seq, table=first.table,
                       row=first.row, rows=tuple(p.as_dict() for p in problems)), ""
    return result, tally.commitment()


def verify(services: Services, *, checkpoint_tokens: Iterable[str] = (),
           progress: Progress | None = None) -> audit.Verification:
    checkpoints = [audit.read_checkpoint_state(services.keys, token) for token in checkpoint_tokens]
    return _run(services, checkpoints, progress)[0]


def checkpoint(services: Services, *, now: datetime, progress: Progress | None = None) -> str:
    """Sign (seq, head hash, state) after verifying the chain and every bound row at that head.

    A checkpoint vouches for the state too, so none is signed over a broken chain or state.
    """
    result, state = _run(services, [], progress)
    if not result.ok:
        raise Conflict(f"No checkpoint signed: the audit chain does not verify ({result.problem}).",
                       details={"verification": result.as_dict()})
    return audit.sign_checkpoint(services.keys, seq=result.head_seq, head_hash=result.head_hash, at=now,
                                 state=state)


def bind_existing_rows(services: Services, *, now: datetime) -> int:
    """Bind the rows of a database whose chain began before entries recorded rows (once).

    Appends ``audit:rows-bound`` entries naming every row that exists; returns how many.
    Run by ``consent-service db upgrade``; a second run finds nothing to do.
    """
    from consent_service.storage.db import write

    with write(services.sessions) as session:
        if not audit_rows.needs_baseline(session):
            return 0
        added = 0
        batch: list[tuple[datetime, str, str | None, dict[str, Any]]] = []
        for entry in audit_rows.baseline_entries(session, services.rows_key, now):
            batch.append(entry)
            if len(batch) == 100:
                added += len(batch)
                services.append_audit_many(session, caller=None, entries=batch)
                batch = []
        if batch or not added:
            services.append_audit_many(session, caller=None, entries=batch or [
                (now, audit_rows.BASELINE_TAG, None, {audit_rows.ROWS: []})])
            added += max(1, len(batch))
        session.commit()
        return added
