"""One Slack user-group lookup (bot/slack/people.py), shared by the approval notices, the review
notices and the approval policy, and kept for the directory's minute: one usergroups.users.list
call on the Slack stand-in serves them all."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.review_notices import reviewers_of
from bot.services.policy import Recipients
from bot.slack.approval_messages import ApprovalPostFailed, SlackApprovalNotifier
from bot.slack.client import create_slack_client
from bot.slack.people import SlackPeople
from storage.models import Request, utcnow
from tests.support.slack_api import FakeSlackApi

APPROVERS = "S0APPROVE1"
APRIL, BORIS = "U0APRIL001", "U0BORIS001"


def _request() -> Request:
    now = utcnow()
    return Request(
        id="0f0e0d0c-0b0a-4000-8000-000000000001",
        kind="set_groups",
        requester="U0MANAGER1",
        state="pending",
        created_at=now,
        expires_at=now + timedelta(hours=24),
        steps=[],
        payload={"target": "alice", "added": ["devs"], "removed": ["admins"]},
    )


@pytest.fixture
def client(slack_api: FakeSlackApi) -> Any:
    slack_api.usergroups[APPROVERS] = [APRIL, BORIS]
    return create_slack_client("xoxb-test", slack_api.url)


def _dm_targets(slack_api: FakeSlackApi) -> list[str]:
    return [c.params["users"] for c in slack_api.calls_to("conversations.open")]


def test_one_lookup_serves_notices_reviews_and_decisions_within_the_minute(
    slack_api: FakeSlackApi, client: Any, core: Any
) -> None:
    people = SlackPeople(client)
    core.people = people
    notifier = SlackApprovalNotifier(client, people)

    notifier.post_request(_request(), Recipients(channels=[], people=[APPROVERS]))
    notifier.post_request(_request(), Recipients(channels=[], people=[APPROVERS, "U0CAROL01"]))
    assert reviewers_of(core, [APPROVERS, "U0CAROL01"]) == [APRIL, BORIS, "U0CAROL01"]
    assert people.member_of(BORIS, APPROVERS) and not people.member_of("U0CAROL01", APPROVERS)

    assert _dm_targets(slack_api) == [APRIL, BORIS, APRIL, BORIS, "U0CAROL01"]
    assert len(slack_api.calls_to("usergroups.users.list")) == 1


def test_an_answer_past_its_time_is_asked_again(slack_api: FakeSlackApi, client: Any) -> None:
    people = SlackPeople(client, ttl=0)  # every answer is already too old
    notifier = SlackApprovalNotifier(client, people)
    notifier.post_request(_request(), Recipients(channels=[], people=[APPROVERS]))
    slack_api.usergroups[APPROVERS] = [BORIS]  # April left the group
    notifier.post_request(_request(), Recipients(channels=[], people=[APPROVERS]))

    assert _dm_targets(slack_api) == [APRIL, BORIS, BORIS]
    assert len(slack_api.calls_to("usergroups.users.list")) == 2


def test_a_failed_lookup_is_reported_and_not_kept(slack_api: FakeSlackApi, client: Any) -> None:
    people = SlackPeople(client)
    notifier = SlackApprovalNotifier(client, people)
    slack_api.fail("usergroups.users.list", "missing_scope")
    with pytest.raises(ApprovalPostFailed, match="missing_scope"):
        notifier.post_request(_request(), Recipients(channels=[], people=[APPROVERS]))

    slack_api.overrides.clear()  # the scope is granted
    notifier.post_request(_request(), Recipients(channels=[], people=[APPROVERS]))
    assert _dm_targets(slack_api) == [APRIL, BORIS]
    assert len(slack_api.calls_to("usergroups.users.list")) == 2
