"""Helpers for invite tests: an integration whose key reaches moto, and a ready invite."""

from __future__ import annotations

from typing import Any

from bot.services import invites
from bot.services.aws import key_hint, seal_key_pair
from bot.services.container import Core
from storage.models import Integration

KEY_ID = "AKIAINVITETESTKEY001"
KEY_SECRET = "invite-test-secret-key-material-0000000"
GOOD_PASSWORD = "Corr3ct-Horse-Battery!"


def add_integration(core: Core, name: str = "prod", **overrides: Any) -> int:
    """An integration with a sealed key (moto accepts any key) and someone to approve."""
    values: dict[str, Any] = {
        "name": name,
        "managers": ["UMANAGER"],
        "approvers": ["UAPPROVER"],
        "approvals_channel": "CAPPROVALS",
        "created_by": "UADMIN",
        "access_key_hint": key_hint(KEY_ID),
        "credentials_ciphertext": seal_key_pair(core.require_box(), KEY_ID, KEY_SECRET),
        **overrides,
    }
    with core.sessions.begin() as session:
        row = Integration(**values)
        session.add(row)
        session.flush()
        return row.id


def make_invite(
    core: Core,
    integration_id: int,
    *,
    slack_user_id: str | None = "UNEWBIE",
    groups: list[str] | None = None,
    policies: list[str] | None = None,
    **kwargs: Any,
) -> invites.CreatedInvite:
    return invites.create_invite(
        core,
        integration_id=integration_id,
        slack_user_id=slack_user_id,
        groups=groups or [],
        policies=policies if policies is not None else [],
        created_by="UMANAGER",
        **kwargs,
    )
