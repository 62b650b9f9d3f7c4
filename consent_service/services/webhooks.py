"""An organization's change-event webhooks (``/v1/webhooks``) and the events not yet
acknowledged: its own, and a community's (its stewards)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from consent_service.container import Services
from consent_service.core.caller import Caller
from consent_service.core.events import MAX_WEBHOOKS_PER_ORGANIZATION
from consent_service.core.wire import AuditTag, ManagementAction
from consent_service.errors import NotFound, ValidationFailed
from consent_service.schemas.webhooks import webhook_audit
from consent_service.services.events import url_refusal
from consent_service.services.stewards import require_steward
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import events as store
from consent_service.storage.models import OutboxEvent, Webhook


@dataclass(frozen=True)
class WebhookRecord:
    id: str
    url: str
    kinds: list[str]
    created_at: datetime

    @classmethod
    def of(cls, hook: Webhook) -> WebhookRecord:
        return cls(id=hook.id, url=hook.url, kinds=list(hook.kinds), created_at=hook.created_at)


@dataclass(frozen=True)
class WebhookList:
    webhooks: list[WebhookRecord]


@dataclass(frozen=True)
class PendingEvent:
    id: str
    kind: str
    organization: str
    webhook_id: str
    occurred_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None

    @classmethod
    def of(cls, row: OutboxEvent) -> PendingEvent:
        return cls(
            id=row.id,
            kind=row.kind,
            organization=row.organization_id,
            webhook_id=row.webhook_id,
            occurred_at=row.occurred_at,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_status=row.last_status,
            last_error=row.last_error,
        )


@dataclass(frozen=True)
class Backlog:
    total: int
    events: list[PendingEvent]


def register(
    services: Services, *, caller: Caller, url: str, kinds: list[str], now: datetime
) -> WebhookRecord:
    """Register a webhook of the caller's organization; 400 naming ``url`` for one we will not call."""
    refusal = url_refusal(url, services.settings)
    if refusal is not None:
        raise ValidationFailed("The webhook URL is not acceptable.", details={"url": [refusal]})
    with services.writing(caller) as session:
        if len(store.webhooks_of(session, caller.organization)) >= MAX_WEBHOOKS_PER_ORGANIZATION:
            raise ValidationFailed(
                "Too many webhooks.",
                details={"url": [f"an organization has at most {MAX_WEBHOOKS_PER_ORGANIZATION} webhooks"]},
            )
        hook = Webhook(
            id=str(uuid.uuid4()),
            organization_id=caller.organization,
            url=url,
            kinds=list(dict.fromkeys(kinds)),
            created_at=now,
            created_by_client=caller.client_id,
        )
        store.add(session, hook)
        bound_rows.added(session, Webhook, hook.id)
        record = WebhookRecord.of(hook)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.WEBHOOK_REGISTERED,
            caller=caller,
            object_id=hook.id,
            payload=webhook_audit.dump(record),
        )
        session.commit()
        return record


def list_webhooks(services: Services, *, caller: Caller) -> WebhookList:
    with services.reading(caller) as session:
        return WebhookList(
            webhooks=[WebhookRecord.of(h) for h in store.webhooks_of(session, caller.organization)]
        )


def delete(services: Services, *, caller: Caller, webhook_id: str, now: datetime) -> None:
    """Stop a webhook (its undelivered events are not sent); 404 unless the caller's own."""
    with services.writing(caller) as session:
        hook = store.webhook(session, webhook_id)
        if hook is None or hook.organization_id != caller.organization or hook.deleted_at is not None:
            raise NotFound("No such webhook.")
        bound_rows.changing(session, Webhook, hook.id)
        hook.deleted_at = now
        session.flush()
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.WEBHOOK_DELETED,
            caller=caller,
            object_id=hook.id,
            payload=webhook_audit.dump(WebhookRecord.of(hook)),
        )
        session.commit()


def backlog(services: Services, *, caller: Caller, limit: int) -> Backlog:
    """The caller's organization's events not yet acknowledged, oldest first."""
    with services.reading(caller) as session:
        rows = store.backlog(session, organization=caller.organization, limit=limit)
        return Backlog(
            total=store.backlog_count(session, organization=caller.organization),
            events=[PendingEvent.of(r) for r in rows],
        )


def community_backlog(services: Services, *, caller: Caller, community_id: str, limit: int) -> Backlog:
    """The events of the community's changes not yet acknowledged by their receivers (its stewards)."""
    with services.reading(caller) as session:
        require_steward(
            session,
            services,
            caller=caller,
            community_id=community_id,
            action=ManagementAction.DECISIONS_LIST,
        )
        rows = store.backlog(session, community=community_id, limit=limit)
        return Backlog(
            total=store.backlog_count(session, community=community_id),
            events=[PendingEvent.of(r) for r in rows],
        )
