"""Who a subject identifier names: subject systems, normalized spellings, keys old and new.

* **Subject systems** (contract v1.1 section 4): an organization records consents only under
  a system registered to it or registered as shared; any other is 400 ``unknown_code``
  naming ``subject.system``. Registering is admin's; a system is never changed or removed,
  so a worker may keep what it has read (a miss is read again from the database).
* **One spelling** (section 5): every key comes from ``pseudonyms.subject_key`` (which
  normalizes) with the system's ``case_insensitive`` flag: :meth:`Subjects.ref`.
* **Subjects recorded before normalization** (v1 hashed the identifier as sent, and the raw
  identifier was never kept, so their keys cannot be recomputed): every lookup also tries the
  key of the identifier exactly as given, when it differs from the normalized one
  (``SubjectRef.keys``), so nothing recorded under that spelling is lost. The recording
  organization re-keys such a subject by sending that spelling to
  ``POST /v1/subjects/rekey`` (audited): its consents and memberships move to the normalized
  key, and its decisions are found through the alias left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent_service.core import pseudonyms
from consent_service.core.caller import Caller
from consent_service.core.wire import AuditTag
from consent_service.errors import Conflict, Forbidden, NotFound, UnknownCode, ValidationFailed
from consent_service.storage import organizations as organization_store
from consent_service.storage import subjects as store
from consent_service.storage.db import read_snapshot, write
from consent_service.storage.models import SubjectSystem

SYSTEM_FIELD = "subject.system"


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """A subject identifier resolved: its normalized spelling and the keys to look it up by."""

    system: str
    value: str
    key: str  # of the normalized spelling: every new record is stored under it
    as_given: str | None = None  # of the spelling as sent, when different (subjects recorded by v1)

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,) if self.as_given is None else (self.key, self.as_given)


@dataclass(frozen=True, slots=True)
class SystemEntry:
    system: str
    organization: str | None
    shared: bool
    case_insensitive: bool

    def as_dict(self) -> dict[str, Any]:
        return {"system": self.system, "organization": self.organization, "shared": self.shared,
                "case_insensitive": self.case_insensitive}


def _entry(row: SubjectSystem) -> SystemEntry:
    return SystemEntry(row.system, row.organization_id, row.shared, row.case_insensitive)


def invalid_system(system: str) -> ValidationFailed:
    return ValidationFailed("The subject's identifier system is not an absolute URI.",
                            details={SYSTEM_FIELD: [pseudonyms.system_problem(system) or "invalid"]})


class Subjects:
    """Resolves identifiers to keys; remembers the systems it has read (they never change)."""

    def __init__(self, pseudonym_key: bytes) -> None:
        self._secret = pseudonym_key
        self._systems: dict[str, SystemEntry] = {}

    def system(self, session: Session, system: str) -> SystemEntry | None:
        """The registered system of that (normalized) name, or None."""
        found = self._systems.get(system)
        if found is None:
            row = store.get_system(session, system)
            if row is None:
                return None
            found = self._systems[system] = _entry(row)
        return found

    def ref(self, session: Session, *, system: str, value: str) -> SubjectRef:
        """The identifier's keys. An invalid system is a 400 naming ``subject.system``."""
        if pseudonyms.system_problem(system):
            raise invalid_system(system)
        normalized = pseudonyms.normalize_system(system)
        entry = self.system(session, normalized)
        insensitive = entry is not None and entry.case_insensitive
        norm_value = pseudonyms.normalize_value(value, case_insensitive=insensitive)
        key = pseudonyms.subject_key(self._secret, system=normalized, value=norm_value)
        as_given = pseudonyms.key_as_given(self._secret, system=system, value=value)
        return SubjectRef(normalized, norm_value, key, None if as_given == key else as_given)

    def check_may_record(self, session: Session, *, organization: str, ref: SubjectRef) -> None:
        """400 ``unknown_code`` unless ``ref``'s system is shared or registered to ``organization``."""
        entry = self.system(session, ref.system)
        if entry is None or not (entry.shared or entry.organization == organization):
            raise UnknownCode("Consents are recorded only under a subject system registered to your "
                              "organization, or shared.",
                              details={SYSTEM_FIELD: [f"not a subject system of yours: {ref.system}"]})


def register(services: Any, *, caller: Caller | None, system: str, organization: str | None, shared: bool,
             case_insensitive: bool, now: datetime) -> dict[str, Any]:
    if caller is not None and not caller.is_admin:
        raise Forbidden("Only the service's administrators register subject systems.")
    if pseudonyms.system_problem(system):
        raise ValidationFailed("The identifier system is not an absolute URI.",
                               details={"system": [pseudonyms.system_problem(system) or "invalid"]})
    if shared == (organization is not None):
        raise ValidationFailed("Give either an organization or shared: true.",
                               details={"organization": ["give an organization, or shared: true (not both)"]})
    normalized = pseudonyms.normalize_system(system)
    with write(services.sessions) as session:
        if organization is not None and organization_store.get_organization(session, organization) is None:
            raise UnknownCode("No such organization.", details={"organization": [f"unknown: {organization}"]})
        if store.get_system(session, normalized) is not None:
            raise Conflict(f"The subject system {normalized} is registered already.")
        row = SubjectSystem(system=normalized, organization_id=organization, shared=shared,
                            case_insensitive=case_insensitive, created_at=now,
                            created_by=caller.organization if caller else "operator")
        try:
            store.add_system(session, row)
        except IntegrityError as exc:
            raise Conflict(f"The subject system {normalized} is registered already.") from exc
        entry = _entry(row)
        services.append_audit(session, at=now, tag=AuditTag.SUBJECT_SYSTEM_REGISTERED, caller=caller,
                              object_id=None, payload=entry.as_dict())
        session.commit()
    return {**entry.as_dict(), "created_at": now}


def list_systems(services: Any) -> list[dict[str, Any]]:
    with read_snapshot(services.sessions) as session:
        return [{**_entry(row).as_dict(), "created_at": row.created_at}
                for row in store.list_systems(session)]


def rekey(services: Any, *, caller: Caller, subject: dict[str, str], now: datetime) -> dict[str, Any]:
    """Move a subject recorded under the spelling sent (before normalization) to its normalized key.

    Only an organization that recorded a consent under that spelling may (404 otherwise, as for
    an unknown person); nothing to move (the spelling is already normalized) is also 404.
    """
    with write(services.sessions) as session:
        ref = services.subjects.ref(session, system=subject["system"], value=subject["value"])
        if ref.as_given is None or not store.consents_under(session, [ref.as_given],
                                                            recorded_by=caller.organization):
            raise NotFound("Your organization has recorded no consent of this person under this spelling.")
        moved = store.rekey(session, old_key=ref.as_given, new_key=ref.key, by=caller.organization, at=now)
        services.append_audit(session, at=now, tag=AuditTag.SUBJECT_REKEYED, caller=caller, object_id=None,
                              payload={"old_key": ref.as_given, "new_key": ref.key, **moved})
        session.commit()
    return {"pseudonym": ref.key, "previous_pseudonym": ref.as_given, **moved}
