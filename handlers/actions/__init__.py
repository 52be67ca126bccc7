"""Slack actions listeners; one module each, registered here."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    """Register every action listener."""
    from handlers.actions import account_expiry, accounts, approvals, breakglass, grants, invite

    account_expiry.register(app, core)
    accounts.register(app, core)
    approvals.register(app, core)
    breakglass.register(app, core)
    grants.register(app, core)
    invite.register(app, core)
