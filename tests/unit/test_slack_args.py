"""Parsing every command's text: tables of cases plus properties over arbitrary text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.slack import ids
from bot.slack.args import (
    MAX_TEXT,
    AccountsArgs,
    RoleupCommand,
    UsageError,
    parse_accounts,
    parse_groups,
    parse_onboard,
    parse_roleup,
    parse_user,
    quote,
    tokenize,
)

PARSERS = [parse_accounts, parse_groups, parse_onboard, parse_roleup]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", RoleupCommand("help")),
        ("help", RoleupCommand("help")),
        ("  HELP  ", RoleupCommand("help")),
        ("integrations", RoleupCommand("integrations")),
        ("integration add", RoleupCommand("integration_add")),
        ("integration remove prod", RoleupCommand("integration_remove", integration="prod")),
        ("sync", RoleupCommand("sync")),
        ("sync prod", RoleupCommand("sync", integration="prod")),
        (
            "link <@U123ABC|alice> alice.smith",
            RoleupCommand("link", slack_user="U123ABC", user_name="alice.smith"),
        ),
        (
            "link\t<@W0ABC>   bob  prod",
            RoleupCommand("link", integration="prod", slack_user="W0ABC", user_name="bob"),
        ),
        ("audit", RoleupCommand("audit", count=10)),
        ("audit 50", RoleupCommand("audit", count=50)),
    ],
)
def test_roleup_subcommands(text, expected):
    assert parse_roleup(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "bogus",
        "help me",
        "integration",
        "integration add extra",
        "integration remove",
        "integration remove <!channel>",
        "sync a b",
        "sync <!channel>",
        "link alice bob",
        "link <@U123ABC|alice>",
        "link <@U123ABC> <!channel>",
        "audit 0",
        "audit 51",
        "audit ten",
        "audit \uff15",  # a fullwidth digit
        'link <@U123ABC> "unclosed',
        "x" * (MAX_TEXT + 1),
    ],
)
def test_roleup_malformed_input_is_a_usage_error_with_the_usage_line(text):
    with pytest.raises(UsageError) as raised:
        parse_roleup(text)
    assert "Usage: `/roleup" in str(raised.value)
    assert len(str(raised.value)) < 400


def test_usage_errors_never_echo_raw_mrkdwn():
    with pytest.raises(UsageError) as raised:
        parse_roleup("<!channel>")
    assert "<!channel>" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        ("", {"prod"}, (None, None)),
        ("prod", {"prod"}, ("prod", None)),
        ("ali", {"prod"}, (None, "ali")),
        ("prod ali", {"prod"}, ("prod", "ali")),
        ('"two words"', {"prod"}, (None, "two words")),
        ("“prod” “a b”", {"prod"}, ("prod", "a b")),
    ],
)
def test_accounts_arguments(text, names, expected):
    assert parse_accounts(text).split(names) == expected


def test_accounts_two_words_need_a_real_integration():
    with pytest.raises(UsageError):
        AccountsArgs("nope", "ali").split({"prod"})
    with pytest.raises(UsageError):
        parse_accounts("a b c")
    with pytest.raises(UsageError):
        parse_accounts("x" * 101)


def test_groups_arguments():
    assert parse_groups("alice").user_name == "alice"
    assert parse_groups("alice prod").integration == "prod"
    for bad in ["", "a b c", "<@U1>", "al ice!", "x" * 65, "<!channel>"]:
        with pytest.raises(UsageError):
            parse_groups(bad)


def test_onboard_arguments():
    assert parse_onboard("").invite is False
    parsed = parse_onboard("invite <@U123ABC|bob>")
    assert parsed.invite and parsed.invite_text == "<@U123ABC|bob>"
    with pytest.raises(UsageError):
        parse_onboard("bogus")


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("<@U123ABC|alice>", "U123ABC"),
        ("<@U123ABC>", "U123ABC"),
        ("<@W123ABC|a b>", "W123ABC"),
        ("U0123456789", "U0123456789"),
        ("<!channel>", None),
        ("<#C123|general>", None),
        ("@alice", None),
        ("<@u123>", None),
    ],
)
def test_user_mentions(token, expected):
    assert parse_user(token) == expected


@given(st.text(max_size=300))
def test_every_parser_either_parses_or_raises_usage_error(text):
    for parser in PARSERS:
        try:
            parser(text)
        except UsageError as exc:
            assert "Usage:" in str(exc)


token = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs"), blacklist_characters="\u201c\u201d\u2018\u2019\"'"
    ),
    min_size=1,
    max_size=20,
)


@given(st.lists(token, max_size=6))
def test_tokenize_inverts_quote(tokens):
    text = " ".join(quote(t) for t in tokens)
    assert tokenize(text) == tokens


@given(
    st.from_regex(ids.USER, fullmatch=True),
    st.text(alphabet=st.characters(blacklist_characters=">", blacklist_categories=("Cc", "Cs"))),
)
def test_mention_with_any_display_name_parses_to_the_id(user_id, name):
    assert parse_user(f"<@{user_id}|{name}>") == user_id


# --- reasons and tickets in command text ---------------------------------------------------
@pytest.mark.parametrize(
    ("text", "words", "reason", "ticket"),
    [
        ("alice", "alice", None, None),
        ("alice prod -- left the company", "alice prod", "left the company", None),
        ("alice -- a -- b", "alice", "a -- b", None),  # the first ` -- ` splits
        ("alice ticket:SEC-123 -- gone", "alice", "gone", "SEC-123"),
        (
            "alice TICKET:<https://j.example.com/S-1|S-1>",
            "alice",
            None,
            "https://j.example.com/S-1",
        ),
        ("alice -- &lt;!channel&gt; &amp; co", "alice", "<!channel> & co", None),
        (
            "alice -- see <https://wiki.example.com/x>",
            "alice",
            "see https://wiki.example.com/x",
            None,
        ),
        ("alice --", "alice", None, None),
        ("alice--x", "alice--x", None, None),  # no spaces: part of the words
    ],
)
def test_a_reason_and_a_ticket_are_taken_from_the_command_text(text, words, reason, ticket):
    from bot.slack.args import parse_justification

    parsed_words, why = parse_justification(text, "/offboard")
    assert (parsed_words, why.reason, why.ticket) == (words, reason, ticket)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("alice -- " + "x" * 501, "too long"),
        ("alice -- \u202eevil", "direction-changing"),
        ("alice ticket:http://x.example.com", "https://"),
        ("alice ticket:", "Say which ticket"),
        ("alice ticket:A-1 ticket:B-2", "one ticket"),
    ],
)
def test_offboard_refuses_a_bad_reason_or_ticket_with_the_usage_line(text, says):
    from bot.slack.args import parse_offboard

    with pytest.raises(UsageError, match=says) as refused:
        parse_offboard(text)
    assert "Usage: `/offboard" in str(refused.value)


def test_only_integration_remove_takes_a_reason_in_roleup():
    parsed = parse_roleup("integration remove prod ticket:OPS-1 -- retiring the account")
    assert parsed.name == "integration_remove" and parsed.integration == "prod"
    assert (parsed.why.reason, parsed.why.ticket) == ("retiring the account", "OPS-1")
    with pytest.raises(UsageError, match="Only `integration remove`"):
        parse_roleup("sync prod -- because")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "breakglass admins 2h30m prod is  down",
            RoleupCommand("breakglass", group="admins", seconds=9000, reason="prod is down"),
        ),
        (
            "breakglass integration:prod admins 30m fire",
            RoleupCommand(
                "breakglass", integration="prod", group="admins", seconds=1800, reason="fire"
            ),
        ),
        # Bounds are the service's: it refuses 5h in one sentence.
        (
            "breakglass ops 5h why",
            RoleupCommand("breakglass", group="ops", seconds=18000, reason="why"),
        ),
    ],
)
def test_breakglass_parses_group_duration_and_reason(text, expected):
    assert parse_roleup(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("breakglass", "needs a group, a duration and a reason"),
        ("breakglass admins 1h", "needs a reason"),
        ("breakglass admins soon fire", "not a duration"),
        ("breakglass admins 999h fire", "not a duration"),
        ("breakglass <!channel> 1h fire", "not an IAM group name"),
        ("breakglass integration:<x> admins 1h fire", "not an integration name"),
    ],
)
def test_a_malformed_breakglass_gets_the_usage_line(text, words):
    with pytest.raises(UsageError, match=words) as refused:
        parse_roleup(text)
    assert "Usage:" in str(refused.value) and "breakglass" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "integration", "days"),
    [
        ("review start", None, 14),
        ("review start 30", None, 30),
        ("review start prod", "prod", 14),
        ("review start prod 7", "prod", 7),
        # Two words: the first is the integration, whatever it looks like (a name may be digits).
        ("review start 2024 20", "2024", 20),
    ],
)
def test_review_start_takes_an_integration_then_days(text, integration, days):
    assert parse_roleup(text) == RoleupCommand("review_start", integration=integration, count=days)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("review start prod 0", "A review is due in 1 to 90 days."),
        ("review start prod 91", "A review is due in 1 to 90 days."),
        ("review start prod 99999999999999999999999", "A review is due in 1 to 90 days."),
        ("review start prod -3", "Say `review start [integration] [days]`."),
        ("review start prod \uff17", "Say `review start [integration] [days]`."),  # fullwidth 7
        ("review start prod seven", "Say `review start [integration] [days]`."),
        ("review start prod 7 8", "Say `review start [integration] [days]` or `review status`."),
        ("review start pr\u03bfd", "is not an integration name"),  # a Greek omicron
        ("review start <!channel> 7", "is not an integration name"),
    ],
)
def test_review_start_with_hostile_arguments_is_a_usage_error(text, says):
    with pytest.raises(UsageError) as raised:
        parse_roleup(text)
    assert says in str(raised.value)
    assert "<!channel>" not in str(raised.value)
