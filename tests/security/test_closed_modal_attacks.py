"""Attacks on an outcome whose modal was closed (bot/slack/modal_reply.py): its one DM goes to the
person who submitted, says what happened (never done when it failed, never failed when it was
done), once. Really signed requests into the real app, the Slack stand-in, IAM on a moto server,
both stores."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy import text as text_sql

from bot.demo.fake_slack import DROP
from bot.services import reviews
from bot.slack.review_blocks import RemoveView
from storage.models import ReviewItem
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.modal import submission, text, users
from tests.support.seed import ADMIN, MANAGER
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


# --- secrets -------------------------------------------------------------------------------------
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_an_integration_added_after_its_modal_closed_dms_the_outcome_but_never_its_secret_key(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    caplog.set_level(logging.DEBUG)
    assert slack.command("/roleup", "integration add", user_id=ADMIN).status_code == 200
    (opened,) = slack_api.wait_for("views.open", timeout=PATIENCE)
    values = {
        "name": {"value": text("staging")},
        "access_key_id": {"value": text("AKIAIOSFODNN7EXAMPLE")},
        "secret_access_key": {"value": text(SECRET)},
        "path_prefix": {"value": text("/")},
        "managers": {"value": users(MANAGER)},
    }
    body = submission(opened.params["view"], values, ADMIN)
    slack_api.calls.clear()
    with HeldStore(roleup.core.engine) as held:
        answer = sending(lambda: slack.interact(body))
        assert held.arrived.wait(PATIENCE), "the submission never asked the store"
        answer.result(timeout=PATIENCE)
        slack_api.close_view("V1")
    (dm,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == f"D{ADMIN}", timeout=PATIENCE
    )
    assert "*staging* added" in dm.params["text"]
    assert "closed before it could show you this" in dm.params["text"]
    wait_until(lambda: not slack_api.busy)
    assert SECRET not in slack_api.all_text() + caplog.text
    with roleup.core.engine.connect() as connection:
        stored = connection.execute(text_sql("SELECT * FROM integrations")).all()
    assert stored and SECRET not in repr(stored)
