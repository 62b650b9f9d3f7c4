"""stewards govern themselves; memberships are confirmed and can end

Revision ID: 0008
Revises: 0013
Create Date: 2026-11-28 16:40:00

* ``steward_change``: a proposal to add or remove a community's steward organization, applied
  only when a second client or person of a steward organization confirms it in time.
* ``membership`` gains its own pseudonym (``id``), ``status`` (pending | confirmed | ended),
  who confirmed it and when, and when it ended. Existing rows are left as they are (every new
  column NULL): a NULL status reads as ``confirmed`` (these memberships have applied in full
  all along, and the audit chain binds each row as it was, so the migration rewrites none).
  Only memberships named at intake from now on start ``pending``.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

import consent_service.storage.types

revision: str = '0008'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('steward_change',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('community_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('organization_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('proposed_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('proposed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('proposed_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('expires_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('confirmed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('confirmed_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['community_id'], ['community.id'], name=op.f('fk_steward_change_community_id_community')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_steward_change'))
    )
    op.create_index('ix_steward_change_community', 'steward_change', ['community_id', 'proposed_at'], unique=False)

    # Plain ALTER TABLE ... ADD COLUMN (nullable, no default): existing rows keep their values.
    op.add_column('membership', sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
    op.add_column('membership', sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    op.add_column('membership', sa.Column('confirmed_at', consent_service.storage.types.UTCDateTime(timezone=True),
                                          nullable=True))
    op.add_column('membership', sa.Column('confirmed_by', sqlmodel.sql.sqltypes.AutoString(length=64),
                                          nullable=True))
    op.add_column('membership', sa.Column('confirmed_via', sqlmodel.sql.sqltypes.AutoString(length=16),
                                          nullable=True))
    op.add_column('membership', sa.Column('ended_at', consent_service.storage.types.UTCDateTime(timezone=True),
                                          nullable=True))
    op.create_index('ix_membership_id', 'membership', ['id'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_membership_id', table_name='membership')
    for column in ('ended_at', 'confirmed_via', 'confirmed_by', 'confirmed_at', 'status', 'id'):
        op.drop_column('membership', column)
    op.drop_index('ix_steward_change_community', table_name='steward_change')
    op.drop_table('steward_change')
