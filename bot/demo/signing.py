"""Signs requests exactly as Slack does (v0 HMAC-SHA256 over `v0:timestamp:body`) and shapes
slash-command and interactivity bodies as Slack sends them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode


def signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, body: str, *, timestamp: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, body),
        "Content-Type": content_type or "application/x-www-form-urlencoded",
    }


def command_body(
    command: str,
    text: str = "",
    *,
    user_id: str = "UMANAGER",
    user_name: str = "manager",
    channel_id: str = "CGENERAL",
    channel_name: str = "general",
    team_id: str = "T0001",
    trigger_id: str = "111.222.trigger",
    response_url: str = "",
) -> str:
    return urlencode(
        {
            "token": "legacy-unused",
            "team_id": team_id,
            "team_domain": "roleup-test",
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": "A0001",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def payload_body(payload: dict[str, Any]) -> str:
    """Interactivity (block_actions, view_submission, ...) arrives as form field `payload`."""
    return urlencode({"payload": json.dumps(payload)})
