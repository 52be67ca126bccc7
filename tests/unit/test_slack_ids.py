"""The one set of Slack id patterns (bot/slack/ids.py) and the places that read ids with it."""

from __future__ import annotations

import pytest

from bot.services.errors import InvalidInput
from bot.slack import ids
from bot.slack.args import parse_invite, parse_user
from bot.slack.mrkdwn import user


@pytest.mark.parametrize(
    ("value", "user_id", "usergroup", "channel"),
    [
        ("U0123ABCD", True, False, False),  # 9 characters: older workspaces
        ("U0123ABCDEF", True, False, False),  # 11 characters: today
        ("W0123ABCDEF", True, False, False),  # Enterprise Grid
        ("U" + "A" * 20, True, False, False),  # 21: the most we accept
        ("U" + "A" * 21, False, False, False),  # 22: too long
        ("UADMIN", True, False, False),  # short ids stored before stay valid
        ("U", False, False, False),
        ("u0123abcd", False, False, False),  # lower case is never an id
        ("U0123-ABCD", False, False, False),
        ("U0123ABCD\n", False, False, False),
        ("<@U0123ABCD>", False, False, False),
        ("S0123ABCD", False, True, False),
        ("C0123ABCDEF", False, False, True),
        ("G0123ABCD", False, False, True),
        ("D0123ABCD", False, False, False),  # a DM is not an approvals channel
        ("", False, False, False),
    ],
)
def test_each_kind_has_one_pattern(value, user_id, usergroup, channel):
    assert ids.is_user(value) is user_id
    assert ids.is_usergroup(value) is usergroup
    assert ids.is_channel(value) is channel
    assert (ids.PRINCIPAL.fullmatch(value) is not None) is (user_id or usergroup)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("<@U0123ABCD>", "U0123ABCD"),
        ("<@U0123ABCD|alice>", "U0123ABCD"),
        ("U0123ABCD", "U0123ABCD"),  # bare, as long as Slack's shortest id
        ("UBUNTU", None),  # a bare word shorter than any Slack id is a name
        ("<@U" + "A" * 21 + ">", None),
        ("U" + "A" * 21, None),
        ("<@S0123ABCD>", None),
    ],
)
def test_arguments_read_user_ids_with_the_same_bounds(token, expected):
    assert parse_user(token) == expected


def test_renderers_and_parsers_agree_on_the_bound():
    longest, too_long = "U" + "A" * 20, "U" + "A" * 21
    assert user(longest) == f"<@{longest}>"
    assert user(too_long) == too_long  # shown as text, never a mention
    assert parse_invite(f"<@{longest}>").slack_user_id == longest
    with pytest.raises(InvalidInput):
        parse_invite(f"<@{too_long}>")
