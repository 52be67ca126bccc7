"""A request's reason and ticket: accepted as stored, or refused naming the rule (a table)."""

from __future__ import annotations

import pytest

from bot.services.errors import InvalidInput
from bot.services.reasons import MAX_REASON, clean_reason, clean_ticket, is_link


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("  Left the company  ", "Left the company"),
        ("Contract ended\nsee the thread", "Contract ended\nsee the thread"),
        ("<!channel> *bold* <https://evil|bank>", "<!channel> *bold* <https://evil|bank>"),
        ("x" * MAX_REASON, "x" * MAX_REASON),
    ],
)
def test_a_reason_is_kept_as_typed(raw, stored):
    # Mentions and links are kept as text: every renderer escapes them.
    assert clean_reason(raw) == stored


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("x" * (MAX_REASON + 1), r"too long \(501 characters\): at most 500"),
        ("x" * 10_000, "too long"),
        ("Left\x00the company", "control"),
        ("Left \u202eynapmoc", "direction-changing"),
        ("bell\x07", "control"),
    ],
)
def test_a_hostile_or_oversized_reason_is_refused_without_echoing_it(raw, says):
    with pytest.raises(InvalidInput, match=says) as refused:
        clean_reason(raw)
    assert refused.value.field == "reason"
    assert raw.strip() not in refused.value.user_message


@pytest.mark.parametrize(
    ("raw", "stored", "link"),
    [
        (None, None, False),
        ("", None, False),
        ("SEC-123", "SEC-123", False),
        (" ops_team-42 ", "ops_team-42", False),
        (
            "https://jira.example.com/browse/SEC-123",
            "https://jira.example.com/browse/SEC-123",
            True,
        ),
        (
            "HTTPS://tickets.example.com/a?b=1&c=2#x",
            "HTTPS://tickets.example.com/a?b=1&c=2#x",
            True,
        ),
    ],
)
def test_a_ticket_is_an_https_link_or_an_id(raw, stored, link):
    assert clean_ticket(raw) == stored
    assert is_link(stored) is link


@pytest.mark.parametrize(
    "raw",
    [
        "http://jira.example.com/SEC-1",  # not https
        "javascript:alert(1)",
        "https://",
        "https://evil.example.com|bank",  # would fake a mrkdwn link label
        "https://evil.example.com/<!channel>",
        "https://user:pw@evil.example.com/",
        "https://a.example.com/ with space",
        "SEC 123",
        "123",
        "https://x.example.com/" + "a" * 600,
        "SEC-123\u202e",
    ],
)
def test_anything_else_as_a_ticket_is_refused(raw):
    with pytest.raises(InvalidInput, match=r"https:// link or an id like SEC-123|too long") as no:
        clean_ticket(raw)
    assert no.value.field == "ticket"
    assert not is_link(raw)
