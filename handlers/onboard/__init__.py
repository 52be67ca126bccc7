"""/onboard: the onboarding modal, its option searches and its submission."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.onboard import command, listeners

    command.register(app, core)
    listeners.register(app, core)
