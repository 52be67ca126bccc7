"""Slack Web API calls retried by slack_sdk's handlers on the app's one client: against the
Slack stand-in scripted to answer 429 (Retry-After: 1) or 503 first, an approval message, a DM
notice and a chat.update are each delivered exactly once; a chat.postMessage whose answer is
lost after Slack acted on it is not posted again, while a chat.update is retried."""

from __future__ import annotations

import json

import pytest

from bot import notices
from bot.demo.fake_slack import DROP
from bot.services import approvals
from tests.support.approvals import add_integration, buttons
from tests.support.home import home_opened
from tests.support.requests import submit_request

RATE_LIMITED = (429, {"Retry-After": "1"})
UNAVAILABLE = (503, {})


def removal(core):
    return submit_request(
        core,
        kind="remove_integration",
        integration_id=add_integration(core),
        requester="UADMIN",
        payload={},
    )


def delivered(slack_api, channel: str) -> list[dict]:
    """The messages Slack holds in `channel` (what people see there)."""
    return [m for (c, _ts), m in slack_api.messages.items() if c == channel]


@pytest.mark.parametrize("first", [RATE_LIMITED, UNAVAILABLE], ids=["429", "503"])
def test_an_approval_message_is_posted_once_after_a_refused_first_attempt(roleup, slack_api, first):
    slack_api.script("chat.postMessage", first)
    row = removal(roleup.core)
    assert approvals.was_posted(row)
    posts = slack_api.calls_to("chat.postMessage")
    assert [p.response.get("status") for p in posts] == [first[0], None]
    (message,) = delivered(slack_api, "CAPPROVALS")
    assert set(buttons(posts[1])) == {"Approve", "Deny"}
    assert message["ts"] == row.message_ts


@pytest.mark.parametrize("first", [RATE_LIMITED, UNAVAILABLE], ids=["429", "503"])
def test_a_dm_notice_is_delivered_once_after_a_refused_first_attempt(roleup, slack_api, first):
    slack_api.script("chat.postMessage", first)
    text, blocks = "Access to ops for alice in prod has ended.", [{"type": "divider"}]
    assert notices.post(roleup.core, "UALICE01", text, blocks) is True
    assert len(slack_api.calls_to("chat.postMessage")) == 2
    (dm,) = delivered(slack_api, "UALICE01")
    assert dm["text"] == text


@pytest.mark.parametrize("first", [RATE_LIMITED, UNAVAILABLE], ids=["429", "503"])
def test_a_chat_update_lands_once_after_a_refused_first_attempt(roleup, slack_api, first):
    row = removal(roleup.core)
    slack_api.script("chat.update", first)
    decided = approvals.decide(roleup.core, row.id, approver="UAPPROVER", approve=False)
    assert decided.state == "denied"
    updates = slack_api.calls_to("chat.update")
    assert [u.response.get("status") for u in updates] == [first[0], None]
    (message,) = delivered(slack_api, "CAPPROVALS")
    assert "Denied by <@UAPPROVER>" in json.dumps(message["blocks"])


def test_a_post_whose_answer_was_lost_is_not_posted_twice(roleup, slack_api):
    # Slack posted it and the connection dropped before the answer: a retry would post again.
    slack_api.script("chat.postMessage", DROP)
    assert notices.post(roleup.core, "CPROD", "Drift digest", []) is False
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert len(delivered(slack_api, "CPROD")) == 1


def test_an_update_whose_answer_was_lost_is_retried(roleup, slack_api):
    row = removal(roleup.core)
    slack_api.script("chat.update", DROP)
    approvals.decide(roleup.core, row.id, approver="UAPPROVER", approve=False)
    assert len(slack_api.calls_to("chat.update")) == 2  # the same update twice: harmless
    (message,) = delivered(slack_api, "CAPPROVALS")
    assert "Denied by <@UAPPROVER>" in json.dumps(message["blocks"])


def test_a_retry_after_longer_than_half_a_minute_is_not_waited_out(roleup, slack_api):
    slack_api.script("chat.postMessage", (429, {"Retry-After": "3600"}))
    assert notices.post(roleup.core, "UALICE01", "hello", []) is False
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert delivered(slack_api, "UALICE01") == []


def test_bolts_own_client_retries_too(roleup, slack, slack_api):
    # The App Home is published through the client Bolt hands to listeners.
    slack_api.script("views.publish", RATE_LIMITED)
    assert slack.post(home_opened("UALICE01", "home"), content_type="application/json").ok
    published = slack_api.wait_for("views.publish", count=2)
    assert [p.response.get("status") for p in published] == [429, None]
    assert roleup.bolt.client is roleup.slack


@pytest.mark.parametrize("header", ["-1", "-30", "soon", "1.5", ""], ids=repr)
def test_a_negative_or_unreadable_retry_after_is_not_waited_and_fails_as_ratelimited(
    roleup, slack_api, header
):
    # slack_sdk slept int(Retry-After): a negative one raised ValueError out of the call, so a
    # notice or an approval message crashed its caller instead of failing as Slack said.
    slack_api.script("chat.postMessage", (429, {"Retry-After": header}))
    assert notices.post(roleup.core, "UALICE01", "hello", []) is False
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert delivered(slack_api, "UALICE01") == []
    slack_api.script("chat.postMessage", (429, {"Retry-After": header}))
    row = removal(roleup.core)
    assert row.state == "pending" and not approvals.was_posted(row)
    assert delivered(slack_api, "CAPPROVALS") == []
    scraped = roleup.core.metrics.render().decode()
    assert (
        'roleup_slack_api_errors_total{error="ratelimited",method="chat.postMessage"} 2.0'
        in scraped
    )
