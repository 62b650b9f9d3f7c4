"""Issuing the person's access codes, inside the transaction of the write that hands one out.

Shared by recording a consent (``services.consents``: every consent's receipt carries a code)
and by a worker's new code (``services.person.rotate``). The code itself is returned once and
never stored: only its keyed hash (``core.access_codes``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from consent_service.container import Services
from consent_service.core import access_codes
from consent_service.storage import person as store
from consent_service.storage.models import PersonAccessCode


def issue(
    services: Services,
    session: Any,
    *,
    subject_key: str,
    organization: str,
    consent_id: str,
    whole_history: bool,
    created_by: str,
    now: datetime,
) -> str:
    """A new code for the person at this organization (their other codes stay); the bare code."""
    code = access_codes.new_code()
    store.add(
        session,
        PersonAccessCode(
            id=str(uuid.uuid4()),
            code_hash=access_codes.digest(services.access_code_key, code),
            subject_key=subject_key,
            organization_id=organization,
            consent_id=consent_id,
            whole_history=whole_history,
            created_at=now,
            created_by=created_by,
        ),
    )
    return code
