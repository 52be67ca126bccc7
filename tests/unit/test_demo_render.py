"""The renderer turns hand-made Block Kit into readable text, numbering what can be pressed."""

from __future__ import annotations

from bot.demo.render import Numbering, mrkdwn, render_message, render_view


class Names:
    def user_label(self, user_id: str) -> str:
        return {"U1": "Maya Manager"}.get(user_id, user_id)

    def channel_label(self, channel_id: str) -> str:
        return {"C1": "aws-approvals"}.get(channel_id, channel_id)


NAMES = Names()


def test_mentions_channels_and_links_read_as_names() -> None:
    text = "Asked by <@U1> in <#C1> - see <https://example.com/x|the plan> or <https://e.org>"
    assert mrkdwn(text, NAMES) == (
        "Asked by @Maya Manager in #aws-approvals - see the plan (https://example.com/x) "
        "or https://e.org"
    )


def test_escaped_text_shows_literally_and_cannot_ping() -> None:
    assert mrkdwn("user &lt;!channel&gt; &amp; co", NAMES) == "user <!channel> & co"
    assert mrkdwn("<!here> look", NAMES) == "@here look"


def test_dates_show_their_fallback_or_the_time() -> None:
    assert mrkdwn("<!date^0^{date_short}|Jan 1>", NAMES) == "Jan 1"
    assert mrkdwn("<!date^86400^{date}>", NAMES) == "1970-01-02 00:00 UTC"


def test_message_blocks_render_in_order_with_numbered_buttons() -> None:
    message = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Offboard bob"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Requested by* <@U1>"},
                "fields": [
                    {"type": "mrkdwn", "text": "*Integration*\ndemo"},
                    {"type": "mrkdwn", "text": "*Access keys*\n2"},
                ],
            },
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "Expires in 24 hours"}]},
            {
                "type": "actions",
                "block_id": "decide",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approve",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": "deny",
                        "text": {"type": "plain_text", "text": "Deny"},
                    },
                ],
            },
        ],
    }
    numbering = Numbering()
    lines = render_message(message, NAMES, numbering)
    assert lines == [
        "  Offboard bob",
        "  ============",
        "  *Requested by* @Maya Manager",
        "  | *Integration* demo",
        "  | *Access keys* 2",
        "  ----------------------------------------",
        "  > Expires in 24 hours",
        "  [1] Approve   [2] Deny",
    ]
    assert [c.element["action_id"] for c in numbering.controls] == ["approve", "deny"]
    second = numbering.get(2)
    assert second is not None and second.block_id == "decide"
    assert numbering.get(3) is None


def test_numbering_continues_across_messages_and_accessories() -> None:
    numbering = Numbering()
    refresh = {
        "type": "section",
        "block_id": "top",
        "text": {"type": "mrkdwn", "text": "Accounts"},
        "accessory": {
            "type": "button",
            "action_id": "refresh",
            "text": {"type": "plain_text", "text": "Refresh"},
        },
    }
    render_message({"blocks": [refresh]}, NAMES, numbering)
    lines = render_message({"blocks": [refresh]}, NAMES, numbering)
    assert "[2] Refresh" in lines[-1]


def test_without_numbering_buttons_show_but_cannot_be_picked() -> None:
    message = {
        "blocks": [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "a",
                        "text": {"type": "plain_text", "text": "Go"},
                    }
                ],
            }
        ]
    }
    assert render_message(message, NAMES) == ["  [Go]"]


def test_text_only_message_and_attachments() -> None:
    lines = render_message(
        {"text": "Hi <@U1>", "attachments": [{"text": "more &amp; more"}]}, NAMES
    )
    assert lines == ["  Hi @Maya Manager", "  more & more"]


def test_unknown_blocks_are_named_not_dropped() -> None:
    assert render_message({"blocks": [{"type": "video"}]}, NAMES) == ["  (a video block)"]


def test_modal_shows_title_fields_and_buttons() -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Onboard a user"},
        "submit": {"type": "plain_text", "text": "Create"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "username",
                "label": {"type": "plain_text", "text": "Username"},
                "element": {"type": "plain_text_input", "action_id": "value"},
                "hint": {"type": "plain_text", "text": "letters and digits"},
            },
            {
                "type": "input",
                "block_id": "groups",
                "optional": True,
                "label": {"type": "plain_text", "text": "Groups"},
                "element": {
                    "type": "multi_static_select",
                    "action_id": "value",
                    "options": [
                        {
                            "text": {"type": "plain_text", "text": "developers"},
                            "value": "developers",
                        },
                        {"text": {"type": "plain_text", "text": "readonly"}, "value": "readonly"},
                    ],
                },
            },
        ],
    }
    lines = render_view(view, NAMES, Numbering())
    assert lines[1] == "| Onboard a user |"
    assert "  Username: [plain text input]  (letters and digits)" in lines
    assert "  Groups (optional): [multi static select: developers, readonly]" in lines
    assert lines[-1] == "  (modal buttons: Create / Cancel)"
