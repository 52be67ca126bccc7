"""A signed block_actions payload: a button clicked in a message or a view."""

from __future__ import annotations


def click(action_id: str, value: str, user_id: str, response_url: str, container="message"):
    return {
        "type": "block_actions",
        "user": {"id": user_id},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "trigger_id": "1.2.click",
        "response_url": response_url,
        "container": {"type": container},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": f"grant_{value}",
                "value": value,
                "action_ts": "1700000000.000100",
            }
        ],
    }
