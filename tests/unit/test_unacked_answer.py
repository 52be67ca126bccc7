"""A listener that raised before its ack (bot.slack.errors.unacked_answer): a command or a modal
submission gets the generic line with its reference instead of Bolt's 500; anything else keeps
the 500."""

from __future__ import annotations

import json

from bot.slack.errors import unacked_answer


def test_a_submission_is_answered_in_its_modal_with_the_reference():
    answer = unacked_answer({"type": "view_submission", "view": {}}, "abc12345")
    assert answer is not None and answer.status == 200
    body = json.loads(answer.body)
    assert body["response_action"] == "update"
    assert "Something went wrong on our side" in json.dumps(body["view"])
    assert "abc12345" in json.dumps(body["view"])


def test_a_command_is_answered_ephemerally_with_the_reference():
    answer = unacked_answer({"command": "/offboard", "text": "x"}, "abc12345")
    assert answer is not None and answer.status == 200
    body = json.loads(answer.body)
    assert body["response_type"] == "ephemeral" and "abc12345" in body["text"]


def test_a_click_or_an_event_keeps_bolts_500():
    assert unacked_answer({"type": "block_actions"}, "abc12345") is None
    assert unacked_answer({"type": "event_callback"}, "abc12345") is None
