"""subject systems and subject key aliases

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-28 10:50:00

Consents are recorded only under registered subject systems (contract v1.1 section 4). A v1
deployment never stored the systems it was sent (only keys of system + value), so they cannot
be found in the database: this migration registers, to each organization that has recorded a
consent, the system ``urn:<organization>:client`` (what the intake pages and the demo use), and
the operator registers any other system in use with ``consent-service subject-systems add``
before opening traffic (docs/upgrading.md).
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

import consent_service.storage.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('subject_system',
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('organization_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('case_insensitive', sa.Boolean(), nullable=False),
    sa.Column('created_at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_subject_system_organization_id_organization')),
    sa.PrimaryKeyConstraint('system', name=op.f('pk_subject_system'))
    )
    with op.batch_alter_table('subject_system', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subject_system_organization_id'), ['organization_id'], unique=False)

    op.create_table('subject_key_alias',
    sa.Column('old_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('new_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', consent_service.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('by_organization', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('old_key', name=op.f('pk_subject_key_alias'))
    )
    with op.batch_alter_table('subject_key_alias', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subject_key_alias_new_key'), ['new_key'], unique=False)

    # The systems a v1 deployment's recording organizations used by convention (see above).
    bind = op.get_bind()
    recorders = [row[0] for row in bind.execute(sa.text("SELECT DISTINCT recorded_by FROM consent"))]
    if recorders:
        table = sa.table('subject_system', sa.column('system'), sa.column('organization_id'),
                         sa.column('shared'), sa.column('case_insensitive'),
                         sa.column('created_at', consent_service.storage.types.UTCDateTime(timezone=True)),
                         sa.column('created_by'))
        now = datetime.now(UTC)
        op.bulk_insert(table, [{"system": f"urn:{org.lower()}:client", "organization_id": org, "shared": False,
                                "case_insensitive": False, "created_at": now, "created_by": "migration 0007"}
                               for org in sorted(recorders)])


def downgrade() -> None:
    with op.batch_alter_table('subject_key_alias', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subject_key_alias_new_key'))
    op.drop_table('subject_key_alias')
    with op.batch_alter_table('subject_system', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subject_system_organization_id'))
    op.drop_table('subject_system')
