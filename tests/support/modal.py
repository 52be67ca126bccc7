"""Building the interactivity payloads Slack sends for a modal, from the view the app opened."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


def text(value: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def options(*values: str) -> dict[str, Any]:
    return {
        "type": "multi_static_select",
        "selected_options": [
            {"value": v, "text": {"type": "plain_text", "text": v}} for v in values
        ],
    }


def option(value: str) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": {"value": value}}


def users(*ids: str) -> dict[str, Any]:
    return {"type": "multi_users_select", "selected_users": list(ids)}


def one_user(user_id: str) -> dict[str, Any]:
    return {"type": "users_select", "selected_user": user_id}


def submission(
    view: dict[str, Any], values: dict[str, dict[str, Any]], user_id: str, view_id: str = "V1"
) -> dict[str, Any]:
    """values: {block_id: {action_id: state}}."""
    return {
        "type": "view_submission",
        "team": {"id": "T0001"},
        "user": {"id": user_id},
        "api_app_id": "A0001",
        "trigger_id": f"{next(_ids)}.1.submit",
        "view": {
            **view,
            "id": view_id,
            "hash": "h1",
            "state": {"values": values},
        },
    }


def suggestion(view: dict[str, Any], action_id: str, value: str, user_id: str) -> dict[str, Any]:
    return {
        "type": "block_suggestion",
        "team": {"id": "T0001"},
        "user": {"id": user_id},
        "api_app_id": "A0001",
        "action_id": action_id,
        "block_id": "policies",
        "value": value,
        "view": {**view, "id": "V1"},
    }


def labels(view: dict[str, Any]) -> list[str]:
    return [b["label"]["text"] for b in view["blocks"] if b.get("type") == "input"]
