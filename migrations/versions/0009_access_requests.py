"""data access requests (issue 14 item 3)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 17:00:00

A requester's request to a community (``access_request``), the community's review period
(``community.review_days``) and the request an approval was granted on
(``approval.access_request_id``).
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

import consent_service.storage.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('access_request',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('community_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('requester', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('filed_by_client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('rule_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('purposes', sa.JSON(), nullable=False),
    sa.Column('data_categories', sa.JSON(), nullable=False),
    sa.Column('protocol', sqlmodel.sql.sqltypes.AutoString(length=10000), nullable=False),
    sa.Column('ethics_reference', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('benefit_plan', sqlmodel.sql.sqltypes.AutoString(length=10000), nullable=False),
    sa.Column('requested_until', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('filed_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decide_by', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('refusal_reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('approval_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.ForeignKeyConstraint(['community_id'], ['community.id'], name=op.f('fk_access_request_community_id_community')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_request'))
    )
    with op.batch_alter_table('access_request', schema=None) as batch_op:
        batch_op.create_index('ix_access_request_community_status', ['community_id', 'status'], unique=False)
        batch_op.create_index('ix_access_request_requester', ['requester'], unique=False)
    # Plain ALTER TABLE ... ADD COLUMN (as 0006 does): a batch copy of `community` would drop a
    # table other tables' foreign keys point at, which SQLite refuses once they have rows.
    op.add_column('community', sa.Column('review_days', sa.Integer(), server_default='30', nullable=False))
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_request_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_request', schema=None) as batch_op:
        batch_op.drop_index('ix_access_request_requester')
        batch_op.drop_index('ix_access_request_community_status')
    op.drop_table('access_request')
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.drop_column('access_request_id')
    op.drop_column('community', 'review_days')  # plain DROP COLUMN (SQLite 3.35+), as 0006
