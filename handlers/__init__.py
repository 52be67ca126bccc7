"""Slack surfaces: commands, views and actions, each exporting register(app, core)."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register_all(app: App, core: Core) -> None:
    from handlers import actions, commands, views

    commands.register(app, core)
    views.register(app, core)
    actions.register(app, core)
