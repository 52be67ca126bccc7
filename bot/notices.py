"""What the scheduled jobs tell Slack: health alerts and drift digests, posted to the
integration's approvals channel. Text from AWS or the store is mrkdwn-escaped before it goes."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.services.container import Core
from bot.services.health import HealthChange

logger = logging.getLogger(__name__)


def escape(text: object) -> str:
    """Slack's three control characters, so names from AWS can never mention or link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post(core: Core, channel: str | None, text: str, blocks: list[dict[str, Any]]) -> bool:
    """Post to `channel`; a Slack failure is logged, not raised (the job's work is done)."""
    client = core.extras.get("slack")
    if client is None or not channel:
        return False
    try:
        client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as err:
        logger.warning("could not post to %s: %s", channel, err.response.get("error"))
        return False
    return True


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def health_alert(change: HealthChange) -> tuple[str, list[dict[str, Any]]]:
    word = "is failing" if change.after.status == "failing" else "needs attention"
    text = f"AWS integration {change.integration} {word}: {change.after.detail}"
    body = (
        f":warning: *AWS integration {escape(change.integration)} {word}*\n"
        f"{escape(change.after.detail)}"
    )
    return text, [section(body)]


def post_health_alert(core: Core, change: HealthChange) -> bool:
    text, blocks = health_alert(change)
    return post(core, change.approvals_channel, text, blocks)
