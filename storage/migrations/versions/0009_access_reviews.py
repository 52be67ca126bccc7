"""access reviews: campaigns per integration, one frozen item per account, and a schedule

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch rebuild of `integrations` on SQLite would drop its AUTOINCREMENT.
    op.add_column("integrations", sa.Column("review_every_days", sa.Integer(), nullable=True))
    op.create_table(
        "review_campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("integration", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("open_for", sa.Integer(), nullable=True),
        sa.Column("started_by", sa.String(length=64), nullable=False),
        sa.Column("scheduled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report_generated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("items_total", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_for"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_review_campaigns_integration_id", "review_campaigns", ["integration_id"]
    )
    op.create_index("ix_review_campaigns_state_due_at", "review_campaigns", ["state", "due_at"])
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("arn", sa.String(length=2048), nullable=True),
        sa.Column("slack_user_id", sa.String(length=32), nullable=True),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("policies", sa.JSON(), nullable=False),
        sa.Column("inline_policies", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("removed_groups", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("drift", sa.String(length=500), nullable=True),
        sa.Column("drift_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["review_campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "user_name"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_review_items_campaign_decision", "review_items", ["campaign_id", "decision"]
    )


def downgrade() -> None:
    op.drop_index("ix_review_items_campaign_decision", table_name="review_items")
    op.drop_table("review_items")
    op.drop_index("ix_review_campaigns_state_due_at", table_name="review_campaigns")
    op.drop_index("ix_review_campaigns_integration_id", table_name="review_campaigns")
    op.drop_table("review_campaigns")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("review_every_days")
