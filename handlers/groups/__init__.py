"""/groups: a person's groups in a modal, changed for good or for a while."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.groups import command

    command.register(app, core)
