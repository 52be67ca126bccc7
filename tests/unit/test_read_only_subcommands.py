"""Which `/roleup` bodies the retry guard takes for read-only: help alone, matched by the parse
that routes it (bot.slack.subcommands.roleup_matcher), never by anything else in the text."""

from __future__ import annotations

from typing import Any

import pytest

from bot.slack.retry_guard import ReadOnlyRequests
from bot.slack.subcommands import roleup_matcher


def help_only() -> ReadOnlyRequests:
    read_only = ReadOnlyRequests()
    read_only.add_subcommand("/roleup", roleup_matcher("help"))
    return read_only


@pytest.mark.parametrize("text", ["help", "HELP", "  help ", ""])
def test_help_is_read_only(text):
    assert help_only().covers({"command": "/roleup", "text": text}) is True


@pytest.mark.parametrize(
    "body",
    [
        {"command": "/roleup", "text": "helpx"},
        {"command": "/roleup", "text": "help extra words"},
        {"command": "/roleup", "text": "help\nsync prod"},
        {"command": "/roleup", "text": "sync prod"},
        {"command": "/roleup", "text": "integration remove prod -- help"},
        {"command": "/roleup", "text": ["help"]},
        {"command": "/roleupx", "text": "help"},
        {"command": "/accounts", "text": "help"},
        {"command": ["/roleup"], "text": "help"},
        {"type": "view_submission", "command": "/roleup", "text": "help", "trigger_id": "1"},
        {"type": "block_actions", "command": "/roleup", "text": "help", "actions": []},
    ],
)
def test_anything_else_is_not(body: dict[str, Any]):
    assert help_only().covers(body) is False
