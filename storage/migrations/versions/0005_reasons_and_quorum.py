"""reasons and quorum: a reason and ticket on each request, N distinct approvers per integration

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch rebuild): a rebuilt integrations table on SQLite would lose
    # its AUTOINCREMENT (0003), and every new column has a constant default.
    op.add_column(
        "integrations",
        sa.Column("require_reason", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "integrations",
        sa.Column("approvals_required", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.add_column("requests", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("requests", sa.Column("ticket", sa.String(length=512), nullable=True))
    op.add_column(
        "requests",
        sa.Column("approvals_required", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.add_column("invites", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("invites", sa.Column("ticket", sa.String(length=512), nullable=True))
    op.create_table(
        "request_approvals",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("approver", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("request_id", "approver"),
    )


def downgrade() -> None:
    op.drop_table("request_approvals")
    for table, column in (
        ("invites", "ticket"),
        ("invites", "reason"),
        ("requests", "approvals_required"),
        ("requests", "ticket"),
        ("requests", "reason"),
        ("integrations", "approvals_required"),
        ("integrations", "require_reason"),
    ):
        with op.batch_alter_table(
            table,
            table_kwargs={"sqlite_autoincrement": True} if table == "integrations" else {},
        ) as batch_op:
            batch_op.drop_column(column)
