"""Access reviews through signed Slack requests into the live app, over the moto server:
`/roleup review start` DMs each reviewer a *Review* button; the App Home lists their items with
Keep / Remove from group… / Offboard; a double Keep decides once; a reviewer is refused on their
own account; Offboard raises an approval that an approver's Approve runs; status and export."""

from __future__ import annotations

import dataclasses
import io
import json

import boto3
import pytest
from sqlalchemy import select, update

from bot.review_notices import REVIEW_OPEN_ACTION
from bot.services import approvals, review_export
from bot.services.sync import sync_integration
from bot.slack.review_blocks import KEEP_ACTION, OFFBOARD_ACTION, REMOVE_ACTION
from storage.models import Account, ReviewItem
from tests.e2e.test_home import home_opened
from tests.support.modal import submission
from tests.support.seed import add_integration

MANAGER, OTHER = "UMANAGER", "UMANAGER2"
pytestmark = pytest.mark.usefixtures("moto_gaps")


@pytest.fixture
def settings(settings, moto_url):
    return dataclasses.replace(settings, aws_endpoint_url=moto_url)


@pytest.fixture
def iam(moto_url):
    return boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)


@pytest.fixture
def prod(roleup, iam):
    core = roleup.core
    integration_id = add_integration(core, managers=[MANAGER, OTHER])
    iam.create_group(GroupName="developers")
    for name in ("alice", "bob", "carol"):
        iam.create_user(UserName=name)
        iam.add_user_to_group(GroupName="developers", UserName=name)
    iam.create_login_profile(UserName="carol", Password="Xx-123456789-!!")
    sync_integration(core, integration_id, actor="test")
    with core.sessions.begin() as session:
        session.execute(
            update(Account).where(Account.user_name == "bob").values(slack_user_id=MANAGER)
        )
    return integration_id


def click(action_id: str, value: str, user_id: str, url: str, container: str = "view"):
    return {
        "type": "block_actions",
        "user": {"id": user_id},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "trigger_id": f"1.2.{action_id}.{value}.{user_id}",
        "response_url": url,
        "container": {"type": container},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": f"review_item_{value}",
                "value": value,
                "action_ts": "1700000000.000100",
            }
        ],
    }


def as_dict(value):
    return json.loads(value) if isinstance(value, str) else value


def item_ids(roleup) -> dict[str, int]:
    with roleup.core.sessions() as session:
        return {i.user_name: i.id for i in session.scalars(select(ReviewItem)).all()}


def start(slack, slack_api) -> str:
    assert slack.command("/roleup", "review start prod 7", user_id=MANAGER).status_code == 200
    (reply,) = slack_api.wait_for("response_url:/respond/cmd")
    if "started" in reply.params["text"]:  # the reviewers' DMs follow the reply
        slack_api.wait_for(
            "chat.postMessage", where=lambda c: c.params["channel"] in (MANAGER, OTHER), count=2
        )
    return reply.params["text"]


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
