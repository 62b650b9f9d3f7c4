"""user_account.idp_issuer and idp_subject (issue 17: OpenID Connect sign-in)

Revision ID: 0018
Revises: 0015
Create Date: 2026-11-28 23:50:00

The OpenID provider's account (issuer, subject) a person signs in with; NULL for the password
accounts that exist already. Unique together, so one provider account is one person here. The
digest of a user_account row reads these columns only when they are not NULL, so the rows bound
before this release still verify (storage/audit_rows.py, READ_WHEN_SET).
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

revision: str = '0018'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idp_issuer', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('idp_subject', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.create_index('ix_user_account_idp', ['idp_issuer', 'idp_subject'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index('ix_user_account_idp')
        batch_op.drop_column('idp_subject')
        batch_op.drop_column('idp_issuer')
