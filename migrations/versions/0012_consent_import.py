"""consent import rows (issue 15 item 2: bulk import, idempotent re-runs)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 17:05:00

One row per imported file row that recorded a consent, keyed by the organization and a keyed
hash of the row (services/consent_import.py): the same file imported twice records nothing twice.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

import consent_service.storage.types

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('consent_import_row',
    sa.Column('organization_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('row_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('consent_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('import_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('imported_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['consent_id'], ['consent.id'], name=op.f('fk_consent_import_row_consent_id_consent')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_consent_import_row_organization_id_organization')),
    sa.PrimaryKeyConstraint('organization_id', 'row_key', name=op.f('pk_consent_import_row'))
    )
    with op.batch_alter_table('consent_import_row', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_import_row_consent_id'), ['consent_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('consent_import_row', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_import_row_consent_id'))
    op.drop_table('consent_import_row')
