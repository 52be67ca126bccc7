"""The Approve, Deny and Retry buttons of approval messages."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.approvals import actions

    actions.register(app, core)
