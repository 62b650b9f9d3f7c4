"""person access codes (issue 15 item 3: the person's own view)

Revision ID: 0013
Revises: 0007
Create Date: 2026-11-28 16:45:00

The codes a consent receipt carries, kept only as keyed hashes, and the hourly count of wrong
codes typed (services/person.py).
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

import consent_service.storage.types

revision: str = '0013'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('person_access_code',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subject_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('organization_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('consent_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('whole_history', sa.Boolean(), nullable=False),
    sa.Column('created_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('retired_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['consent_id'], ['consent.id'], name=op.f('fk_person_access_code_consent_id_consent')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_person_access_code_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person_access_code')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_person_access_code_code_hash'))
    )
    with op.batch_alter_table('person_access_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_access_code_consent_id'), ['consent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_person_access_code_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_person_access_code_subject_key'), ['subject_key'], unique=False)

    op.create_table('person_access_failures',
    sa.Column('hour', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('hour', name=op.f('pk_person_access_failures'))
    )


def downgrade() -> None:
    op.drop_table('person_access_failures')
    with op.batch_alter_table('person_access_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_access_code_subject_key'))
        batch_op.drop_index(batch_op.f('ix_person_access_code_organization_id'))
        batch_op.drop_index(batch_op.f('ix_person_access_code_consent_id'))
    op.drop_table('person_access_code')
