"""One `escape` for every mrkdwn text (bot/slack/mrkdwn.py): the invite's blocks go through it
too, so a bidi override or a control character in a name never reaches Slack."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

from bot.services.invites import CreatedInvite
from handlers.invite.blocks import InviteAnswerModal, answered_dm, invite_dm, invite_sent_view
from tests.support.source import nodes, parsed

ROOT = Path(__file__).resolve().parents[2]
# U+202E RIGHT-TO-LEFT OVERRIDE shows "evil\u202egpj.exe" as "evilexe.jpg"; U+0007 is BEL.
HOSTILE = "dev\u202eops\u0007<!channel>"
SHOWN = "devops&lt;!channel&gt;"


def _created() -> CreatedInvite:
    return CreatedInvite(
        invite_id=7,
        token="t",
        url="https://roleup.example/invite/t",
        expires_at=datetime(2030, 1, 2, 3, 4, tzinfo=UTC),
        slack_user_id="U0123ABCD",
        integration=HOSTILE,
    )


def test_the_invite_dm_strips_bidi_and_control_characters_and_defuses_mentions():
    _, blocks = invite_dm(_created(), manager="U0MANAGER1", groups=[HOSTILE], policies=[HOSTILE])
    text = blocks[0]["text"]["text"]
    assert "\u202e" not in text and "\u0007" not in text and "<!channel>" not in text
    assert f"*{SHOWN}*" in text and f"*Groups:* {SHOWN}" in text


def test_every_invite_surface_shows_names_through_the_one_escape():
    _, answered = answered_dm(HOSTILE, HOSTILE)
    sent = invite_sent_view(_created())
    errors = InviteAnswerModal.with_errors({"blocks": [{"type": "section"}]}, {"username": HOSTILE})
    for surface in (answered, sent, errors):
        shown = json.dumps(surface, ensure_ascii=False)
        assert "\u202e" not in shown and "\u0007" not in shown, shown
        assert "<!channel>" not in shown and SHOWN in shown


def test_no_other_function_is_named_escape():
    """A second escaper is how the invite's skipped the control and bidi stripping."""
    found = []
    for folder in ("bot", "handlers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in nodes(path):
                is_def = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                name = getattr(node, "name", "")
                if is_def and name.lstrip("_") == "escape":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == ["bot/slack/mrkdwn.py:" + str(_line_of_escape())]


def _line_of_escape() -> int:
    module = parsed(ROOT / "bot/slack/mrkdwn.py")
    return next(n.lineno for n in module.body if getattr(n, "name", "") == "escape")
