"""The long-lived collaborators of the use cases, built once per process by the app factory.

Use cases take this object (and ``caller`` and ``now``) as arguments; nothing below the
views reads Flask's globals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..storage import audit as audit_store
from ..storage import audit_rows as bound_rows
from . import audit, audit_rows, pseudonyms
from .caller import Caller
from .engine import DecisionEngine
from .keys import SigningKeys
from .policy import PolicyBase
from .rule_cache import RuleCache
from .subjects import SubjectRef, Subjects


@dataclass
class Services:
    sessions: sessionmaker[Session]
    policy: PolicyBase
    keys: SigningKeys
    secret: bytes
    settings: dict[str, Any]
    engine: DecisionEngine = field(init=False)
    rules: RuleCache = field(init=False)
    pseudonym_key: bytes = field(init=False)
    audit_key: bytes = field(init=False)
    rows_key: bytes = field(init=False)  # digests of the rows audit entries bind (audit_rows)
    state_key: bytes = field(init=False)  # the secret tally of those digests (never stored)
    idempotency_key: bytes = field(init=False)
    subjects: Subjects = field(init=False)

    def __post_init__(self) -> None:
        self.engine = DecisionEngine(self.policy)
        stale = bool(self.settings.get("TESTING_ONLY_STALE_RULE_CACHE", False))
        if stale:
            logging.getLogger(__name__).warning(
                "TESTING_ONLY_STALE_RULE_CACHE is set: this instance serves STALE decisions (tests only)")
        self.rules = RuleCache(self.policy, testing_only_ignore_versions=stale)
        self.pseudonym_key = pseudonyms.derive_key(self.secret, "subject")
        self.audit_key = pseudonyms.derive_key(self.secret, "audit-chain")
        self.rows_key = pseudonyms.derive_key(self.secret, "audit-rows")
        self.state_key = pseudonyms.derive_key(self.secret, "audit-state")
        bound_rows.forget_at_transaction_end(self.sessions)
        self.idempotency_key = pseudonyms.derive_key(self.secret, "idempotency")
        self.subjects = Subjects(self.pseudonym_key)

    def subject(self, session: Session, *, system: str, value: str) -> SubjectRef:
        """The identifier's normalized keys (``domain.subjects``): the only way to a subject key."""
        return self.subjects.ref(session, system=system, value=value)

    def append_audit(self, session: Session, *, at: datetime, tag: str, caller: Caller | None,
                     object_id: str | None, payload: dict[str, Any]) -> int:
        """Append to the audit chain inside the caller's unit of work (call it last, then commit).

        The rows the unit of work marked (``storage.audit_rows.added`` / ``changing``) are bound
        to this entry: their digests go into the payload's ``rows``.
        """
        payload = {**payload, audit_rows.ROWS: audit_rows.pending(self.rows_key, session)}
        return audit_store.append(
            session, hasher=self._hash, at=at, tag=tag,
            actor_org=caller.organization if caller else None,
            actor_client=caller.client_id if caller else None, object_id=object_id, payload=payload)

    def append_audit_many(self, session: Session, *, caller: Caller | None,
                          entries: list[tuple[datetime, str, str | None, dict[str, Any]]]) -> int:
        """Append ``(at, tag, object_id, payload)`` entries, linked in order, in the caller's unit of work.

        Each payload carries the namings of its rows already (``audit_rows.inserted``); one
        without them gets an empty list, so every entry written now says which rows it binds.
        """
        return audit_store.append_many(session, hasher=self._hash, entries=[
            {"at": at, "tag": tag, "actor_org": caller.organization if caller else None,
             "actor_client": caller.client_id if caller else None, "object_id": object_id,
             "payload": payload if audit_rows.ROWS in payload else {**payload, audit_rows.ROWS: []}}
            for at, tag, object_id, payload in entries])

    def _hash(self, **fields: Any) -> str:
        return audit.link_hash(self.audit_key, **fields)
