"""Subject systems, and re-keying subjects recorded before identifiers were normalized."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from consent_service.storage import audit_rows
from consent_service.storage.models import (
    Consent,
    Membership,
    PersonAccessCode,
    SubjectKeyAlias,
    SubjectSystem,
)


def get_system(session: Session, system: str) -> SubjectSystem | None:
    return session.get(SubjectSystem, system)


def list_systems(session: Session) -> list[SubjectSystem]:
    return list(session.scalars(select(SubjectSystem).order_by(SubjectSystem.system)))


def add_system(session: Session, row: SubjectSystem) -> None:
    session.add(row)
    session.flush()
    audit_rows.added_rows(session, row)


def consents_under(session: Session, keys: Iterable[str], *, recorded_by: str) -> list[str]:
    return list(
        session.scalars(
            select(Consent.id).where(Consent.subject_key.in_(list(keys)), Consent.recorded_by == recorded_by)
        )
    )


def old_keys(session: Session, new_key: str) -> list[str]:
    return list(session.scalars(select(SubjectKeyAlias.old_key).where(SubjectKeyAlias.new_key == new_key)))


def rekey(session: Session, *, old_key: str, new_key: str, by: str, at: datetime) -> dict[str, list[str]]:
    """Move every consent and membership of ``old_key`` to ``new_key`` and remember the alias.

    A membership the subject already has under the new key is kept (the old one goes).
    Returns the ids of the consents moved and the communities whose memberships moved.
    """
    consents = list(session.scalars(select(Consent.id).where(Consent.subject_key == old_key)))
    for consent_id in consents:  # the audit entry binds each row as it was and as it becomes
        audit_rows.changing(session, Consent, consent_id)
    session.execute(update(Consent).where(Consent.subject_key == old_key).values(subject_key=new_key))
    have = set(session.scalars(select(Membership.community_id).where(Membership.subject_key == new_key)))
    moving = list(session.scalars(select(Membership).where(Membership.subject_key == old_key)))
    copies = [
        {c.name: getattr(m, c.name) for c in Membership.__table__.columns if c.name != "subject_key"}
        for m in moving
    ]
    for m in moving:
        audit_rows.changing(session, Membership, old_key, m.community_id)
    for m in moving:
        session.expunge(m)
    session.execute(delete(Membership).where(Membership.subject_key == old_key))
    codes = list(session.scalars(select(PersonAccessCode.id).where(PersonAccessCode.subject_key == old_key)))
    for code_id in codes:  # the person's access codes follow them to the new key
        audit_rows.changing(session, PersonAccessCode, code_id)
    session.execute(
        update(PersonAccessCode).where(PersonAccessCode.subject_key == old_key).values(subject_key=new_key)
    )
    added: list[Membership | SubjectKeyAlias] = [
        Membership(subject_key=new_key, **values) for values in copies if values["community_id"] not in have
    ]
    if session.get(SubjectKeyAlias, old_key) is None:
        added.append(SubjectKeyAlias(old_key=old_key, new_key=new_key, at=at, by_organization=by))
    session.add_all(added)
    session.flush()
    audit_rows.added_rows(session, *added)
    return {"consents": sorted(consents), "communities": sorted(values["community_id"] for values in copies)}
