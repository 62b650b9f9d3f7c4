"""The tamper-evident audit chain: hashing, verification and signed checkpoints.

Each entry's hash is HMAC-SHA256 under a key derived from the service secret, over the
previous entry's hash and the canonical JSON of the entry. Changing, deleting, inserting or
reordering an entry breaks a link; recomputing the links needs the key, which a person who
can only write to the database does not have. Cutting off the tail leaves an intact but
shorter chain: the head row and signed checkpoints (sequence + head hash, signed with the
service's asymmetric key and kept elsewhere) catch that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from consent_service.core.keys import InvalidSignature, SigningKeys

GENESIS = "0" * 64
CHECKPOINT_TYP = "audit-checkpoint+jwt"


@dataclass(frozen=True)
class Entry:
    """One audit entry: the definition of its fields (``schemas.audit.EntryOut`` dumps it; the
    stored row, ``storage.models.AuditEntry``, has the same columns)."""

    seq: int
    at: datetime
    tag: str
    actor_org: str | None
    actor_client: str | None
    object_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: Any) -> Entry:
        """The entry of a stored row (anything with these attributes)."""
        return cls(*(getattr(row, name) for name in _ENTRY_FIELDS))


_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def canonical(value: Any) -> bytes:
    return canonical_text(value).encode("utf-8")


def canonical_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link_hash(
    key: bytes,
    *,
    prev_hash: str,
    seq: int,
    at: datetime,
    tag: str,
    actor_org: str | None,
    actor_client: str | None,
    object_id: str | None,
    payload: dict[str, Any],
) -> str:
    """The entry's HMAC, chained to ``prev_hash``: over the canonical JSON of the entry's fields."""
    return link_hash_serialized(
        key,
        prev_hash=prev_hash,
        seq=seq,
        at=at,
        tag=tag,
        actor_org=actor_org,
        actor_client=actor_client,
        object_id=object_id,
        payload=canonical_text(payload),
    )


_ENTRY_TEXT = '{"actor_client":%s,"actor_org":%s,"at":%s,"object_id":%s,"payload":%s,"seq":%d,"tag":%s}'


def _text_or_null(value: str | None) -> str:
    return "null" if value is None else json.encoder.encode_basestring(value)


def link_hash_serialized(
    key: bytes,
    *,
    prev_hash: str,
    seq: int,
    at: datetime,
    tag: str,
    actor_org: str | None,
    actor_client: str | None,
    object_id: str | None,
    payload: str,
) -> str:
    """``link_hash`` of an entry whose payload is given as its ``canonical_text``: the entry's
    canonical JSON (keys sorted, as ``canonical`` writes them) is written around that text, not
    serialized again (a bulk import serializes each payload once, for its link and its row)."""
    body = _ENTRY_TEXT % (
        _text_or_null(actor_client),
        _text_or_null(actor_org),
        _text_or_null(at.isoformat()),
        _text_or_null(object_id),
        payload,
        seq,
        _text_or_null(tag),
    )
    return hmac.new(key, prev_hash.encode("ascii") + b"\n" + body.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    seq: int | None = None
    table: str | None = None  # a bound row that differs from the chain: its table and key
    row: list[Any] | None = None
    rows: tuple[dict[str, Any], ...] = ()  # every such row found (up to a limit), first one above
    entry: Entry | None = None  # what is stored at ``seq``, when the reader looked it up


def verify_chain(
    key: bytes,
    entries: Iterable[Entry],
    *,
    head: tuple[int, str] | None = None,
    checkpoints: Iterable[tuple[int, str]] = (),
) -> Verification:
    """Walk the chain in sequence order; report the first broken place.

    ``head`` is the stored head row; ``checkpoints`` are (seq, hash) pairs exported earlier
    (already signature-checked): each must still be on the chain.
    """
    wanted = dict(checkpoints)
    expected_seq, prev, count = 1, GENESIS, 0
    for entry in entries:
        if entry.seq != expected_seq:
            kind = "deleted" if entry.seq > expected_seq else "inserted or reordered"
            return Verification(
                False,
                count,
                expected_seq - 1,
                prev,
                f"entry {expected_seq} is missing or out of place ({kind})",
                expected_seq,
            )
        if entry.prev_hash != prev:
            return Verification(
                False,
                count,
                entry.seq - 1,
                prev,
                f"entry {entry.seq} does not link to entry {entry.seq - 1} (inserted, deleted or reordered)",
                entry.seq,
            )
        recomputed = link_hash(
            key,
            prev_hash=entry.prev_hash,
            seq=entry.seq,
            at=entry.at,
            tag=entry.tag,
            actor_org=entry.actor_org,
            actor_client=entry.actor_client,
            object_id=entry.object_id,
            payload=entry.payload,
        )
        if not hmac.compare_digest(recomputed, entry.hash):
            return Verification(
                False,
                count,
                entry.seq - 1,
                prev,
                f"entry {entry.seq} was modified (its hash does not match its content)",
                entry.seq,
            )
        if entry.seq in wanted and wanted.pop(entry.seq) != entry.hash:
            return Verification(
                False,
                count,
                entry.seq,
                entry.hash,
                f"entry {entry.seq} differs from the signed checkpoint",
                entry.seq,
            )
        prev, count, expected_seq = entry.hash, count + 1, entry.seq + 1
    last = expected_seq - 1
    if wanted:
        seq = min(wanted)
        return Verification(
            False,
            count,
            last,
            prev,
            f"the chain ends at {last} but a signed checkpoint covers entry {seq} (entries were cut off)",
            seq,
        )
    if head is not None and (head[0] != last or head[1] != prev):
        return Verification(
            False,
            count,
            last,
            prev,
            f"the chain ends at entry {last} but the head records entry {head[0]} "
            "(entries were cut off or appended without the key)",
            last + 1,
        )
    return Verification(True, count, last, prev)


def sign_checkpoint(
    keys: SigningKeys, *, seq: int, head_hash: str, at: datetime, state: str | None = None
) -> str:
    """``state`` commits to the rows the chain binds at ``seq`` (see audit_rows.Tally.commitment)."""
    claims: dict[str, Any] = {"seq": seq, "hash": head_hash, "iat": int(at.timestamp())}
    if state is not None:
        claims["state"] = state
    return keys.sign(claims, typ=CHECKPOINT_TYP)


def read_checkpoint(keys: SigningKeys, token: str) -> tuple[int, str]:
    seq, head_hash, _ = read_checkpoint_state(keys, token)
    return seq, head_hash


def read_checkpoint_state(keys: SigningKeys, token: str) -> tuple[int, str, str | None]:
    """(seq, head hash, state commitment or None for a checkpoint signed before rows were bound)."""
    _, claims = keys.verify(token, typ=CHECKPOINT_TYP)
    try:
        state = claims.get("state")
        return int(claims["seq"]), str(claims["hash"]), str(state) if state is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSignature("checkpoint lacks seq or hash") from exc
