"""Checks that named codes exist: vocabulary codes, organizations, communities.

A name that does not exist is ``unknown_code`` (400), distinct from a malformed body, and
``details`` says which field named what.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from consent_service.core.policy import PolicyBase
from consent_service.core.wire import WILDCARD
from consent_service.errors import UnknownCode
from consent_service.storage import communities as community_store
from consent_service.storage import organizations as organization_store


def _problems(
    field: str, names: Iterable[str], known: Iterable[str], what: str, *, wildcard: bool = False
) -> dict[str, list[str]]:
    known_set = set(known) | ({WILDCARD} if wildcard else set())
    missing = [name for name in dict.fromkeys(names) if name not in known_set]
    return {field: [f"unknown {what}: {name}" for name in missing]} if missing else {}


def check(
    session: Session | None,
    policy: PolicyBase,
    *,
    purposes: Iterable[str] = (),
    data_categories: Iterable[str] = (),
    organizations: dict[str, Iterable[str]] | None = None,
    communities: Iterable[str] = (),
    purposes_field: str = "purposes",
    wildcards: frozenset[str] = frozenset(),
) -> None:
    """Raise ``UnknownCode`` naming every unknown code; ``organizations`` maps field -> ids.

    ``purposes_field`` is the request field the purposes came from (authorize has one ``purpose``).
    ``wildcards`` names the fields where ``*`` is allowed (a rule's categories and requesters);
    anywhere else ``*`` is unknown: a rule whose purpose were ``*`` would silently match nothing.
    """
    details: dict[str, list[str]] = {}
    details |= _problems(purposes_field, purposes, policy.vocabulary.purposes, "purpose")
    details |= _problems(
        "data_categories",
        data_categories,
        policy.vocabulary.data_categories,
        "data category",
        wildcard="data_categories" in wildcards,
    )
    if session is not None:
        for field, ids in (organizations or {}).items():
            ids = list(ids)
            details |= _problems(
                field,
                ids,
                organization_store.existing_organizations(session, ids),
                "organization",
                wildcard=field in wildcards,
            )
        communities = list(communities)
        details |= _problems(
            "communities", communities, community_store.existing(session, communities), "community"
        )
    if details:
        raise UnknownCode("The request names codes that do not exist.", details=details)
