"""Rows for handler tests: an integration with accounts and groups, straight into the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from storage.models import Account, Group, Integration, Membership

MANAGER = "UMANAGER"
APPROVER = "UAPPROVER"
ADMIN = "UADMIN"
STRANGER = "USTRANGER"


def add_integration(sessions: Any, name: str = "prod", **extra: Any) -> int:
    values: dict[str, Any] = {
        "name": name,
        "managers": [MANAGER],
        "approvers": [APPROVER],
        "created_by": ADMIN,
        "aws_account_id": "123456789012",
        "last_sync_at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        "last_sync_status": "ok",
    }
    values.update(extra)
    with sessions.begin() as session:
        integration = Integration(**values)
        session.add(integration)
        session.flush()
        return int(integration.id)


def add_account(
    sessions: Any,
    integration_id: int,
    user_name: str,
    groups: tuple[str, ...] = (),
    slack_user_id: str | None = None,
) -> int:
    with sessions.begin() as session:
        account = Account(
            integration_id=integration_id,
            user_name=user_name,
            slack_user_id=slack_user_id,
            password_last_used=datetime(2026, 1, 1, tzinfo=UTC),
        )
        session.add(account)
        session.flush()
        for name in groups:
            group = session.scalar(
                select(Group).where(Group.integration_id == integration_id, Group.name == name)
            )
            if group is None:
                group = Group(integration_id=integration_id, name=name)
                session.add(group)
                session.flush()
            session.add(Membership(account_id=account.id, group_id=group.id))
        return int(account.id)


def add_group(sessions: Any, integration_id: int, name: str) -> None:
    with sessions.begin() as session:
        session.add(Group(integration_id=integration_id, name=name))
