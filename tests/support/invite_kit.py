"""Helpers for invite tests: a ready invite and a password AWS accepts."""

from __future__ import annotations

from typing import Any

from bot.services import invites
from bot.services.container import Core

GOOD_PASSWORD = "Corr3ct-Horse-Battery!"


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
