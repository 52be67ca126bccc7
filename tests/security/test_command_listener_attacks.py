"""Walking around the slash-command listener (bot.slack.commands): where its replies may go,
text it cannot read, and failures after its ack, all through really signed requests into the
real app, with Slack's Web API stood in by tests/support/slack_api.py."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest

from bot.slack.respond import response_url_allowed
from tests.support.approvals import PATIENCE, add_integration
from tests.support.waiting import wait_until

NOT_TOLD = "could not tell the user that /roleup integrations failed"


def failure_after_ack_told(
    slack, slack_api, caplog, monkeypatch, target: str, command: str, text: str
) -> None:
    """`target` raises (a secret in its message); the person still gets one generic line whose
    reference is in the log, and the secret is in neither the reply nor the ack."""

    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("could not connect to server: password hunter2")

    monkeypatch.setattr(target, broken)
    caplog.set_level(logging.INFO)
    response = slack.command(command, text, user_id="UMANAGER")
    assert response.status_code == 200 and "hunter2" not in response.text
    (reply,) = slack_api.wait_for("response_url:/respond/cmd", timeout=PATIENCE)
    shown = reply.params["text"]
    assert "Something went wrong on our side" in shown and "hunter2" not in shown
    ref = shown.split("reference `")[1].split("`")[0]
    assert f"(ref {ref})" in caplog.text


def hostile_response_urls(base: str) -> dict[str, str]:
    """The stand-in's own /respond/ path reached under another spelling of its host: a reply
    posted there is recorded, so a test sees it."""
    here = urlsplit(base)
    other = f"localhost:{here.port}"
    return {
        "another host": f"http://{other}/respond/other-host",
        "a user part naming the allowed host": f"http://{here.netloc}@{other}/respond/user-part",
        "a backslash before the user part": f"http://{here.netloc}\\@{other}/respond/backslash",
    }


@pytest.mark.parametrize(
    "case",
    [
        "another host",
        "a user part naming the allowed host",
        "a backslash before the user part",
    ],
)
def test_a_reply_is_never_posted_to_a_response_url_outside_slack(
    roleup, slack, slack_api, caplog, case
):
    caplog.set_level(logging.WARNING)
    url = hostile_response_urls(slack_api.response_url_base)[case]
    response = slack.command("/roleup", "integrations", user_id="UADMIN", response_url=url)
    assert response.status_code == 200
    # The work ran after the ack and found nowhere to say so.
    wait_until(lambda: NOT_TOLD in caplog.text, timeout=PATIENCE)
    assert "a response_url outside Slack was dropped" in caplog.text
    assert url not in caplog.text
    assert [c for c in slack_api.calls if c.method.startswith("response_url:")] == []


def test_a_reply_to_slacks_own_response_url_still_arrives(roleup, slack, slack_api):
    response = slack.command("/roleup", "integrations", user_id="UADMIN")
    assert response.status_code == 200
    (reply,) = slack_api.wait_for("response_url:/respond/cmd", timeout=PATIENCE)
    assert "There are no integrations yet" in reply.params["text"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/commands/T1/2/abc", True),
        ("https://hooks.slack-gov.com/actions/T1/2/abc", True),
        ("https://HOOKS.SLACK.COM/commands/T1/2/abc", True),
        ("https://hooks.slack.com.evil.example/commands/T1", False),
        ("https://hooks.slack.com@evil.example/commands/T1", False),
        ("https://hooks.slack.com:444/commands/T1", False),
        ("http://hooks.slack.com/commands/T1", False),
        ("https://hooks.slack.com\\@evil.example/", False),
        ("https://hooks.slack.com/commands/T1\r\nHost: evil", False),
        ("https://evil.example/commands/T1", False),
        ("", False),
    ],
)
def test_only_slacks_response_urls_are_allowed(url, allowed):
    assert response_url_allowed(url) is allowed


def test_the_slack_api_stand_in_is_allowed_only_when_slack_api_url_names_it():
    url = "http://127.0.0.1:5000/respond/x"
    assert response_url_allowed(url, "http://127.0.0.1:5000/api/")
    assert not response_url_allowed(url, "http://127.0.0.1:5001/api/")
    assert not response_url_allowed(url)


def test_a_parser_failure_answers_in_the_ack_with_a_reference(
    roleup, slack, slack_api, caplog, monkeypatch
):
    """A bug in a parser (not bad text) is a generic line with a reference the admin can find in
    the log, not an HTTP 500 from a matcher of /roleup's feature listeners (no answer at all);
    the text typed is not echoed and the traceback is the log's alone."""

    def broken(args: list[str]) -> None:
        raise KeyError(" ".join(args))

    monkeypatch.setattr("bot.slack.args._ROLEUP", {"integrations": broken})
    caplog.set_level(logging.INFO)
    response = slack.command("/roleup", "integrations hunter2-typed", user_id="UADMIN")
    assert response.status_code == 200
    answer = response.json()["text"]
    assert "Something went wrong on our side" in answer and "reference `" in answer
    assert "hunter2" not in answer and "Traceback" not in answer and "KeyError" not in answer
    ref = answer.split("reference `")[1].split("`")[0]
    assert f"(ref {ref})" in caplog.text


def test_a_failure_after_the_ack_is_told_to_the_user_with_a_reference(
    roleup, slack, slack_api, caplog, monkeypatch
):
    add_integration(roleup.core)
    target = "handlers.admin.command.listing.accounts_per_integration"
    failure_after_ack_told(slack, slack_api, caplog, monkeypatch, target, "/roleup", "integrations")


def test_a_failure_after_the_ack_of_an_invite_is_told_to_the_user_with_a_reference(
    roleup, slack, slack_api, caplog, monkeypatch
):
    """/onboard invite answers outside the command outline (it opens a modal): a failure that is
    not a refusal (the store down) still ends as one reply, not silence after the ack."""
    add_integration(roleup.core)
    target = "handlers.invite.command.listing.integrations"
    failure_after_ack_told(
        slack, slack_api, caplog, monkeypatch, target, "/onboard", "invite <@UNEW|new>"
    )
    assert slack_api.calls_to("views.open") == []


@pytest.mark.parametrize(
    "text",
    [" \t \u00a0 \u3000 ", "\x00" * 8, "integrations " + "x" * 40_000, "sync " + "\u200b" * 2000],
    ids=["only whitespace", "only NUL", "40 KB", "zero-width spaces"],
)
def test_unreadable_text_is_one_short_line_in_the_ack(roleup, slack, slack_api, text):
    response = slack.command("/roleup", text, user_id="UADMIN")
    assert response.status_code == 200
    answer = response.json()
    assert answer.get("response_type") == "ephemeral"
    shown = answer["text"] + str(answer.get("blocks", ""))
    assert len(shown) < 4000 and "\x00" not in shown and "Traceback" not in shown
