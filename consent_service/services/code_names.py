"""Plain-language names for the pages a person reads (the access report, the consent receipt):
the vocabulary's labels of purpose and data category codes, and the names of organizations and
communities, each falling back to the code itself when it has no name.
"""

from __future__ import annotations

from typing import Any

from consent_service.container import Services
from consent_service.storage import communities as community_store
from consent_service.storage import organizations as organization_store


def labels(services: Services, *, purposes: set[str], categories: set[str]) -> dict[str, dict[str, str]]:
    vocabulary = services.policy.vocabulary

    def label(terms: dict[str, Any], code: str) -> str:
        return terms[code].label if code in terms else code

    return {
        "purposes": {c: label(vocabulary.purposes, c) for c in sorted(purposes)},
        "data_categories": {c: label(vocabulary.data_categories, c) for c in sorted(categories)},
    }


def names(session: Any, *, organizations: set[str], communities: set[str]) -> dict[str, dict[str, str]]:
    orgs = {}
    for org_id in sorted(organizations):
        org = organization_store.get_organization(session, org_id)
        orgs[org_id] = org.name if org else org_id
    comms = {}
    for community_id in sorted(communities):
        community = community_store.get(session, community_id)
        comms[community_id] = community.name if community else community_id
    return {"organizations": orgs, "communities": comms}
