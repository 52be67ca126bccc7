"""approval integrity: privileged lists, RoleUp's own principal, request leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_PRIVILEGED = '["AdministratorAccess", "IAMFullAccess", "PowerUserAccess"]'


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "privileged_policies",
                sa.JSON(),
                nullable=False,
                server_default=sa.text(f"'{DEFAULT_PRIVILEGED}'"),
            )
        )
        batch_op.add_column(
            sa.Column(
                "privileged_groups", sa.JSON(), nullable=False, server_default=sa.text("'[]'")
            )
        )
        batch_op.add_column(sa.Column("principal_arn", sa.String(length=2048), nullable=True))
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_owner")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("principal_arn")
        batch_op.drop_column("privileged_groups")
        batch_op.drop_column("privileged_policies")
