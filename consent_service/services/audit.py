"""Use cases of the audit resource (``/v1/audit/*`` and ``consent-service audit``): verify the
chain and the rows it binds, sign a checkpoint, export the entries page by page, and bind the
rows of a database older than row binding.

Where audit lives: the chain's hash linking and its walk are pure (:mod:`core.audit_chain`,
whose ``Entry`` is the one definition of an entry's fields, dumped by ``schemas.audit.EntryOut``);
which rows an entry binds and their digests are :mod:`.audit_rows`; the SQL is in
``storage/audit.py`` and ``storage/audit_rows.py``.

Verification reads one snapshot and streams: the chain in sequence order, then every bound
table in key order (see :mod:`.audit_rows`); memory does not grow with the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from consent_service.container import Services
from consent_service.core import audit_chain as audit
from consent_service.core.audit_chain import Entry, Verification
from consent_service.core.caller import Caller
from consent_service.core.keys import InvalidSignature
from consent_service.errors import Conflict, ValidationFailed
from consent_service.schemas.audit import VerificationOut
from consent_service.services import audit_rows
from consent_service.services.audit_rows import Progress
from consent_service.storage import audit as store

MAX_PAGE = 1000
# A verification as the command line prints it and a refused checkpoint names it (no stored entry).
CHAIN_ONLY = VerificationOut(exclude=("entry",))


@dataclass(frozen=True)
class Checkpoint:
    """A signed (seq, head hash, state) to keep outside the database (``CheckpointOut``)."""

    checkpoint: str  # the compact JWS
    seq: int
    hash: str
    at: datetime
    kid: str | None


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


@dataclass(frozen=True)
class EntriesPage:
    """One page of the chain (``EntriesOut``); ``next_after`` is None on the last page."""

    entries: list[Entry]
    next_after: int | None
    head: Head


def work(services: Services) -> int:
    """How many steps :func:`verify` takes (entries + bound rows), for a progress bar; 0 if
    counting failed (a count of a huge table may hit the statement timeout): no bar then."""
    try:
        with services.reading(None) as session:
            return audit_rows.work(session)
    except SQLAlchemyError:
        return 0


def _read_checkpoints(services: Services, tokens: Iterable[str]) -> list[tuple[int, str, str | None]]:
    """The checkpoints' (seq, hash, state); one not signed by this service is a bad request
    (400 naming it), not a broken chain."""
    read, bad = [], {}
    for index, token in enumerate(tokens):
        try:
            read.append(audit.read_checkpoint_state(services.keys, token))
        except InvalidSignature as exc:
            bad[str(index)] = [f"not a checkpoint signed by this service ({exc})"]
    if bad:
        raise ValidationFailed("A checkpoint is not valid.", details={"checkpoints": bad})
    return read


def _run(
    services: Services,
    caller: Caller | None,
    checkpoints: list[tuple[int, str, str | None]],
    progress: Progress | None,
) -> tuple[Verification, str]:
    """The verification and the commitment to the state at the head (meaningful only if ok)."""
    states = {seq: state for seq, _, state in checkpoints if state is not None}
    tally = audit_rows.Tally(services.state_key)
    commitments: dict[int, str] = {}
    seen: dict[str, object] = {}
    with services.reading(caller) as session:
        head = store.head(session)
        entries = (Entry.of(e) for e in store.entries(session))
        result = audit.verify_chain(
            services.audit_key,
            audit_rows.tallying(
                entries, tally, at_seqs=states, commitments=commitments, progress=progress, seen=seen
            ),
            head=head,
            checkpoints=[(seq, digest) for seq, digest, _ in checkpoints],
        )
        if not result.ok:
            return result, ""
        if isinstance(seen.get("malformed"), int):
            seq = int(seen["malformed"])  # type: ignore[call-overload]
            return replace(
                result,
                ok=False,
                seq=seq,
                problem=(f"entry {seq} names rows in a form the service never writes"),
            ), ""
        for seq, state in sorted(states.items()):
            if commitments.get(seq) != state:
                return replace(
                    result,
                    ok=False,
                    seq=seq,
                    problem=(f"the rows recorded up to entry {seq} differ from the signed checkpoint"),
                ), ""
        if seen.get("legacy") and not seen.get("baseline"):
            return replace(
                result,
                ok=False,
                problem=(
                    "the chain began before audit entries recorded rows, and the rows that existed then were "
                    "never bound: run `consent-service db upgrade`"
                ),
            ), ""
        problems = audit_rows.check_state(session, services.rows_key, tally, progress)
    if problems:
        first = problems[0]
        return replace(
            result,
            ok=False,
            problem=first.problem,
            seq=first.seq,
            table=first.table,
            row=first.row,
            rows=tuple(p.as_dict() for p in problems),
        ), ""
    return result, tally.commitment()


def verify(
    services: Services,
    *,
    caller: Caller | None = None,
    checkpoint_tokens: Iterable[str] = (),
    progress: Progress | None = None,
) -> Verification:
    """Walk the whole chain and every bound row; ``ok`` false names the first entry that was
    changed, removed, inserted or moved (with what is stored there, ``entry``), or says the tail
    was cut off. Every given signed checkpoint must still be on the chain."""
    checkpoints = _read_checkpoints(services, checkpoint_tokens)
    result = _run(services, caller, checkpoints, progress)[0]
    if result.ok or result.seq is None:
        return result
    with services.reading(caller) as session:
        stored = store.at(session, result.seq)
        return replace(result, entry=Entry.of(stored)) if stored is not None else result


def checkpoint(
    services: Services, *, caller: Caller | None = None, now: datetime, progress: Progress | None = None
) -> Checkpoint:
    """Sign (seq, head hash, state) after verifying the chain and every bound row at that head.

    A checkpoint vouches for the state too, so none is signed over a broken chain or state;
    kept outside the database, it catches a cut-off tail.
    """
    result, state = _run(services, caller, [], progress)
    if not result.ok:
        raise Conflict(
            f"No checkpoint signed: the audit chain does not verify ({result.problem}).",
            details={"verification": CHAIN_ONLY.dump(result)},
        )
    token = audit.sign_checkpoint(
        services.keys, seq=result.head_seq, head_hash=result.head_hash, at=now, state=state
    )
    header, claims = services.keys.verify(token, typ=audit.CHECKPOINT_TYP)
    return Checkpoint(
        checkpoint=token,
        seq=claims["seq"],
        hash=claims["hash"],
        at=datetime.fromtimestamp(claims["iat"], tz=now.tzinfo),
        kid=header.get("kid"),
    )


def entries(services: Services, *, caller: Caller | None = None, after: int, limit: int) -> EntriesPage:
    """One page of the chain for export, in sequence order (follow ``next_after``)."""
    limit = max(1, min(limit, MAX_PAGE))
    with services.reading(caller) as session:
        head_seq, head_hash = store.head(session)
        items = [Entry.of(row) for row in store.page(session, after=after, limit=limit)]
    last = items[-1].seq if items else after
    return EntriesPage(
        entries=items, next_after=last if items and last < head_seq else None, head=Head(head_seq, head_hash)
    )


def bind_existing_rows(services: Services, *, now: datetime) -> int:
    """Bind the rows of a database whose chain began before entries recorded rows (once).

    Appends ``audit:rows-bound`` entries naming every row that exists; returns how many.
    Run by ``consent-service db upgrade``; a second run finds nothing to do.
    """
    with services.writing(None) as session:
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
            services.append_audit_many(
                session,
                caller=None,
                entries=batch or [(now, audit_rows.BASELINE_TAG, None, {audit_rows.ROWS: []})],
            )
            added += max(1, len(batch))
        session.commit()
        return added
