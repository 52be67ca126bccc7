"""The invite's Slack round trip: the DM, the answer form, its submission and the outcome."""

from __future__ import annotations

import json
from typing import Any

from tests.support.approvals import click


def view_submission(slack, user: str, view: dict[str, Any], values: dict[str, Any]):
    payload = {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "roleup-test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-unused",
        "trigger_id": "555.666.trigger",
        "view": {
            "id": "VSUBMITTED",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view.get("private_metadata", ""),
            "state": {"values": values},
            "hash": "h1",
        },
    }
    response = slack.interact(payload)
    assert response.status_code == 200, response.text
    return response.json() if response.text else {}


def text_field(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def answer_values(username: str, password: str, confirm: str | None = None) -> dict[str, Any]:
    return {
        "username": text_field(username),
        "password": text_field(password),
        "confirm": text_field(password if confirm is None else confirm),
    }


def create_values(user: str, groups: list[str]) -> dict[str, Any]:
    return {
        "invite_user": {"invite_user_select": {"type": "users_select", "selected_user": user}},
        "invite_groups": {
            "invite_groups_select": {
                "type": "multi_static_select",
                "selected_options": [{"value": g, "text": {"text": g}} for g in groups],
            }
        },
    }


def opened_view(slack_api, callback_id: str) -> dict[str, Any]:
    calls = slack_api.wait_for(
        "views.open", where=lambda c: c.params["view"].get("callback_id") == callback_id
    )
    return calls[-1].params["view"]


def send_invite(slack, slack_api, user="UNEWBIE") -> dict[str, Any]:
    """The manager's whole part: the command, then the modal's submission. Returns the DM."""
    response = slack.command("/onboard", f"invite <@{user}|newbie> prod", user_id="UMANAGER")
    assert response.status_code == 200
    view = opened_view(slack_api, "invite_create")
    answer = view_submission(slack, "UMANAGER", view, create_values(user, ["developers"]))
    assert answer["response_action"] == "update", answer
    assert "Sending the invite" in json.dumps(answer["view"])
    slack_api.wait_for("views.update", where=lambda c: "Invite sent" in json.dumps(c.params))
    (dm,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == "D" + user
    )
    return dm.params


def dm_button(dm: dict[str, Any]) -> dict[str, Any]:
    for block in dm["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == "invite_open":
                return element
    raise AssertionError("the DM has no invite button")


def open_answer_form(slack, slack_api, dm, user="UNEWBIE") -> dict[str, Any]:
    slack_api.reset()  # from here on, only what the click made
    click(slack, "invite_open", dm_button(dm)["value"], user=user, channel="D" + user)
    (update,) = slack_api.wait_for("views.update")
    return update.params["view"]


def outcome_view(slack_api, text: str) -> dict[str, Any]:
    """The view the app showed after the ack (views.update) containing `text`."""
    calls = slack_api.wait_for("views.update", where=lambda c: text in json.dumps(c.params))
    return calls[-1].params["view"]


def submit_answer(slack, slack_api, form, values, user="UNEWBIE") -> dict[str, Any]:
    answer = view_submission(slack, user, form, values)
    assert answer["response_action"] == "update", answer
    assert "Checking your choice with AWS" in json.dumps(answer["view"])
    return answer
