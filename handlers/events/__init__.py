"""Slack events: the App Home tab (the only event the manifest subscribes to)."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.events import home

    home.register(app, core)
