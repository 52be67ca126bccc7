"""Rows straight into the store: the one `add_integration` every test uses, accounts, groups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bot.services.aws import key_hint, seal_key_pair
from storage.crypto import SecretBox
from storage.models import Account, Group, Integration, Membership
from tests.support.config import TEST_KEY

MANAGER = "UMANAGER"
APPROVER = "UAPPROVER"
ADMIN = "UADMIN"
STRANGER = "USTRANGER"
KEY_ID = "AKIAINVITETESTKEY001"
KEY_SECRET = "invite-test-secret-key-material-0000000"
#: An integration nobody manages or approves, with no approvals channel.
UNATTENDED: dict[str, Any] = {"managers": [], "approvers": [], "approvals_channel": None}
#: What a synced integration without a key shows (the handler tests' integrations).
SYNCED: dict[str, Any] = {
    "approvals_channel": None,
    "aws_account_id": "123456789012",
    "last_sync_at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    "last_sync_status": "ok",
}

#: The `make_integration` fixture: an integration with a sealed example key, returned as a row.
MakeIntegration = Callable[..., Integration]


def add_integration(
    store: Any,
    name: str = "prod",
    *,
    key: tuple[str, str] | None = (KEY_ID, KEY_SECRET),
    **columns: Any,
) -> int:
    """An integration row straight into the store, as `integrations add` leaves it: a manager,
    an approver, an approvals channel and the key pair `key` sealed (moto accepts any key;
    `key=None` for none). Any column can be given. `store` is a Core or a sessionmaker."""
    sessions, box = (
        (store.sessions, store.require_box())
        if hasattr(store, "sessions")
        else (store, SecretBox([TEST_KEY]))
    )
    values: dict[str, Any] = {
        "name": name,
        "managers": [MANAGER],
        "approvers": [APPROVER],
        "approvals_channel": "CAPPROVALS",
        "created_by": ADMIN,
    }
    if key is not None:
        values["access_key_hint"] = key_hint(key[0])
        values["credentials_ciphertext"] = seal_key_pair(box, *key)
    values.update(columns)
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
