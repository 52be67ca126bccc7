"""Slack commands listeners; one module each, registered here."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    """Register every command listener."""
    from handlers.commands import accounts, groups, invite, offboard, onboard, roleup

    accounts.register(app, core)
    groups.register(app, core)
    # Before /onboard: its listener takes only `/onboard invite ...`.
    invite.register(app, core)
    offboard.register(app, core)
    onboard.register(app, core)
    roleup.register(app, core)
