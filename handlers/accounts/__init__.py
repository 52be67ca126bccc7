"""/accounts (the listing and its paging buttons) and an expiring account's Extend button and
modal."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.accounts import actions, command, expiry

    command.register(app, core)
    actions.register(app, core)
    expiry.register(app, core)
