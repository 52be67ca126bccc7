"""What a slash command's ack or response_url carried, as text, and a button clicked in it."""

from __future__ import annotations

RESPOND = "response_url:/respond/cmd"


def _answer(slack_api, count=1):
    call = slack_api.wait_for(RESPOND, count)[count - 1]
    return call.params


def _acked(response):
    """The message a command was answered with in its ack (the HTTP response's body)."""
    assert response.status_code == 200, response.text
    return response.json()


def _text(message):
    """Everything Slack renders: every text field of the blocks, plus the fallback text."""
    return "\n".join([*_texts(message.get("blocks", [])), message.get("text", "")])


def _texts(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            elif key != "value":
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def _click(button, user_id, response_url):
    return {
        "type": "block_actions",
        "user": {"id": user_id},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "trigger_id": "1.2.click",
        "response_url": response_url,
        "container": {"type": "message", "is_ephemeral": True},
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "accounts_nav",
                "value": button.get("value", ""),
                "action_ts": "1700000000.000100",
            }
        ],
    }
