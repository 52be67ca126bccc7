"""Access reviews through signed Slack requests into the live app, over the moto server:
`/roleup review start` DMs each reviewer a *Review* button; the App Home lists their items with
Keep / Remove from group… / Offboard; a double Keep decides once; a reviewer is refused on their
own account; Offboard raises an approval that an approver's Approve runs; status and export."""

# ruff: noqa: F811 (the fixtures of tests/support/review_slack.py, imported and asked for by name)

from __future__ import annotations

import io
import json

import pytest

from bot.review_notices import REVIEW_OPEN_ACTION
from bot.services import approvals, review_export
from bot.slack.review_blocks import KEEP_ACTION, OFFBOARD_ACTION, REMOVE_ACTION
from storage.models import ReviewItem
from tests.support.home import home_opened
from tests.support.modal import submission
from tests.support.review_slack import (  # noqa: F401
    MANAGER,
    OTHER,
    as_dict,
    click,
    iam,
    item_ids,
    prod,
    settings,
    start,
)

pytestmark = pytest.mark.usefixtures("moto_gaps")


def test_a_started_review_dms_each_reviewer_and_lists_items_in_the_app_home(
    slack, slack_api, prod, roleup
):
    text = start(slack, slack_api)
    assert "Access review #1 of *prod* started: 3 accounts (3 flagged)" in text
    dms = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] in (MANAGER, OTHER), count=2
    )
    by_channel = {c.params["channel"]: as_dict(c.params["blocks"]) for c in dms}
    # bob is linked to the manager: 2 for him, 3 for the other manager.
    assert "2 accounts for you to review" in str(by_channel[MANAGER][0])
    assert "3 accounts for you to review" in str(by_channel[OTHER][0])
    assert by_channel[OTHER][1]["elements"][0]["action_id"] == REVIEW_OPEN_ACTION

    slack_api.reset()
    slack.post(home_opened(OTHER, "home"), content_type="application/json")
    (published,) = slack_api.wait_for("views.publish")
    view = as_dict(published.params["view"])
    shown = json.dumps(view)
    assert "Waiting for you" in shown and "3 accounts to review" in shown
    assert "*carol* in *prod*" in shown and "console password without MFA" in shown
    actions = [b for b in view["blocks"] if b.get("block_id", "").startswith("review_item_")]
    assert len(actions) == 3
    labels = [e["text"]["text"] for e in actions[0]["elements"]]
    assert labels == ["Keep", "Remove from group…", "Offboard"]


def test_keep_through_its_modal_decides_once_even_when_submitted_twice(
    slack, slack_api, prod, roleup
):
    start(slack, slack_api)
    alice = item_ids(roleup)["alice"]
    url = slack_api.response_url_base + "home"
    slack.interact(click(KEEP_ACTION, str(alice), OTHER, url))
    (opened,) = slack_api.wait_for("views.open")
    view = as_dict(opened.params["view"])
    note = {"note": {"value": {"type": "plain_text_input", "value": "still in the team"}}}
    first = slack.interact(submission(view, note, OTHER))
    assert first.status_code == 200 and first.text in ("", "null")
    second = slack.interact(submission(view, note, MANAGER)).json()
    assert second["response_action"] == "update"
    assert "alice was already decided: keep by &lt;@UMANAGER2&gt;" in json.dumps(second)
    with roleup.core.sessions() as session:
        kept = session.get(ReviewItem, alice)
    assert (kept.decision, kept.decided_by, kept.note) == ("keep", OTHER, "still in the team")


def test_a_reviewer_is_refused_on_their_own_account(slack, slack_api, prod, roleup, iam):
    start(slack, slack_api)
    bob = item_ids(roleup)["bob"]
    slack_api.reset()
    slack.interact(click(OFFBOARD_ACTION, str(bob), MANAGER, slack_api.response_url_base + "h"))
    (told,) = slack_api.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == MANAGER)
    assert told.params["text"] == (
        ":no_entry: That account is linked to you, so another reviewer decides it."
    )
    with roleup.core.sessions() as session:
        assert session.get(ReviewItem, bob).decision is None
    assert iam.get_user(UserName="bob")["User"]["UserName"] == "bob"


def test_offboard_raises_an_approval_that_an_approver_approves(slack, slack_api, prod, roleup, iam):
    start(slack, slack_api)
    bob = item_ids(roleup)["bob"]
    slack_api.reset()
    slack.interact(click(OFFBOARD_ACTION, str(bob), OTHER, slack_api.response_url_base + "h"))
    posted = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == "CAPPROVALS"
    )
    assert "Offboarding request" in str(posted[0].params)
    (told,) = slack_api.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == OTHER)
    assert "Asked to offboard bob from prod. An approver decides it." in told.params["text"]
    with roleup.core.sessions() as session:
        item = session.get(ReviewItem, bob)
    assert (item.decision, item.decided_by) == ("offboard", OTHER)
    approvals.decide(roleup.core, item.request_id, approver="UAPPROVER", approve=True)
    assert "bob" not in [u["UserName"] for u in iam.list_users()["Users"]]

    out = io.StringIO()
    review_export.export(roleup.core, 1, out, "jsonl")
    rows = {r["account"]: r for r in map(json.loads, out.getvalue().splitlines())}
    assert rows["bob"]["request_state"] == "done" and rows["bob"]["decided_by"] == OTHER


def test_remove_from_group_opens_a_modal_of_the_accounts_groups(slack, slack_api, prod, roleup):
    start(slack, slack_api)
    carol = item_ids(roleup)["carol"]
    slack.interact(click(REMOVE_ACTION, str(carol), OTHER, slack_api.response_url_base + "h"))
    (opened,) = slack_api.wait_for("views.open")
    view = as_dict(opened.params["view"])
    assert "developers" in json.dumps(view)
    chosen = {"groups": {"value": {"selected_options": [{"value": "developers"}]}}}
    assert slack.interact(submission(view, chosen, OTHER)).json()["response_action"] == "update"
    slack_api.wait_for("views.update", where=lambda c: "Asked to remove carol" in str(c.params))
    with roleup.core.sessions() as session:
        item = session.get(ReviewItem, carol)
    assert (item.decision, item.removed_groups) == ("remove", ["developers"])
    assert item.request_id is not None


def test_review_status_shows_progress_per_reviewer(slack, slack_api, prod, roleup):
    start(slack, slack_api)
    slack_api.reset()
    slack.command("/roleup", "review status", user_id=MANAGER)
    (reply,) = slack_api.wait_for("response_url:/respond/cmd")
    text = reply.params["text"]
    assert "Access review #1 of prod" in text and "0/3 decided" in text
    assert "<@UMANAGER>: 0 decided, 2 open" in text
    assert "<@UMANAGER2>: 0 decided, 3 open" in text


def test_a_second_start_is_refused_naming_the_open_review(slack, slack_api, prod):
    start(slack, slack_api)
    slack_api.reset()
    text = start(slack, slack_api)
    assert "Access review #1 of prod is still open" in text
