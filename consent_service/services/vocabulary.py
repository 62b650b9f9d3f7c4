"""GET /v1/vocabulary: the purposes and data categories this deployment knows (policies/vocabulary.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.vocabulary import Term


@dataclass(frozen=True)
class Terms:
    purposes: tuple[Term, ...]
    data_categories: tuple[Term, ...]


def terms(services: Services, *, caller: Caller | None) -> Terms:
    """Every code, in the file's order; any active client may read them."""
    services.check(caller)
    vocabulary = services.policy.vocabulary
    return Terms(
        purposes=tuple(vocabulary.purposes.values()),
        data_categories=tuple(vocabulary.data_categories.values()),
    )
