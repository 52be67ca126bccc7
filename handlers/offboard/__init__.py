"""/offboard: ask for an offboarding, previewed with its plan."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.offboard import command

    command.register(app, core)
