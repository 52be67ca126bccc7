"""Whole demo sessions in-process, against hand-made Bolt listeners added to the real app.

They check the terminal's side of Slack without depending on RoleUp's own handlers: signed
commands, acks, lazy posts, button clicks and message updates seen by the right person,
response_url replies replacing a message, and a modal opened, updated by a dispatched select,
searched through an external select, refused with a field error, then submitted.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest

from bot.demo.console import Console
from bot.demo.world import DemoWorld
from bot.settings import Settings

APPROVALS = "CDEMOAPPROVALS"
POLICIES = ["ReadOnlyAccess", "ReadOnlyBilling", "PowerUserAccess"]


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def option(text: str) -> dict[str, Any]:
    return {"text": plain(text), "value": text}


def button(text: str, action_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": plain(text), "action_id": action_id, **extra}


def form_view(note: str = "") -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": "integration",
            "dispatch_action": True,
            "label": plain("Integration"),
            "element": {
                "type": "static_select",
                "action_id": "integration_pick",
                "options": [option("demo"), option("prod")],
            },
        }
    ]
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    blocks += [
        {
            "type": "input",
            "block_id": "username",
            "label": plain("Username"),
            "element": {"type": "plain_text_input", "action_id": "value", "min_length": 2},
        },
        {
            "type": "input",
            "block_id": "groups",
            "optional": True,
            "label": plain("Groups"),
            "element": {
                "type": "multi_static_select",
                "action_id": "value",
                "options": [option("developers"), option("readonly")],
            },
        },
        {
            "type": "input",
            "block_id": "policies",
            "optional": True,
            "label": plain("Managed policies"),
            "element": {"type": "multi_external_select", "action_id": "policy_search"},
        },
        {
            "type": "input",
            "block_id": "slack_user",
            "optional": True,
            "label": plain("Slack user"),
            "element": {"type": "users_select", "action_id": "value"},
        },
    ]
    return {
        "type": "modal",
        "callback_id": "demo_form",
        "title": plain("Onboard a user"),
        "submit": plain("Create"),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


def register_handmade(app: Any) -> None:
    @app.command("/demo-echo")
    def echo(ack: Any, command: dict[str, Any]) -> None:
        ack(f"You said: {command['text']}")

    def post_ack(ack: Any) -> None:
        ack()

    def post_request(client: Any, body: dict[str, Any]) -> None:
        client.chat_postMessage(
            channel=APPROVALS,
            text="Offboarding request",
            blocks=[
                {"type": "header", "text": plain("Offboard bob")},
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"Requested by <@{body['user_id']}>"},
                },
                {
                    "type": "actions",
                    "block_id": "decide",
                    "elements": [
                        button("Approve", "demo_approve", style="primary", value="r1"),
                        button("Deny", "demo_deny", value="r1"),
                    ],
                },
            ],
        )

    app.command("/demo-post")(ack=post_ack, lazy=[post_request])

    @app.action("demo_approve")
    def approve(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        assert body["actions"][0]["value"] == "r1"
        client.chat_update(
            channel=body["channel"]["id"],
            ts=body["message"]["ts"],
            text="approved",
            blocks=[
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"Approved by <@{body['user']['id']}>"},
                }
            ],
        )

    @app.command("/demo-form")
    def open_form(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        loading = {"type": "modal", "title": plain("Onboard a user"), "blocks": []}
        opened = client.views_open(trigger_id=body["trigger_id"], view=loading)
        client.views_update(view_id=opened["view"]["id"], view=form_view())

    @app.action("integration_pick")
    def pick(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        chosen = body["actions"][0]["selected_option"]["value"]
        view = body["view"]
        client.views_update(
            view_id=view["id"], hash=view["hash"], view=form_view(f"Groups of *{chosen}* below")
        )

    @app.options("policy_search")
    def search(ack: Any, payload: dict[str, Any]) -> None:
        query = payload["value"].lower()
        ack(options=[option(p) for p in POLICIES if query in p.lower()])

    @app.view("demo_form")
    def submit(ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        values = view["state"]["values"]
        name = values["username"]["value"]["value"]
        if name == "taken":
            ack(response_action="errors", errors={"username": "That username is taken."})
            return
        groups = [o["value"] for o in values["groups"]["value"]["selected_options"]]
        policies = [o["value"] for o in values["policies"]["policy_search"]["selected_options"]]
        who = values["slack_user"]["value"]["selected_user"]
        integration = values["integration"]["integration_pick"]["selected_option"]["value"]
        ack(
            response_action="update",
            view={
                "type": "modal",
                "title": plain("Done"),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": f"*{name}* is ready"}}
                ],
            },
        )
        client.chat_postEphemeral(
            channel="CDEMOGENERAL",
            user=body["user"]["id"],
            text=f"Created {name} in {integration}: groups {groups}, policies {policies}, "
            f"linked to <@{who}>",
        )

    @app.command("/demo-tick")
    def open_tick(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        box = {
            "type": "input",
            "block_id": "gen",
            "optional": True,
            "label": plain("Generate"),
            "element": {
                "type": "checkboxes",
                "action_id": "value",
                "options": [option("Generate a password")],
            },
        }
        view = {
            "type": "modal",
            "callback_id": "demo_tick",
            "title": plain("Tick"),
            "submit": plain("Go"),
            "blocks": [box],
        }
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view("demo_tick")
    def ticked(ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        ack()
        picked = view["state"]["values"]["gen"]["value"]["selected_options"]
        client.chat_postEphemeral(
            channel="CDEMOGENERAL", user=body["user"]["id"], text=f"ticked: {len(picked)}"
        )

    @app.command("/demo-pages")
    def pages(ack: Any, respond: Any) -> None:
        ack()
        respond(
            blocks=[
                {"type": "section", "text": {"type": "mrkdwn", "text": "Page 1: alice, bob"}},
                {"type": "actions", "elements": [button("Next", "demo_next")]},
            ]
        )

    @app.action("demo_next")
    def next_page(ack: Any, respond: Any) -> None:
        ack()
        respond(
            replace_original=True,
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Page 2: carol"}}],
        )


@pytest.fixture(scope="module")
def world() -> Iterator[DemoWorld]:
    demo = DemoWorld(Settings()).start()
    register_handmade(demo.roleup.bolt)
    yield demo
    demo.close()


def play(world: DemoWorld, *lines: str) -> str:
    out = StringIO()
    console = Console(StringIO("".join(line + "\n" for line in lines)), out)
    world.terminal(console).run()
    return out.getvalue()


def after(text: str, marker: str) -> str:
    assert marker in text, f"{marker!r} not in:\n{text}"
    return text.split(marker, 1)[1]


def test_command_ack_is_shown_with_mentions_escaped_like_slack(world: DemoWorld) -> None:
    out = play(world, "/demo-echo hi @alice <!channel> & #general")
    assert "--- RoleUp in #general (only visible to you)" in out
    assert "You said: hi @alice <!channel> & #general" in out


def test_unknown_command_says_so(world: DemoWorld) -> None:
    out = play(world, "/nope")
    assert "Slack would show: /nope is not a command RoleUp knows." in out


def test_channel_post_from_a_lazy_listener_is_shown_then_clicked_by_the_approver(
    world: DemoWorld,
) -> None:
    out = play(world, "/demo-post", "switch", "1", "switch")
    mine = after(out, "maya> /demo-post")
    assert "--- RoleUp in #aws-approvals" in mine
    assert "Requested by @Maya Manager" in mine
    as_arjun = after(out, "You are now Arjun Approver (approver).")
    assert "[1] Approve   [2] Deny" in as_arjun
    clicked = after(as_arjun, "arjun> 1")
    assert "--- RoleUp in #aws-approvals (updated)" in clicked
    assert "Approved by @Arjun Approver" in clicked
    back = after(clicked, "You are now Maya Manager")
    assert "Approved by @Arjun Approver" in back


def test_response_url_reply_replaces_the_message_it_came_from(world: DemoWorld) -> None:
    out = play(world, "/demo-pages", "1", "1")
    assert "Page 1: alice, bob" in out
    page2 = after(out, "maya> 1\n")
    assert "(only visible to you) (updated)" in page2
    assert "Page 2: carol" in page2
    assert "There is no button 1 on your screen right now." not in page2.split("maya> 1")[0]


def test_modal_is_filled_field_by_field_with_errors_inline(world: DemoWorld) -> None:
    out = play(
        world,
        "/demo-form",
        "demo",  # Integration: dispatches, the app updates the modal
        "taken",  # Username
        "developers, 2",  # Groups
        "read",  # search Managed policies
        "ReadOnlyBilling, 1",
        "@alice",  # Slack user
        "",  # submit: refused inline
        "zoe",
        "",  # submit again
    )
    assert "| Onboard a user |" in out
    assert "  Integration: [static select: demo, prod]" in out
    assert "  > Groups of *demo* below" in out
    assert "    1) ReadOnlyAccess\n    2) ReadOnlyBilling\n" in out
    assert "PowerUserAccess" not in out
    refused = after(out, "The form is still open; fix what is marked:")
    assert "! That username is taken." in refused
    assert "*zoe* is ready" in refused
    assert "(you read it and close the modal)" in refused
    assert (
        "Created zoe in demo: groups ['developers', 'readonly'], "
        "policies ['ReadOnlyBilling', 'ReadOnlyAccess'], linked to @Alice Doe"
    ) in refused


def test_required_fields_and_cancel(world: DemoWorld) -> None:
    out = play(world, "/demo-form", "prod", "", "x", "cancel", "messages")
    assert "! This field is required." in out
    assert "! Please enter at least 2 characters." in out
    assert "(you closed the modal)" in out
    assert world.workspace.open_modal("UDEMOMAYA") is None


def test_end_of_input_leaves_cleanly(world: DemoWorld) -> None:
    out = play(world, "help")
    assert out.rstrip().endswith("Bye: the demo's database and IAM are thrown away.")


def test_a_lone_checkbox_takes_yes_or_no(world: DemoWorld) -> None:
    out = play(world, "/demo-tick", "yes", "", "/demo-tick", "n", "")
    assert "ticked: 1" in out
    assert "ticked: 0" in out


def test_quit_inside_a_modal_closes_it_and_leaves(world: DemoWorld) -> None:
    out = play(world, "/demo-form", "quit", "help")
    assert "(you closed the modal)" in out
    assert out.rstrip().endswith("Bye: the demo's database and IAM are thrown away.")
    assert "maya> help" not in out
    assert world.workspace.open_modal("UDEMOMAYA") is None


def test_an_unchanged_modal_is_not_printed_twice(world: DemoWorld) -> None:
    out = play(world, "/demo-form", "demo", "cancel")
    assert out.count("| Onboard a user |") == 2  # the form, then the form with its note
