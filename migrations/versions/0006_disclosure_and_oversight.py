"""disclosure and oversight: a community's choice to show its id, what a requester was told,
and audit:read only for oversight

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-28 10:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate may render sqlmodel types)
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN: a batch copy of `community` would drop a table that
    # memberships, rules and approvals point at, which SQLite refuses once they hold rows.
    op.add_column('community', sa.Column('show_community_id', sa.Boolean(), server_default=sa.false(),
                                         nullable=False))
    op.add_column('decision', sa.Column('told', sa.JSON(), nullable=True))
    # audit:read is oversight of the whole deployment: only clients and people of the admin
    # organization or of an oversight organization keep it. A council that held it reads its
    # own community through community:read, which it is given in its place.
    conn = op.get_bind()
    holders = conn.execute(sa.text(
        "SELECT c.client_id, c.scopes FROM oauth_client c JOIN organization o ON o.id = c.organization_id "
        "WHERE o.id <> 'admin' AND o.type <> 'oversight'")).all()
    for client_id, scopes in holders:
        _rewrite(conn, "oauth_client", "client_id", client_id, "scopes", scopes)
    people = conn.execute(sa.text(
        "SELECT u.id, u.roles FROM user_account u JOIN organization o ON o.id = u.organization_id "
        "WHERE o.id <> 'admin' AND o.type <> 'oversight'")).all()
    for user_id, roles in people:
        _rewrite(conn, "user_account", "id", user_id, "roles", roles)


def _rewrite(conn: sa.engine.Connection, table: str, key: str, value: str, column: str, scopes: str) -> None:
    held = scopes.split()
    if "audit:read" not in held:
        return
    kept = [s for s in held if s != "audit:read"]
    if "rules:write" in kept and "community:read" not in kept:
        kept.append("community:read")
    conn.execute(sa.text(f"UPDATE {table} SET {column} = :scopes WHERE {key} = :value"),
                 {"scopes": " ".join(sorted(kept)), "value": value})


def downgrade() -> None:
    # audit:read taken from non-oversight clients is not given back: that was the fault.
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ too): a batch copy of `community` would
    # have to drop a table other tables' foreign keys point at, which SQLite refuses.
    op.drop_column('decision', 'told')
    op.drop_column('community', 'show_community_id')
