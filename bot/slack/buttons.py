"""Reading a clicked button and answering the clicker: shared by the grant, break-glass and
account-expiry buttons."""

from __future__ import annotations

from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.services.container import Core
from bot.slack.errors import ephemeral


def grant_id_of(body: dict[str, Any]) -> int | None:
    value = str(((body.get("actions") or [{}])[0]).get("value") or "")
    return int(value) if value.isdigit() and len(value) <= 18 else None


def in_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view"


def answer_to(core: Core, client: WebClient, body: dict[str, Any], respond: Respond) -> Any:
    """Where a refusal goes: the App Home has no response_url, so there it is a DM."""
    if in_home(body):
        user = body["user"]["id"]
        return lambda text: client.chat_postMessage(channel=user, text=text)
    return ephemeral(respond)
