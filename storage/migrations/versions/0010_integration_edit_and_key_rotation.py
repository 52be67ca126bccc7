"""integrations edited in place and RoleUp's own access key rotated

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): recreating `integrations` on SQLite would drop its
    # AUTOINCREMENT, and ids must never be handed out twice.
    op.add_column("integrations", sa.Column("rotate_every_days", sa.Integer(), nullable=True))
    op.add_column(
        "integrations",
        sa.Column("credentials_changed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "integrations", sa.Column("pending_credentials_ciphertext", sa.Text(), nullable=True)
    )
    op.add_column(
        "integrations", sa.Column("retiring_key_id", sa.String(length=128), nullable=True)
    )


def downgrade() -> None:
    for column in (
        "retiring_key_id",
        "pending_credentials_ciphertext",
        "credentials_changed_at",
        "rotate_every_days",
    ):
        op.drop_column("integrations", column)
