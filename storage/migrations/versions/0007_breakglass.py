"""break-glass: approver-less, time-boxed grants for people on an integration's list

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): recreating `integrations` on SQLite would drop its
    # AUTOINCREMENT, and ids must never be handed out twice.
    op.add_column(
        "integrations",
        sa.Column("breakglass", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column(
        "grants",
        sa.Column("breakglass", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("grants", sa.Column("reason", sa.String(length=500), nullable=True))
    op.add_column("grants", sa.Column("acknowledged_by", sa.String(length=64), nullable=True))
    op.add_column(
        "grants", sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("grants", sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        for column in ("announced_at", "acknowledged_at", "acknowledged_by", "reason"):
            batch_op.drop_column(column)
        batch_op.drop_column("breakglass")
    op.drop_column("integrations", "breakglass")
