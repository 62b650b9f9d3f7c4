"""Who may act for a community: its stewards, as Casbin says (``PolicyBase.may_manage``).

Every use case that reads or changes a community's governance (its settings, rules,
approvals, decisions about members, clients, the steward pages) starts with
:func:`require_steward`; every change starts with :func:`begin_change`, which also bumps
the community's policy version, so the very next decision anywhere sees the change.

OCAP: being the service's administrator grants nothing here; only the community's stewards
act for it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.wire import ManagementAction
from consent_service.errors import Forbidden, NotFound
from consent_service.storage import communities as store


def require_steward(
    session: Session, services: Services, *, caller: Caller, community_id: str, action: ManagementAction
) -> None:
    """404 for an unknown community; 403 unless Casbin says the caller's organization may ``action`` it.

    The caller's scope is the view's to check; this is the per-community half.
    """
    if store.get(session, community_id) is None:
        raise NotFound("No such community.")
    if not services.policy.may_manage(
        organization=caller.organization,
        community=community_id,
        action=str(action),
        stewards=store.stewards(session, community_id),
    ):
        raise Forbidden(f"Only a steward of community {community_id} may do this.")


def begin_change(
    session: Session, services: Services, *, caller: Caller, community_id: str, action: ManagementAction
) -> int:
    """Check the caller, then bump the community's policy version before reading what changes.

    The bump is an UPDATE of the community's row, so it also locks that row until commit:
    two changes to one community run one after the other, and the second reads the first's
    result (e.g. a rule retired twice at once gives one retirement and one 409). Returns the
    new version, which a rule change stamps on its rule (the rule cache reads changes by it).
    """
    require_steward(session, services, caller=caller, community_id=community_id, action=action)
    return store.bump_policy_version(session, community_id)
