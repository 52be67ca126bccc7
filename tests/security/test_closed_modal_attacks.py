"""Attacks on an outcome whose modal was closed (bot/slack/modal_reply.py): its one DM goes to the
person who submitted, says what happened (never done when it failed, never failed when it was
done), once. Really signed requests into the real app, the Slack stand-in, IAM on a moto server,
both stores."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy import text as text_sql

from bot.demo.fake_slack import DROP
from bot.services import reviews
from bot.slack.review_blocks import KeepView, RemoveView
from storage.models import ReviewItem
from tests.security.snapshot import all_cells, leaks
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.integration_form import added
from tests.support.modal import options, submission, text, users
from tests.support.onboard_modal import fill, open_modal
from tests.support.seed import ADMIN, MANAGER
from tests.support.stalled_submissions import RETRY
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
    body = added(slack, slack_api, "staging", SECRET)
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


# --- /groups: twice, false outcomes, forged recipients -------------------------------------------
def groups_submission(slack, slack_api, user: str = MANAGER) -> dict[str, Any]:
    """alice's /groups form, opened by the manager, submitted by `user` to add ops."""
    assert slack.command("/groups", "alice", user_id=MANAGER).status_code == 200
    (filled,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    chosen = {"groups": {"value": options("developers", "ops")}}
    return submission(filled.params["view"], chosen, user)


def ran_late(roleup, slack_api, sending, send: Callable[[], Any], close: bool = True) -> Any:
    """`send()` acked while the store is held; the modal closed (if `close`) before it answers."""
    slack_api.calls.clear()
    with HeldStore(roleup.core.engine) as held:
        answer = sending(send)
        assert held.arrived.wait(PATIENCE), "the submission never asked the store"
        acked = answer.result(timeout=PATIENCE)
        if close:
            slack_api.close_view("V1")
    return acked


def groups_of_alice(aws) -> list[str]:
    return sorted(g["GroupName"] for g in aws.list_groups_for_user(UserName="alice")["Groups"])


def test_a_dm_slack_posted_but_never_answered_is_not_sent_again(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    caplog.set_level(logging.WARNING, logger="bot.slack.modal_reply")
    body = groups_submission(slack, slack_api)
    slack_api.script("chat.postMessage", DROP)
    ran_late(roleup, slack_api, sending, lambda: slack.interact(body))
    wait_until(lambda: "the DM of its outcome failed" in caplog.text)
    wait_until(lambda: not slack_api.busy)
    (posted,) = slack_api.calls_to("chat.postMessage")
    assert posted.params["channel"] == f"D{MANAGER}" and "Added: ops" in posted.params["text"]
    assert [c.response.get("error") for c in slack_api.calls_to("views.update")] == ["not_found"]
    assert groups_of_alice(aws) == ["developers", "ops"]


def test_an_outcome_whose_views_update_got_no_answer_is_never_dmed_as_failed(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    """The group change is done; Slack took the views.update but never answered it. Whether it
    was shown is unknown: no DM (certainly none saying nothing changed), a warning in the log."""
    caplog.set_level(logging.WARNING, logger="bot.slack.modal_reply")
    body = groups_submission(slack, slack_api)
    slack_api.script("views.update", DROP, DROP, DROP)
    ran_late(roleup, slack_api, sending, lambda: slack.interact(body), close=False)
    wait_until(lambda: "could not show an outcome in its modal" in caplog.text)
    wait_until(lambda: not slack_api.busy)
    assert slack_api.calls_to("chat.postMessage") == []
    assert "Something went wrong" not in slack_api.all_text()
    assert groups_of_alice(aws) == ["developers", "ops"]


@pytest.mark.parametrize("forged", ["<!channel>", "U123|x", "CPUBLIC", "SGROUP", ""])
def test_a_submission_from_a_forged_user_id_is_dmed_to_nobody(
    slack, slack_api, roleup, aws, prod, sending, forged
):
    """Only the manager may change alice's groups: a body naming anyone else is refused after
    its ack, in the pool; with its modal closed that refusal goes to no channel, user group or
    made-up id (conversations.open of a channel id would open it)."""
    body = groups_submission(slack, slack_api, user=forged)
    slack_api.calls.clear()
    slack_api.close_view("V1")
    assert "Applying" in slack.interact(body).text  # refused after the ack, in the pool
    slack_api.wait_for("views.update", timeout=PATIENCE)
    wait_until(lambda: not slack_api.busy)
    assert slack_api.calls_to("chat.postMessage") == []
    assert slack_api.calls_to("conversations.open") == []
    assert groups_of_alice(aws) == ["developers"]


# --- hostile values ------------------------------------------------------------------------------
HOSTILE = "<!here> *bold* <@UOTHER> " + "x" * 20_000
SLACK_TEXT_LIMIT = 40_000  # characters Slack keeps of a message's text


def only_readable_dms(slack_api) -> list[str]:
    """Every DM sent: none pings (no raw <!here>/<@…> from the value), none past Slack's limit."""
    wait_until(lambda: not slack_api.busy)
    texts = [str(c.params.get("text", "")) for c in slack_api.calls_to("chat.postMessage")]
    for sent in texts:
        assert "<!here>" not in sent and "<@UOTHER>" not in sent, sent[:300]
        assert len(sent) <= SLACK_TEXT_LIMIT
    return texts


@pytest.mark.parametrize(
    "field", ["username", "groups"], ids=["hostile-username", "forged-group-option"]
)
def test_a_hostile_value_in_a_late_refused_onboarding_makes_no_pinging_or_oversized_dm(
    slack, slack_api, roleup, aws, prod, sending, field
):
    view = open_modal(slack, slack_api)
    if field == "username":
        values = fill(prod, HOSTILE)
    else:
        values = fill(prod, "bob", groups=("developers", HOSTILE))
    body = submission(view, values, MANAGER)
    acked = ran_late(roleup, slack_api, sending, lambda: slack.interact(body)).json()
    # Refused in the ack itself (a plain-text field error): no late path, nothing to DM.
    assert acked["response_action"] == "errors"
    assert all(len(error) <= 150 for error in acked["errors"].values())
    assert only_readable_dms(slack_api) == []
    assert "bob" not in [u["UserName"] for u in aws.list_users()["Users"]]


def test_a_forged_group_option_in_a_late_groups_change_makes_no_pinging_or_oversized_dm(
    slack, slack_api, roleup, aws, prod, sending
):
    body = groups_submission(slack, slack_api)
    body["view"]["state"]["values"] = {"groups": {"value": options("developers", HOSTILE)}}
    ran_late(roleup, slack_api, sending, lambda: slack.interact(body))
    slack_api.wait_for("chat.postMessage", timeout=PATIENCE)
    (told,) = only_readable_dms(slack_api)
    assert "closed before it could show you this" in told and "not a valid IAM group name" in told
    assert groups_of_alice(aws) == ["developers"]


# --- a retry's empty answer closed the modal; the refusal was the late claim's ack ---------------
OUTSIDER = "UOUTSIDER1"  # manages nothing


def test_a_keep_refused_in_the_ack_of_a_retry_claimed_late_is_told_in_a_dm(
    slack, slack_api, roleup, aws, prod, sending
):
    """Someone who may not review prod submits a Keep; Slack's retry of it is answered empty
    (which closes the modal) while its claim waits on the store. The claim is won and the Keep
    refused in what would have been its ack: Slack never sees that, so the refusal is DMed."""
    item = reviewing_alice(slack, slack_api, roleup)
    view = KeepView.build(reviews.item_view(roleup.core, item))
    again = submission(view, {}, OUTSIDER)
    acked = ran_late(roleup, slack_api, sending, lambda: slack.interact(again, headers=RETRY))
    assert acked.status_code == 200 and acked.text == ""
    (dm,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == f"D{OUTSIDER}", timeout=PATIENCE
    )
    assert "*Keep access*" in dm.params["text"]
    assert "Only the managers of integration prod review its accounts." in dm.params["text"]
    assert decision_of(roleup, item) is None
    refused = [c for c in slack_api.calls_to("chat.postMessage") if "Only the" in str(c.params)]
    assert [c.params["channel"] for c in refused] == [f"D{OUTSIDER}"]  # once, to them alone


def decision_of(roleup, item: int) -> str | None:
    with roleup.core.sessions() as session:
        return session.get_one(ReviewItem, item).decision


def test_a_generated_password_of_a_closed_onboarding_is_in_no_dm_log_line_or_cell(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    caplog.set_level(logging.DEBUG)
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob", password="", generate=True), MANAGER)
    ran_late(roleup, slack_api, sending, lambda: slack.interact(body))
    (dm,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == f"D{MANAGER}", timeout=PATIENCE
    )
    assert "*bob* was created in *prod*" in dm.params["text"]
    (shown,) = slack_api.wait_for("chat.postEphemeral", timeout=PATIENCE)
    password = shown.params["text"].split("`")[1]
    wait_until(lambda: not slack_api.busy)
    assert leaks(password, json.dumps(dm.params) + caplog.text) == []
    stored = "\n".join(value for _, _, value in all_cells(roleup.core.engine))
    assert leaks(password, stored) == []


EXTERNAL_ID = "roleup-external-id-7c1f3a9e"


@pytest.mark.parametrize("changed", ["key", "role"])
def test_an_integration_edited_after_its_modal_closed_dms_no_secret_key_or_external_id(
    slack, slack_api, roleup, aws, prod, sending, caplog, changed
):
    caplog.set_level(logging.DEBUG)
    assert slack.command("/roleup", "integration edit prod", user_id=ADMIN).status_code == 200
    (opened,) = slack_api.wait_for("views.open", timeout=PATIENCE)
    values = {"path_prefix": {"value": text("/staff/")}, "managers": {"value": users(MANAGER)}}
    if changed == "key":
        values["access_key_id"] = {"value": text("AKIAIOSFODNN7EXAMPLE")}
        values["secret_access_key"] = {"value": text(SECRET)}
    else:
        values["role_arn"] = {"value": text("arn:aws:iam::123456789012:role/RoleUp")}
        values["external_id"] = {"value": text(EXTERNAL_ID)}
    body = submission(opened.params["view"], values, ADMIN)
    ran_late(roleup, slack_api, sending, lambda: slack.interact(body))
    (dm,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == f"D{ADMIN}", timeout=PATIENCE
    )
    assert "closed before it could show you this" in dm.params["text"]
    assert "/staff/" in dm.params["text"]
    wait_until(lambda: not slack_api.busy)
    stored = "\n".join(value for _, _, value in all_cells(roleup.core.engine))
    for secret in (SECRET, EXTERNAL_ID):
        assert leaks(secret, slack_api.all_text() + caplog.text + stored) == []
