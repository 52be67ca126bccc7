"""Slack request bodies of every kind, built as Slack builds them, for the hostile corpus."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.support.signing import command_body, payload_body

JSON = "application/json"


def block_action(
    action_id: str = "approve",
    value: str = "00000000-0000-0000-0000-000000000000",
    *,
    user_id: str = "UAPPROVER",
    channel: str = "CAPPROVALS",
    message_ts: str = "1700000000.000100",
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "roleup-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-unused",
        "trigger_id": "111.222.action",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel, "name": "approvals"},
        "message": {"ts": message_ts, "text": "request", "blocks": []},
        "response_url": "",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "decision",
                "value": value,
                "action_ts": "1700000001.000200",
            }
        ],
    }


def view_submission(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    *,
    user_id: str = "UMANAGER",
    private_metadata: str = "",
) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "roleup-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-unused",
        "trigger_id": "111.222.view",
        "view": {
            "id": "VHOSTILE",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": "h1",
        },
        "response_urls": [],
    }


def event_callback(text: str = "hello") -> str:
    return json.dumps(
        {
            "token": "legacy-unused",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": "Ev0001",
            "event_time": 1700000000,
            "event": {"type": "app_mention", "user": "UMANAGER", "text": text, "ts": "1.2"},
        }
    )


def every_kind_of_body(commands: list[str]) -> list[tuple[str, str, str | None]]:
    """(label, body, content type) for one of each: commands, actions, views, events."""
    bodies: list[tuple[str, str, str | None]] = [
        (f"command {c}", command_body(c, "help"), None) for c in commands
    ]
    bodies.append(("block_actions", payload_body(block_action()), None))
    bodies.append(("view_submission", payload_body(view_submission("onboard", {})), None))
    bodies.append(("event_callback", event_callback(), JSON))
    bodies.append(
        ("url_verification", json.dumps({"type": "url_verification", "challenge": "c"}), JSON)
    )
    return bodies


def form(fields: dict[str, str]) -> str:
    return urlencode(fields)
