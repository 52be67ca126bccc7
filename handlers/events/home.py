"""The App Home tab: what RoleUp does and the commands to use, shown when someone opens it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services.container import Core
from bot.slack.mrkdwn import escape

logger = logging.getLogger(__name__)

COMMANDS = (
    ("/onboard", "create an AWS IAM account; `/onboard invite @user` sends an invite link"),
    ("/offboard <iam-username or @user>", "remove accounts, once an approver agrees"),
    ("/accounts [integration] [filter]", "list accounts and their groups"),
    ("/groups <iam-username>", "show and change a user's groups"),
    ("/roleup help", "integrations, sync, links and the audit log"),
)


def home_view() -> dict[str, Any]:
    # Usage placeholders like <name> must be escaped even inside code, or Slack reads a link.
    lines = "\n".join(f"• `{escape(command)}` — {what}" for command, what in COMMANDS)
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "RoleUp for AWS"}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Onboard and offboard AWS IAM users from Slack. Destructive changes "
                    "wait for an approver, and every change is in the audit log.",
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": lines}},
        ],
    }


def register(app: App, core: Core) -> None:
    @app.event("app_home_opened")
    def publish_home(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab") != "home":
            return  # the Messages tab needs nothing from us
        try:
            client.views_publish(user_id=event["user"], view=home_view())
        except SlackApiError as exc:
            logger.warning("could not publish the App Home: %s", exc.response.get("error"))
