"""People who sign in to the web pages (``user_account``). Repositories never commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from consent_service.storage import audit_rows
from consent_service.storage.models import UserAccount


def get(session: Session, user_id: str) -> UserAccount | None:
    return session.get(UserAccount, user_id)


def by_email(session: Session, email: str) -> UserAccount | None:
    """Emails are compared without regard to case (they are stored lower-cased)."""
    return session.scalars(select(UserAccount).where(func.lower(UserAccount.email) == email.lower())).first()


def add(session: Session, user: UserAccount) -> None:
    session.add(user)
    session.flush()
    audit_rows.added_rows(session, user)


def listed(session: Session, organization: str | None = None) -> list[UserAccount]:
    query = select(UserAccount).order_by(UserAccount.organization_id, UserAccount.email)
    if organization:
        query = query.where(UserAccount.organization_id == organization)
    return list(session.scalars(query))


def count_failure(session: Session, user_id: str) -> int:
    """Add one failed sign-in atomically (two wrong passwords at once both count); the new count."""
    audit_rows.changing(session, UserAccount, user_id)
    session.execute(
        update(UserAccount)
        .where(UserAccount.id == user_id)
        .values(failed_sign_ins=UserAccount.failed_sign_ins + 1)
    )
    return int(session.scalar(select(UserAccount.failed_sign_ins).where(UserAccount.id == user_id)) or 0)


def lock(session: Session, user_id: str, *, until: datetime) -> None:
    audit_rows.changing(session, UserAccount, user_id)
    session.execute(
        update(UserAccount).where(UserAccount.id == user_id).values(locked_until=until, failed_sign_ins=0)
    )


def clear_failures(session: Session, user_id: str) -> None:
    audit_rows.changing(session, UserAccount, user_id)
    session.execute(
        update(UserAccount).where(UserAccount.id == user_id).values(failed_sign_ins=0, locked_until=None)
    )


def bump_session_epoch(session: Session, user_id: str) -> None:
    audit_rows.changing(session, UserAccount, user_id)
    session.execute(
        update(UserAccount)
        .where(UserAccount.id == user_id)
        .values(session_epoch=UserAccount.session_epoch + 1)
    )


def by_idp(session: Session, issuer: str, subject: str) -> UserAccount | None:
    """The person who signs in with this provider account: issuer and subject together, the
    only pair OpenID Connect promises is stable and unique (never the email)."""
    return session.scalars(
        select(UserAccount).where(UserAccount.idp_issuer == issuer, UserAccount.idp_subject == subject)
    ).first()
