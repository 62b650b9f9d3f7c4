"""The long-lived collaborators of the use cases, built once per process by the app factory.

Use cases take this object (and ``caller`` and ``now``) as arguments; nothing below the
views reads Flask's globals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from consent_service.core import audit_chain as audit
from consent_service.core import pseudonyms
from consent_service.core.caller import Caller, Via
from consent_service.core.engine import DecisionEngine
from consent_service.core.keys import SigningKeys, load_secret
from consent_service.core.policy import PolicyBase
from consent_service.errors import Unauthorized
from consent_service.services import audit_rows
from consent_service.services.rule_cache import RuleCache
from consent_service.services.subject_keys import SubjectRef, Subjects
from consent_service.storage import audit as audit_store
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import organizations as organization_store
from consent_service.storage import person as person_store
from consent_service.storage import users as user_store
from consent_service.storage.db import make_engine, read_snapshot, session_factory, write
from consent_service.storage.urls import database_url

EXTENSION = "consent_service"  # the key of the container in ``flask.Flask.extensions``
PERSON_CODE_PREFIX = "person-code:"  # the client id of a person signed in with an access code


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
    access_code_key: bytes = field(init=False)  # keyed hashes of the person's access codes
    subjects: Subjects = field(init=False)

    @classmethod
    def build(cls, settings: dict[str, Any], instance: Path) -> Services:
        """The container of one process: its database engine, policies, keys and secret."""
        engine = make_engine(
            database_url(settings, instance),
            busy_timeout_ms=settings["SQLITE_BUSY_TIMEOUT_MS"],
            sqlite_mmap_mb=settings["SQLITE_MMAP_MB"],
            statement_timeout_ms=settings["PG_STATEMENT_TIMEOUT_MS"],
            pool_size=settings["DB_POOL_SIZE"],
            schema=settings["DB_SCHEMA"],
        )
        return cls(
            sessions=session_factory(engine),
            policy=PolicyBase(settings["POLICIES_DIR"]),
            keys=SigningKeys.load(settings["SIGNING_KEYS"], instance),
            secret=load_secret(settings["SECRET_KEY"], instance),
            settings=settings,
        )

    def __post_init__(self) -> None:
        self.engine = DecisionEngine(self.policy)
        stale = bool(self.settings.get("TESTING_ONLY_STALE_RULE_CACHE", False))
        if stale:
            logging.getLogger(__name__).warning(
                "TESTING_ONLY_STALE_RULE_CACHE is set: this instance serves STALE decisions (tests only)"
            )
        self.rules = RuleCache(self.policy, testing_only_ignore_versions=stale)
        self.pseudonym_key = pseudonyms.derive_key(self.secret, "subject")
        self.audit_key = pseudonyms.derive_key(self.secret, "audit-chain")
        self.rows_key = pseudonyms.derive_key(self.secret, "audit-rows")
        self.state_key = pseudonyms.derive_key(self.secret, "audit-state")
        bound_rows.forget_at_transaction_end(self.sessions)
        self.idempotency_key = pseudonyms.derive_key(self.secret, "idempotency")
        self.access_code_key = pseudonyms.derive_key(self.secret, "person-access-code")
        self.subjects = Subjects(self.pseudonym_key)

    @contextmanager
    def reading(self, caller: Caller | None) -> Iterator[Session]:
        """A read-only snapshot in which ``caller`` is first re-checked (``require_active``)."""
        with read_snapshot(self.sessions) as session:
            require_active(session, caller)
            yield session

    @contextmanager
    def writing(self, caller: Caller | None) -> Iterator[Session]:
        """The unit of work (commit it once), ``caller`` re-checked inside it first."""
        with write(self.sessions) as session:
            require_active(session, caller)
            yield session

    def check(self, caller: Caller | None) -> None:
        """Re-check ``caller`` alone, for a use case that reads nothing else from the database."""
        with self.reading(caller):
            pass

    def subject(self, session: Session, *, system: str, value: str) -> SubjectRef:
        """The identifier's normalized keys (``services.subjects``): the only way to a subject key."""
        return self.subjects.ref(session, system=system, value=value)

    def append_audit(
        self,
        session: Session,
        *,
        at: datetime,
        tag: str,
        caller: Caller | None,
        object_id: str | None,
        payload: dict[str, Any],
    ) -> int:
        """Append to the audit chain inside the caller's unit of work (call it last, then commit).

        The rows the unit of work marked (``storage.audit_rows.added`` / ``changing``) are bound
        to this entry: their digests go into the payload's ``rows``.
        """
        payload = {**payload, audit_rows.ROWS: audit_rows.pending(self.rows_key, session)}
        return audit_store.append(
            session,
            hasher=self._hash,
            at=at,
            tag=tag,
            actor_org=caller.organization if caller else None,
            actor_client=caller.client_id if caller else None,
            object_id=object_id,
            payload=payload,
        )

    def append_audit_many(
        self,
        session: Session,
        *,
        caller: Caller | None,
        entries: list[tuple[datetime, str, str | None, dict[str, Any]]],
    ) -> int:
        """Append ``(at, tag, object_id, payload)`` entries, linked in order, in the caller's unit of work.

        Each payload carries the namings of its rows already (``audit_rows.inserted``); one
        without them gets an empty list, so every entry written now says which rows it binds.
        """
        return audit_store.append_many(
            session,
            hasher=self._hash,
            entries=[
                {
                    "at": at,
                    "tag": tag,
                    "actor_org": caller.organization if caller else None,
                    "actor_client": caller.client_id if caller else None,
                    "object_id": object_id,
                    "payload": payload if audit_rows.ROWS in payload else {**payload, audit_rows.ROWS: []},
                }
                for at, tag, object_id, payload in entries
            ],
        )

    def append_audit_serialized(
        self,
        session: Session,
        *,
        caller: Caller | None,
        entries: list[tuple[datetime, str, str | None, str]],
    ) -> int:
        """``append_audit_many`` for payloads given as their ``audit_chain.canonical_text`` (each
        carrying its ``rows`` namings): serialized once for the link and the stored row."""
        actor = {
            "actor_org": caller.organization if caller else None,
            "actor_client": caller.client_id if caller else None,
        }
        return audit_store.append_serialized(
            session,
            hasher=self._hash_serialized,
            entries=[
                {"at": at, "tag": tag, "object_id": object_id, "payload": payload, **actor}
                for at, tag, object_id, payload in entries
            ],
        )

    def _hash_serialized(self, **fields: Any) -> str:
        return audit.link_hash_serialized(self.audit_key, **fields)

    def _hash(self, **fields: Any) -> str:
        return audit.link_hash(self.audit_key, **fields)


def require_active(session: Session, caller: Caller | None) -> None:
    """Refuse (401) a caller whose client or account was disabled after its token or sign-in.

    Every use case opens its snapshot through ``Services.reading`` / ``writing``, so the check
    and what the use case reads are one consistent view: a client disabled a moment ago is
    refused by the very transaction that would have served it. ``None`` is the operator on the
    service's own machine (the command line), as is ``Via.OPERATOR``.
    """
    if caller is None or caller.via is Via.OPERATOR:
        return
    if caller.via is Via.TOKEN:
        if not organization_store.client_is_active(session, caller.client_id, caller.organization):
            raise Unauthorized("The access token's client is disabled, unknown or of another organization.")
        return
    if caller.via is Via.SUBJECT:
        # ``person-code:<id>``: the access code the person signed in with, still current.
        if not person_store.is_current(session, caller.client_id.removeprefix(PERSON_CODE_PREFIX)):
            raise Unauthorized("This access code was replaced or is unknown; enter your current code.")
        return
    user = user_store.get(session, caller.client_id.removeprefix("user:"))
    if user is None or user.disabled_at is not None or user.organization_id != caller.organization:
        raise Unauthorized("This account is disabled or no longer of this organization; sign in again.")


def current() -> Services:
    """The container of the app serving this request (the web pages' and views' way to it)."""
    from flask import current_app  # only when called inside a request: the module loads no framework

    return current_app.extensions[EXTENSION]
