"""Slack views listeners; one module each, registered here."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    """Register every view listener."""
    from handlers.views import integration_add, integration_edit, invite, onboard_listeners

    integration_add.register(app, core)
    integration_edit.register(app, core)
    invite.register(app, core)
    onboard_listeners.register(app, core)
