"""agreement lapse notices (issue 15 item 1: the agreement.lapsed change event)

Revision ID: 0017
Revises: 0012
Create Date: 2026-11-28 19:40:00

One row per agreement lapse the event deliverer's sweep has turned into events: a review date
passed unrenewed (duty_id empty) or a duty overdue unmet (duty_id set), so each is told once.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

import consent_service.storage.types

revision: str = '0017'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agreement_lapse_notice',
    sa.Column('agreement_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('due_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('duty_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('noticed_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreement.id'], name=op.f('fk_agreement_lapse_notice_agreement_id_agreement')),
    sa.PrimaryKeyConstraint('agreement_id', 'due_at', 'duty_id', name=op.f('pk_agreement_lapse_notice'))
    )


def downgrade() -> None:
    op.drop_table('agreement_lapse_notice')
