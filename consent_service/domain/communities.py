"""Communities and their governance: stewards, collective rules, approvals, what they may see."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import Conflict
from ..storage import communities as store
from ..storage.db import write
from ..storage.models import Community, CommunitySteward
from . import codes
from .caller import Caller
from .services import Services
from .wire import AuditTag


def create_community(services: Services, *, caller: Caller, id: str, name: str, stewards: list[str],
                     now: datetime) -> dict[str, Any]:
    stewards = sorted(set(stewards))
    with write(services.sessions) as session:
        if store.get(session, id) is not None:
            raise Conflict(f"Community {id} already exists.")
        codes.check(session, services.policy, organizations={"stewards": stewards})
        community = Community(id=id, name=name, policy_version=1, created_at=now)
        store.add(session, community)
        store.add(session, *(CommunitySteward(community_id=id, organization_id=org) for org in stewards))
        services.append_audit(session, at=now, tag=AuditTag.COMMUNITY_CREATED, caller=caller, object_id=id,
                              payload={"name": name, "stewards": stewards})
        session.commit()
        return {"id": id, "name": name, "stewards": stewards, "policy_version": 1, "created_at": now}
