"""The App Home tab, published when someone opens it (bot.slack.home builds it: grants and
reviews publish it again after a click)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.services.container import Core
from bot.slack.errors import run_after_ack
from bot.slack.home import publish_home


def register(app: App, core: Core) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab") != "home":
            return  # the Messages tab needs nothing from us
        # Bolt acks an event when its listener returns: the publish runs after, in the pool.
        user = event["user"]
        run_after_ack(
            core.after_ack,
            _nobody,
            "publishing the App Home",
            lambda: publish_home(core, client, user),
        )


def _nobody(_text: str) -> None:
    """An event has no one to answer: a failure goes to the log alone."""
