"""Time-bound grants' End now / Extend, and break-glass (`/roleup breakglass` and its
announcement's buttons)."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.grants import actions, breakglass

    actions.register(app, core)
    breakglass.register(app, core)
