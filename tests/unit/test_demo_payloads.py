"""Payloads are shaped as Slack sends them, checked field by field on hand-made views."""

from __future__ import annotations

from bot.demo.payloads import (
    Actor,
    action_of,
    block_actions_in_view,
    block_actions_on_message,
    block_suggestion,
    state_values,
    user_of_trigger,
    view_submission,
)

MAYA = Actor("UDEMOMAYA", "maya")
DEV = {"text": {"type": "plain_text", "text": "developers"}, "value": "developers"}
RO = {"text": {"type": "plain_text", "text": "readonly"}, "value": "readonly"}
FORM = [
    {
        "type": "input",
        "block_id": "username",
        "label": {"type": "plain_text", "text": "Username"},
        "element": {"type": "plain_text_input", "action_id": "value"},
    },
    {
        "type": "input",
        "block_id": "integration",
        "label": {"type": "plain_text", "text": "Integration"},
        "element": {"type": "static_select", "action_id": "value", "options": [DEV]},
    },
    {
        "type": "input",
        "block_id": "groups",
        "label": {"type": "plain_text", "text": "Groups"},
        "element": {
            "type": "multi_static_select",
            "action_id": "value",
            "options": [DEV, RO],
            "initial_options": [RO],
        },
    },
    {
        "type": "input",
        "block_id": "slack_user",
        "label": {"type": "plain_text", "text": "Slack user"},
        "element": {"type": "users_select", "action_id": "value"},
    },
    {"type": "section", "text": {"type": "mrkdwn", "text": "no state here"}},
    {
        "type": "actions",
        "block_id": "tools",
        "elements": [
            {"type": "button", "action_id": "gen", "text": {"type": "plain_text", "text": "Gen"}},
            {"type": "checkboxes", "action_id": "flags", "options": [DEV]},
        ],
    },
]


def test_state_holds_every_stateful_element_answered_or_initial() -> None:
    values = state_values(FORM, {("username", "value"): "zoe", ("slack_user", "value"): "U9"})
    assert values == {
        "username": {"value": {"type": "plain_text_input", "value": "zoe"}},
        "integration": {"value": {"type": "static_select", "selected_option": None}},
        "groups": {
            "value": {
                "type": "multi_static_select",
                "selected_options": [
                    {
                        "text": {"type": "plain_text", "text": "readonly", "emoji": True},
                        "value": "readonly",
                    }
                ],
            }
        },
        "slack_user": {"value": {"type": "users_select", "selected_user": "U9"}},
        "tools": {"flags": {"type": "checkboxes", "selected_options": []}},
    }


def test_view_submission_carries_the_view_with_state() -> None:
    view = {"id": "V1", "hash": "h1", "callback_id": "onboard", "blocks": FORM}
    payload = view_submission(MAYA, view=view, answers={("username", "value"): "zoe"})
    assert payload["type"] == "view_submission"
    assert payload["user"] == {
        "id": "UDEMOMAYA",
        "username": "maya",
        "name": "maya",
        "team_id": "T0001",
    }
    assert payload["view"]["callback_id"] == "onboard"
    assert payload["view"]["state"]["values"]["username"]["value"]["value"] == "zoe"
    assert payload["response_urls"] == []
    assert user_of_trigger(payload["trigger_id"]) == "UDEMOMAYA"


def test_button_click_on_a_message() -> None:
    button = FORM[5]["elements"][0]
    message = {"ts": "17.000001", "text": "hi", "blocks": FORM[4:]}
    payload = block_actions_on_message(
        MAYA,
        channel={"id": "C1", "name": "general"},
        message=message,
        is_ephemeral=False,
        response_url="http://127.0.0.1:1/respond/x",
        action=action_of("tools", button),
    )
    assert payload["container"] == {
        "type": "message",
        "message_ts": "17.000001",
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == "17.000001"
    assert payload["response_url"] == "http://127.0.0.1:1/respond/x"
    (action,) = payload["actions"]
    assert action["type"] == "button"
    assert action["action_id"] == "gen"
    assert action["block_id"] == "tools"
    assert action["text"]["text"] == "Gen"


def test_ephemeral_messages_leave_the_message_out() -> None:
    payload = block_actions_on_message(
        MAYA,
        channel={"id": "C1", "name": "general"},
        message={"ts": "1.0", "text": "x"},
        is_ephemeral=True,
        response_url="u",
        action=action_of("b", {"type": "button", "action_id": "a"}),
    )
    assert "message" not in payload
    assert payload["container"]["is_ephemeral"] is True


def test_select_inside_a_modal_sends_the_selected_option_and_the_view() -> None:
    view = {"id": "V1", "hash": "h", "blocks": FORM}
    select = FORM[1]["element"]
    picked = {
        "text": {"type": "plain_text", "text": "developers", "emoji": True},
        "value": "developers",
    }
    payload = block_actions_in_view(
        MAYA,
        view=view,
        answers={("integration", "value"): picked},
        action=action_of("integration", select, picked),
    )
    assert payload["container"] == {"type": "view", "view_id": "V1"}
    assert payload["actions"][0]["selected_option"] == picked
    assert payload["view"]["state"]["values"]["integration"]["value"]["selected_option"] == picked


def test_block_suggestion_names_the_field_and_the_query() -> None:
    payload = block_suggestion(
        MAYA,
        view={"id": "V1", "blocks": FORM},
        block_id="policies",
        action_id="value",
        query="Read",
    )
    assert payload["type"] == "block_suggestion"
    assert (payload["block_id"], payload["action_id"], payload["value"]) == (
        "policies",
        "value",
        "Read",
    )
    assert payload["container"] == {"type": "view", "view_id": "V1"}
