"""Checks that named codes exist: vocabulary codes, organizations, communities.

A name that does not exist is ``unknown_code`` (400), distinct from a malformed body, and
``details`` says which field named what.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from ..errors import UnknownCode
from ..storage import communities as community_store
from ..storage import organizations as organization_store
from .policy import PolicyBase
from .wire import WILDCARD


def _problems(field: str, names: Iterable[str], known: Iterable[str], what: str) -> dict[str, list[str]]:
    known_set = set(known)
    missing = [name for name in dict.fromkeys(names) if name != WILDCARD and name not in known_set]
    return {field: [f"unknown {what}: {name}" for name in missing]} if missing else {}


def check(session: Session | None, policy: PolicyBase, *, purposes: Iterable[str] = (),
          data_categories: Iterable[str] = (), organizations: dict[str, Iterable[str]] | None = None,
          communities: Iterable[str] = ()) -> None:
    """Raise ``UnknownCode`` naming every unknown code; ``organizations`` maps field -> ids."""
    details: dict[str, list[str]] = {}
    details |= _problems("purposes", purposes, policy.vocabulary.purposes, "purpose")
    details |= _problems("data_categories", data_categories, policy.vocabulary.data_categories,
                         "data category")
    if session is not None:
        for field, ids in (organizations or {}).items():
            ids = list(ids)
            details |= _problems(field, ids, organization_store.existing_organizations(session, ids),
                                 "organization")
        communities = list(communities)
        details |= _problems("communities", communities, community_store.existing(session, communities),
                             "community")
    if details:
        raise UnknownCode("The request names codes that do not exist.", details=details)
