"""Which `/onboard` texts the invite listener takes, and the text it hands on: everything
/onboard's parser reads as `invite`, so the /onboard router never sees an invite."""

from __future__ import annotations

import pytest

from bot.slack.args import parse_invite, parse_onboard
from bot.slack.subcommands import roleup_matcher
from handlers.invite.command import invite_text, is_invite


@pytest.mark.parametrize(
    ("text", "handed_on"),
    [
        ("invite <@U123ABC> prod", "invite <@U123ABC> prod"),
        ("INVITE <@U123ABC>", "INVITE <@U123ABC>"),
        ("invite", "invite"),
        # The first word is not `invite` as typed, but the parser reads it so.
        ("\u202einvite <@U123ABC> prod", "<@U123ABC> prod"),
        ("\x07invite <@U123ABC>", "<@U123ABC>"),
        ('"invite" <@U123ABC>', 'e" <@U123ABC>'),
        ("", None),
        ("bogus", None),
        ("invitee <@U123ABC>", None),
        ('"unclosed', None),
    ],
)
def test_the_invite_listener_takes_what_the_parser_reads_as_invite(text, handed_on):
    assert invite_text(text) == handed_on
    assert is_invite({"text": text}) is (handed_on is not None)


@pytest.mark.parametrize(
    "text", ["", "bogus", "invite <@U1ABC>", "\u202einvite <@U123ABC>", '"invite" x', "\x00invite"]
)
def test_the_onboard_router_never_gets_an_invite(text):
    """Whatever parses as an invite is the invite listener's (so /onboard has no invite branch)."""
    try:
        parsed = parse_onboard(text)
    except Exception:
        return  # the router answers the usage error
    assert not parsed.invite or is_invite({"text": text})


def test_a_hidden_control_character_still_reaches_the_person_mentioned():
    args = parse_invite(invite_text("\u202einvite <@U123ABC> prod") or "")
    assert (args.slack_user_id, args.integration) == ("U123ABC", "prod")


@pytest.mark.parametrize(
    ("text", "names", "matches"),
    [
        ("breakglass admins 1h on call", ("breakglass",), True),
        ("BREAKGLASS admins 1h on call", ("breakglass",), True),
        ("review start", ("review_start", "review_status"), True),
        ("review status", ("review_start", "review_status"), True),
        ("review status", ("breakglass",), False),
        ("sync", ("breakglass",), False),
        # A usage error is left to the /roleup router, which answers it.
        ("breakglass", ("breakglass",), False),
        ("review bogus", ("review_start", "review_status"), False),
        ("", ("breakglass",), False),
    ],
)
def test_a_roleup_subcommand_goes_to_the_feature_that_owns_it(text, names, matches):
    assert roleup_matcher(*names)({"text": text}) is matches
