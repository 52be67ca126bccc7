"""Interactivity payloads shaped as Slack sends them: block_actions, view_submission, view_closed,
block_suggestion, and the `state.values` of a view or message built from a person's answers.

Answers are keyed by (block_id, action_id) and hold what the person picked, already in Slack's
shape for that element (an option object, a list of them, a user id, a string or None).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

TEAM = {"id": "T0001", "domain": "roleup-demo"}
APP_ID = "A0001"

Answers = dict[tuple[str, str], Any]

# What an element's state holds, by element type (Slack omits nothing: unanswered is null/[]).
STATE_KEYS: dict[str, str] = {
    "plain_text_input": "value",
    "email_text_input": "value",
    "url_text_input": "value",
    "number_input": "value",
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "multi_static_select": "selected_options",
    "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
}
INITIAL_KEYS: dict[str, str] = {
    "value": "initial_value",
    "selected_option": "initial_option",
    "selected_options": "initial_options",
    "selected_user": "initial_user",
    "selected_users": "initial_users",
    "selected_conversation": "initial_conversation",
    "selected_conversations": "initial_conversations",
    "selected_channel": "initial_channel",
    "selected_channels": "initial_channels",
    "selected_date": "initial_date",
    "selected_time": "initial_time",
    "selected_date_time": "initial_date_time",
}
MULTI_KEYS = {
    "selected_options",
    "selected_users",
    "selected_conversations",
    "selected_channels",
}


@dataclass(frozen=True)
class Actor:
    """Who is clicking: a Slack user of the demo workspace."""

    id: str
    name: str


def new_trigger_id(actor: Actor) -> str:
    """Trigger ids look like Slack's; the user id inside lets the demo know whose modal opens."""
    return f"{int(time.time() * 1000)}.{actor.id}.{uuid.uuid4().hex[:12]}"


def user_of_trigger(trigger_id: str) -> str | None:
    parts = trigger_id.split(".")
    return parts[1] if len(parts) == 3 else None


def action_ts() -> str:
    return f"{time.time():.6f}"


def state_key(element: dict[str, Any]) -> str | None:
    """The state field of an element (None for buttons, overflow and unknown elements)."""
    return STATE_KEYS.get(str(element.get("type")))


def initial_answer(element: dict[str, Any]) -> Any:
    """What the element shows before anyone touches it, in state shape."""
    key = state_key(element)
    if key is None:
        return None
    initial = element.get(INITIAL_KEYS[key])
    if initial is None:
        return [] if key in MULTI_KEYS else None
    if key in ("selected_option", "selected_options"):
        return _plain_options(initial) if key == "selected_options" else _plain_option(initial)
    return initial


def _plain_option(option: dict[str, Any]) -> dict[str, Any]:
    """An option as it comes back in state: its text and value (description dropped)."""
    text = option.get("text") or {}
    return {
        "text": {
            "type": text.get("type", "plain_text"),
            "text": text.get("text", ""),
            "emoji": True,
        },
        "value": option.get("value", ""),
    }


def _plain_options(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_plain_option(o) for o in options]


def as_selected(option: dict[str, Any]) -> dict[str, Any]:
    return _plain_option(option)


def stateful_elements(blocks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(block_id, element) of every element that keeps state, in order."""
    found: list[tuple[str, dict[str, Any]]] = []
    for block in blocks:
        block_id = str(block.get("block_id", ""))
        kind = block.get("type")
        if kind == "input":
            candidates = [block.get("element") or {}]
        elif kind == "actions":
            candidates = list(block.get("elements") or [])
        elif kind == "section" and block.get("accessory"):
            candidates = [block["accessory"]]
        else:
            candidates = []
        for element in candidates:
            if state_key(element) is not None and element.get("action_id"):
                found.append((block_id, element))
    return found


def state_values(blocks: list[dict[str, Any]], answers: Answers) -> dict[str, Any]:
    """`state.values` as Slack builds it: every stateful element, answered or initial."""
    values: dict[str, dict[str, Any]] = {}
    for block_id, element in stateful_elements(blocks):
        action_id = str(element["action_id"])
        key = state_key(element)
        assert key is not None
        answer = answers.get((block_id, action_id), initial_answer(element))
        values.setdefault(block_id, {})[action_id] = {"type": element["type"], key: answer}
    return values


def with_state(view: dict[str, Any], answers: Answers) -> dict[str, Any]:
    return {**view, "state": {"values": state_values(list(view.get("blocks") or []), answers)}}


def _user(actor: Actor) -> dict[str, Any]:
    return {"id": actor.id, "username": actor.name, "name": actor.name, "team_id": TEAM["id"]}


def _base(kind: str, actor: Actor) -> dict[str, Any]:
    return {
        "type": kind,
        "user": _user(actor),
        "api_app_id": APP_ID,
        "token": "legacy-unused",
        "team": dict(TEAM),
        "enterprise": None,
        "is_enterprise_install": False,
    }


def action_of(block_id: str, element: dict[str, Any], picked: Any = None) -> dict[str, Any]:
    """One entry of `actions`: a button press, or a select/overflow choice."""
    action: dict[str, Any] = {
        "type": element.get("type"),
        "action_id": element.get("action_id", ""),
        "block_id": block_id,
        "action_ts": action_ts(),
    }
    kind = element.get("type")
    if kind == "button":
        action["text"] = {**(element.get("text") or {}), "emoji": True}
        if "value" in element:
            action["value"] = element["value"]
        if "style" in element:
            action["style"] = element["style"]
    elif kind == "overflow":
        action["selected_option"] = picked
    else:
        key = state_key(element)
        if key is not None:
            action[key] = picked
        placeholder = element.get("placeholder")
        if placeholder:
            action["placeholder"] = placeholder
    return action


def block_actions_on_message(
    actor: Actor,
    *,
    channel: dict[str, str],
    message: dict[str, Any],
    is_ephemeral: bool,
    response_url: str,
    action: dict[str, Any],
    answers: Answers | None = None,
) -> dict[str, Any]:
    """A click on a message (or an ephemeral message) in a channel."""
    payload = _base("block_actions", actor)
    payload.update(
        {
            "container": {
                "type": "message",
                "message_ts": message.get("ts", ""),
                "channel_id": channel["id"],
                "is_ephemeral": is_ephemeral,
            },
            "trigger_id": new_trigger_id(actor),
            "channel": dict(channel),
            "state": {"values": state_values(list(message.get("blocks") or []), answers or {})},
            "response_url": response_url,
            "actions": [action],
        }
    )
    if not is_ephemeral:
        # Slack leaves the message out of payloads from ephemeral messages.
        payload["message"] = {"type": "message", "user": "UBOT", **message}
    return payload


def block_actions_in_view(
    actor: Actor, *, view: dict[str, Any], answers: Answers, action: dict[str, Any]
) -> dict[str, Any]:
    """A click (or a dispatched input) inside an open modal."""
    payload = _base("block_actions", actor)
    payload.update(
        {
            "container": {"type": "view", "view_id": view.get("id", "")},
            "trigger_id": new_trigger_id(actor),
            "view": with_state(view, answers),
            "actions": [action],
        }
    )
    return payload


def view_submission(actor: Actor, *, view: dict[str, Any], answers: Answers) -> dict[str, Any]:
    payload = _base("view_submission", actor)
    payload.update(
        {
            "trigger_id": new_trigger_id(actor),
            "view": with_state(view, answers),
            "response_urls": [],
        }
    )
    return payload


def view_closed(actor: Actor, *, view: dict[str, Any], answers: Answers) -> dict[str, Any]:
    payload = _base("view_closed", actor)
    payload.update({"view": with_state(view, answers), "is_cleared": False})
    return payload


def block_suggestion(
    actor: Actor,
    *,
    view: dict[str, Any] | None,
    block_id: str,
    action_id: str,
    query: str,
    answers: Answers | None = None,
    channel: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Asks the app for the options of an external select, for what the person typed."""
    payload = _base("block_suggestion", actor)
    payload.update({"action_id": action_id, "block_id": block_id, "value": query})
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "")}
        payload["view"] = with_state(view, answers or {})
    elif channel is not None:
        payload["container"] = {"type": "message", "channel_id": channel["id"]}
        payload["channel"] = dict(channel)
    return payload
