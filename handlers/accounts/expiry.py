"""The Extend button of an expiring account (in its reminders) and its modal. Who may press it
is decided by the services, never by who got the message."""

from __future__ import annotations

from slack_bolt import App

from bot.services import account_expiry
from bot.services.container import Core
from bot.services.requesting import request_extend_account
from bot.slack.extend import register_extend
from handlers.accounts.extend_view import AccountExtendView


def register(app: App, core: Core) -> None:
    # The button's value has the same shape as a grant's: a small row id, re-read.
    register_extend(
        app,
        core,
        AccountExtendView,
        account_expiry.extendable,
        lambda core, actor, expiry_id, expires, why: request_extend_account(
            core, actor=actor, expiry_id=expiry_id, expires_at=expires, why=why
        ),
    )
