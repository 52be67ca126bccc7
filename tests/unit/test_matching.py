"""Listener matchers swapped for ones that take the body straight (bot.slack.matching)."""

from __future__ import annotations

from slack_bolt import App, BoltRequest

from bot.slack.matching import BodyMatcher, match_by_body
from tests.support.signing import command_body


def bare_app() -> App:
    return App(signing_secret="s", token="xoxb-unit", token_verification_enabled=False)


def test_body_only_matchers_are_swapped_and_decide_as_before():
    app = bare_app()
    app.command("/accounts")(lambda ack: ack())
    app.command("/onboard", matchers=[lambda body: body.get("text") == "invite"])(lambda: None)
    app.action("b", matchers=[lambda context: True])(lambda ack: ack())
    assert match_by_body(app) == 4  # both commands' names, the invite check, b's action id
    kinds = [[type(m) for m in listener.matchers] for listener in app._listeners]
    assert kinds[0] == [BodyMatcher] and kinds[1] == [BodyMatcher, BodyMatcher]
    assert kinds[2][0] is BodyMatcher and kinds[2][1] is not BodyMatcher  # takes `context`
    request = BoltRequest(body=command_body("/onboard", "invite"))
    matched = [all(m.matches(request, None) for m in lst.matchers) for lst in app._listeners]
    assert matched == [False, True, False]


def test_a_bolt_without_the_listener_list_keeps_its_own_matching(caplog):
    app = bare_app()
    app.command("/accounts")(lambda ack: ack())
    listeners = app._listeners
    del app._listeners  # as a slack-bolt release that keeps them elsewhere would be
    assert match_by_body(app) == 0
    assert "listener matching left to Bolt" in caplog.text
    assert not any(isinstance(m, BodyMatcher) for lst in listeners for m in lst.matchers)
