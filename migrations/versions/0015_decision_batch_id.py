"""decision.batch_id (issue 15: one audit entry per batch authorize)

Revision ID: 0015
Revises: 0017
Create Date: 2026-11-28 20:15:00

The batch a decision was made in (NULL: a single authorize, and every decision recorded before
this release). A batch's decisions are bound by the batch's one ``decision:batch`` audit entry,
found through this column. The digest of a decision row reads the column only when it is not
NULL, so the rows bound before it still verify (services/audit_rows.py).
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

revision: str = '0015'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_column('batch_id')
