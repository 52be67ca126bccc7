"""What a closed modal's outcome says in its DM: the view's text, as the modal would show it."""

from __future__ import annotations

from bot.slack import blocks as bk
from bot.slack.modal_reply import said


def test_a_message_modal_says_its_mrkdwn_as_it_is():
    view = bk.message_modal("Onboard", ":white_check_mark: *bob* was created in *prod*.")
    assert said(view) == ":white_check_mark: *bob* was created in *prod*."


def test_plain_text_is_escaped_and_context_lines_follow_their_sections():
    view = {
        "blocks": [
            {"type": "section", "text": {"type": "plain_text", "text": "<!channel> & <@U1>"}},
            {"type": "divider"},
            {"type": "input", "label": {"type": "plain_text", "text": "Password"}},
            bk.context("a note", "another"),
        ]
    }
    assert said(view) == "&lt;!channel&gt; &amp; &lt;@U1&gt;\na note\nanother"


def test_a_view_without_text_says_nothing():
    assert said({"blocks": [{"type": "divider"}]}) == ""
    assert said({}) == ""
