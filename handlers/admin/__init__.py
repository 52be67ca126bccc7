"""`/roleup` and its subcommands: help, integrations (add, edit, remove), sync, link, audit."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.admin import command, integration_add, integration_edit

    command.register(app, core)
    integration_add.register(app, core)
    integration_edit.register(app, core)
