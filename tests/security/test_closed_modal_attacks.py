"""Attacks on an outcome whose modal was closed (bot/slack/modal_reply.py): its one DM goes to the
person who submitted, says what happened (never done when it failed, never failed when it was
done), once. Really signed requests into the real app, the Slack stand-in, IAM on a moto server,
both stores."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.demo.fake_slack import DROP
from bot.services import reviews
from bot.slack.review_blocks import RemoveView
from storage.models import ReviewItem
from tests.support.modal import submission
from tests.support.seed import MANAGER
from tests.support.waiting import wait_until

pytestmark = pytest.mark.moto_server


def reviewing_alice(slack, slack_api, roleup) -> int:
    """prod's review started by its manager: alice's item (alice is in developers)."""
    assert slack.command("/roleup", "review start prod 7", user_id=MANAGER).status_code == 200
    (reply,) = slack_api.wait_for("response_url:/respond/cmd")
    assert "started" in reply.params["text"]
    with roleup.core.sessions() as session:
        return session.scalars(select(ReviewItem.id).where(ReviewItem.user_name == "alice")).one()


def test_a_review_removal_told_done_in_a_dm_is_not_then_told_failed_when_the_home_refresh_fails(
    slack, slack_api, roleup, aws, prod
):
    """The removal is done and DMed (its modal was closed); the App Home's refresh after it gets
    no answer from Slack. That is no failure of the removal: no second DM says nothing changed."""
    item = reviewing_alice(slack, slack_api, roleup)
    view = RemoveView.build(reviews.item_view(roleup.core, item))
    chosen = {
        RemoveView.GROUPS: {RemoveView.ACTION: {"selected_options": [{"value": "developers"}]}}
    }
    slack_api.reset()
    slack_api.close_view("V1")
    slack_api.script("views.publish", DROP, DROP, DROP)
    assert slack.interact(submission(view, chosen, MANAGER)).status_code == 200
    slack_api.wait_for("views.publish", count=2)
    wait_until(lambda: not slack_api.busy)
    dms = [
        c.params["text"]
        for c in slack_api.calls_to("chat.postMessage")
        if c.params["channel"] == f"D{MANAGER}"
    ]
    assert len(dms) == 1, dms
    assert "closed before it could show you this" in dms[0]
    assert "alice" in dms[0] and "Something went wrong" not in dms[0]
