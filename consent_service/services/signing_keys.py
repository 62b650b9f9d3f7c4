"""The signing keys' use case: rotating the key (``consent-service keys rotate``), recorded in the
audit chain.

The new key goes first in the instance folder's key file; the old ones stay, so everything
signed before still verifies. The ``key:rotated`` entry names the new key id and the ids kept
(key ids are public: ``/.well-known/jwks.json`` lists them), never key material. The file is
replaced while the entry's transaction is open and put back if the commit fails, so there is
no rotation without its entry and no entry without its rotation.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from consent_service.container import Services
from consent_service.core.keys import staged_rotation
from consent_service.core.wire import AuditTag
from consent_service.errors import Conflict


def rotate(services: Services, *, instance: Path, now: datetime) -> str:
    """Rotate the instance folder's signing key; return the new key id."""
    if services.settings.get("SIGNING_KEYS"):
        raise Conflict(
            "The signing keys come from CONSENT_SIGNING_KEYS, not the instance folder: "
            "put a new private key first in that key set yourself, then restart."
        )
    with staged_rotation(instance) as staged, services.writing(None) as session:
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.KEY_ROTATED,
            caller=None,
            object_id=staged.kid,
            payload={"kept": staged.previous},
        )
        staged.apply()
        session.commit()
    return staged.kid
