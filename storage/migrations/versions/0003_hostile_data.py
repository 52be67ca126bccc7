"""hostile data: integration ids never reused, invite attempt limits, a shared rate limiter

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite hands a deleted row's id to the next insert unless the table is declared
        # AUTOINCREMENT, which only a rebuild can add (env.py turns foreign keys off first, so
        # dropping the old table cascades nothing). PostgreSQL's sequences never go back.
        with op.batch_alter_table(
            "integrations", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "failed_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
        batch_op.add_column(sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "rate_limit_hits",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
    )
    with op.batch_alter_table("rate_limit_hits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rate_limit_hits_window_start"), ["window_start"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("rate_limit_hits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_limit_hits_window_start"))
    op.drop_table("rate_limit_hits")
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.drop_column("locked_at")
        batch_op.drop_column("failed_attempts")
