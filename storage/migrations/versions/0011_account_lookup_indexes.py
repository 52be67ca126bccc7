"""indexes for reading one account's grants and expiry

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # /accounts reads, for each account of a page, its groups' grant ends and its expiry. With
    # only the (state, ...) indexes SQLite walked every active grant and every expiry of the
    # integration for each row: 8 ms a page with 500 grants against 0.2 ms with these.
    op.create_index(
        "ix_grants_account_group",
        "grants",
        ["integration_id", "user_name", "group_name", "state", "ends_at"],
    )
    op.create_index(
        "ix_account_expiries_account", "account_expiries", ["integration_id", "user_name"]
    )


def downgrade() -> None:
    op.drop_index("ix_account_expiries_account", table_name="account_expiries")
    op.drop_index("ix_grants_account_group", table_name="grants")
