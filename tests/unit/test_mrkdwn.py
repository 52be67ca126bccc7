"""Escaping and truncation of user-supplied text for Slack."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bot.slack import blocks as bk
from bot.slack.mrkdwn import code, escape, people, plain, truncate_escaped, user


@given(st.text())
def test_escaped_text_has_no_mrkdwn_control_characters(text):
    out = escape(text)
    assert "<" not in out and ">" not in out
    # Every & starts one of the three entities.
    assert re.sub(r"&(amp|lt|gt);", "", out).count("&") == 0


def test_channel_ping_and_fake_link_are_neutralised():
    assert escape("<!channel> hi") == "&lt;!channel&gt; hi"
    assert escape("<https://evil.example|bank>") == "&lt;https://evil.example|bank&gt;"
    assert escape("a & b") == "a &amp; b"


def test_control_and_bidi_characters_are_dropped_newlines_kept():
    assert escape("a\x00b\x1bc\u202ed\ne") == "abcd\ne"
    assert plain("x\x07y") == "xy"


@given(st.text(alphabet="&<>ab", max_size=60), st.integers(min_value=1, max_value=40))
def test_truncating_escaped_text_never_cuts_an_entity(text, limit):
    out = truncate_escaped(escape(text), limit)
    assert len(out) <= limit
    assert re.sub(r"&(amp|lt|gt);", "", out).count("&") == 0


def test_code_span_cannot_be_closed_early_by_a_backtick():
    assert code("a`b") == "`a'b`"


def test_mentions_only_for_real_ids():
    assert user("U123ABC") == "<@U123ABC>"
    assert user("S0GROUP1") == "<!subteam^S0GROUP1>"
    assert user("<!channel>") == "&lt;!channel&gt;"
    assert people([]) == "nobody yet"


def test_builders_truncate_to_slack_limits():
    long = "x" * 10_000
    assert len(bk.section(long)["text"]["text"]) == bk.MAX_SECTION_TEXT
    assert len(bk.header(long)["text"]["text"]) == bk.MAX_HEADER_TEXT
    assert len(bk.context(long)["elements"][0]["text"]) == bk.MAX_CONTEXT_TEXT
    assert len(bk.button(long, "a")["text"]["text"]) == bk.MAX_BUTTON_TEXT
    opts = bk.options((f"o{i}", f"v{i}") for i in range(500))
    assert len(opts) == bk.MAX_OPTIONS
    assert bk.options([("too long", "v" * 151)]) == []
    view = bk.modal(callback_id="c", title=long, blocks=[bk.divider()] * 300)
    assert len(view["title"]["text"]) == bk.MAX_MODAL_TITLE
    assert len(view["blocks"]) == bk.MAX_MODAL_BLOCKS


def test_a_message_never_has_more_than_fifty_blocks_and_keeps_its_tail():
    body = [bk.section(str(i)) for i in range(200)]
    tail = [bk.actions([bk.button("Next", "next")])]
    out = bk.fit_message(body, tail=tail)
    assert len(out) == bk.MAX_MESSAGE_BLOCKS
    assert out[-1] == tail[0]
    assert "more not shown" in out[-2]["elements"][0]["text"]
