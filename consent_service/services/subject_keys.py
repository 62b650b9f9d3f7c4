"""Who a subject identifier names: its normalized spelling and the keys to look it up by.

The container builds one :class:`Subjects` per process (``services.subjects``); the use cases
of the subjects resource are in :mod:`consent_service.services.subjects`.

* **Subject systems** are remembered once read: a system is never changed or removed, so a
  worker may keep what it has read (a miss is read again from the database).
* **One spelling** (contract v1.1 section 5): every key comes from ``pseudonyms.subject_key``
  (which normalizes) with the system's ``case_insensitive`` flag: :meth:`Subjects.ref`.
* **Subjects recorded before normalization** (v1 hashed the identifier as sent, and the raw
  identifier was never kept, so their keys cannot be recomputed): every lookup also tries the
  key of the identifier exactly as given, when it differs from the normalized one
  (``SubjectRef.keys``), so nothing recorded under that spelling is lost until it is re-keyed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from consent_service.core import pseudonyms
from consent_service.errors import UnknownCode, ValidationFailed
from consent_service.storage import subjects as store
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
    """A registered system as the resolver keeps it (it never changes)."""

    system: str
    organization: str | None
    shared: bool
    case_insensitive: bool


def _entry(row: SubjectSystem) -> SystemEntry:
    return SystemEntry(row.system, row.organization_id, row.shared, row.case_insensitive)


def invalid_system(system: str) -> ValidationFailed:
    return ValidationFailed(
        "The subject's identifier system is not an absolute URI.",
        details={SYSTEM_FIELD: [pseudonyms.system_problem(system) or "invalid"]},
    )


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
        key, as_given = pseudonyms.keys(
            self._secret, system=normalized, value=norm_value, given_system=system, given_value=value
        )
        return SubjectRef(normalized, norm_value, key, None if as_given == key else as_given)

    def check_may_record(self, session: Session, *, organization: str, ref: SubjectRef) -> None:
        """400 ``unknown_code`` unless ``ref``'s system is shared or registered to ``organization``."""
        entry = self.system(session, ref.system)
        if entry is None or not (entry.shared or entry.organization == organization):
            raise UnknownCode(
                "Consents are recorded only under a subject system registered to your "
                "organization, or shared.",
                details={SYSTEM_FIELD: [f"not a subject system of yours: {ref.system}"]},
            )
