"""Consents a release changed the meaning of, listed for the organization that recorded them.

Migration 0005 lists every active consent that named ``demographic`` (which until then also
covered nationality and Indigenous identity) and every active consent granting a protected
purpose (which the deployment policy no longer honours). The recording organization reads its
list so the person can be asked again; nothing is changed in the consent itself. The listing
is recorded in the audit chain by :func:`record_pending` (run by ``consent-service db upgrade``;
the migration cannot, as it does not hold the chain's key). See docs/decisions.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.wire import AuditTag
from consent_service.schemas.consents import review_listed_audit
from consent_service.storage.db import detached
from consent_service.storage.models import ConsentReview

WHY = {
    "sensitive_categories": "The consent named demographic, which until this release also covered "
    "nationality and Indigenous identity; these now stand alone and are covered "
    "only when named. Ask the person whether they agree to share them.",
    "protected_purpose": "The consent grants a protected purpose that this deployment does not allow; "
    "it is no longer honoured.",
}


@dataclass(frozen=True)
class ReviewItem:
    """A consent listed for review, with why the person should be asked again.

    The row's fields read through (``item.consent_id``, ``item.codes``); ``version`` is the
    listed consent version.
    """

    row: ConsentReview

    @property
    def why(self) -> str:
        return WHY.get(self.row.reason, "")

    @property
    def version(self) -> int:
        return self.row.consent_version

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in ConsentReview.model_fields:  # copy/pickle probes
            raise AttributeError(name)
        return getattr(self.row, name)


def record_pending(services: Services, *, now: datetime) -> int:
    """Write one audit entry per organization for listings not yet in the chain; how many consents."""
    with services.writing(None) as session:
        rows = session.scalars(
            select(ConsentReview)
            .where(col(ConsentReview.audit_seq).is_(None))
            .order_by(ConsentReview.recorded_by, ConsentReview.consent_id, ConsentReview.reason)
            .with_for_update()
        ).all()
        if not rows:
            session.rollback()
            return 0
        by_org: dict[str, list[ConsentReview]] = {}
        for row in rows:
            by_org.setdefault(row.recorded_by, []).append(row)
        for organization, listed in by_org.items():
            seq = services.append_audit(
                session,
                at=now,
                tag=AuditTag.CONSENTS_LISTED_FOR_REVIEW,
                caller=None,
                object_id=organization,
                payload={
                    "organization": organization,
                    "migration": "0005",
                    "consents": review_listed_audit.dump([ReviewItem(r) for r in listed]),
                },
            )
            session.execute(
                update(ConsentReview)
                .where(col(ConsentReview.recorded_by) == organization, col(ConsentReview.audit_seq).is_(None))
                .values(audit_seq=seq)
            )
        session.commit()
        return len(rows)


def list_for(
    services: Services, *, caller: Caller | None, organization: str | None = None
) -> list[ReviewItem]:
    """The caller's organization's listed consents (admin, or the CLI with ``caller=None``: any)."""
    if caller is not None and not caller.is_admin:
        organization = caller.organization
    query = select(ConsentReview).order_by(
        ConsentReview.recorded_by, ConsentReview.consent_id, ConsentReview.reason
    )
    if organization is not None:
        query = query.where(col(ConsentReview.recorded_by) == organization)
    with services.reading(caller) as session:
        return [ReviewItem(detached(row)) for row in session.scalars(query)]
