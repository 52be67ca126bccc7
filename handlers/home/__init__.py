"""The App Home tab, published when someone opens it (bot.slack.home builds it: grants and
reviews publish it again after a click)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.services.container import Core
from bot.slack.home import publish_home


def register(app: App, core: Core) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab") != "home":
            return  # the Messages tab needs nothing from us
        publish_home(core, client, event["user"])
