"""Invites: `/onboard invite @user`, its modal, the invitee's DM button and answer modal."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register(app: App, core: Core) -> None:
    from handlers.invite import actions, command, views

    command.register(app, core)
    views.register(app, core)
    actions.register(app, core)
