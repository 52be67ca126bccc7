"""Submissions whose checks read the store, acked while that store is stalled (a SQLite writer's
lock, a PostgreSQL row lock: tests/support/held_store.py): the ack never waits on it past
ANSWER_WITHIN, and once the store answers the outcome is shown in the modal once, as an in-time
one would have been (the in-time answers are the e2e tests'). Really signed requests into the
real app, IAM on a moto server, both stores."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from storage.models import Invite
from tests.security.snapshot import leaks
from tests.support.held_calls import PATIENCE
from tests.support.invite_flow import (
    answer_values,
    create_values,
    open_answer_form,
    opened_view,
    send_invite,
    view_submission,
)
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.modal import options, submission
from tests.support.modal import text as typed
from tests.support.onboard_modal import TYPED, fill, open_modal
from tests.support.seed import MANAGER, add_account
from tests.support.stalled_submissions import (
    ack_view,
    acked_while_stalled,
    requests_filed,
    require_reason,
    shown_once,
)

pytestmark = pytest.mark.moto_server


def groups_form(slack, slack_api) -> dict[str, Any]:
    assert slack.command("/groups", "alice", user_id=MANAGER).status_code == 200
    (filled,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    return filled.params["view"]


def iam_groups(aws, user: str) -> list[str]:
    return sorted(g["GroupName"] for g in aws.list_groups_for_user(UserName=user)["Groups"])


# --- /onboard ------------------------------------------------------------------------------------
def test_an_onboarding_checked_while_the_store_is_stalled_is_acked_then_created_once(
    slack, slack_api, roleup, aws, prod, sending
):
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob"), MANAGER)
    acked = acked_while_stalled(roleup, slack_api, sending, lambda: slack.interact(body))
    assert "Onboarding…" in ack_view(acked)
    shown_once(slack_api, "*bob* was created in *prod*")
    assert aws.get_user(UserName="bob")["User"]["UserName"] == "bob"
    assert requests_filed(roleup) == 1
    assert leaks(TYPED, slack_api.all_text()) == []


def test_a_taken_username_found_after_a_stalled_store_brings_the_form_back_once(
    slack, slack_api, roleup, aws, prod, sending
):
    """A late refusal is shown: the form again, the error on top, what was typed kept (never
    the password), and nothing created."""
    add_account(roleup.core.sessions, prod, "erin", ())
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "erin"), MANAGER)
    acked = acked_while_stalled(roleup, slack_api, sending, lambda: slack.interact(body))
    assert "Onboarding…" in ack_view(acked)
    again = shown_once(slack_api, "already taken")
    assert again["callback_id"] == "onboard" and ":warning:" in json.dumps(again)
    username = next(b for b in again["blocks"] if b.get("block_id") == "username")
    assert username["element"]["initial_value"] == "erin"
    assert leaks(TYPED, slack_api.all_text()) == []
    with pytest.raises(aws.exceptions.NoSuchEntityException):
        aws.get_user(UserName="erin")
    assert requests_filed(roleup) == 0


# --- /groups -------------------------------------------------------------------------------------
def test_groups_checked_while_the_store_is_stalled_are_acked_then_changed_once(
    slack, slack_api, roleup, aws, prod, sending
):
    view = groups_form(slack, slack_api)
    body = submission(view, {"groups": {"value": options("developers", "ops")}}, MANAGER)
    acked = acked_while_stalled(roleup, slack_api, sending, lambda: slack.interact(body))
    assert "Applying…" in ack_view(acked)
    assert "Added: ops" in json.dumps(shown_once(slack_api, "changed"))
    assert iam_groups(aws, "alice") == ["developers", "ops"]
    assert requests_filed(roleup) == 1


def test_a_missing_reason_found_after_a_stalled_store_is_shown_and_nothing_changes(
    slack, slack_api, roleup, aws, prod, sending
):
    require_reason(roleup, prod)
    view = groups_form(slack, slack_api)
    body = submission(view, {"groups": {"value": options("developers", "ops")}}, MANAGER)
    acked = acked_while_stalled(roleup, slack_api, sending, lambda: slack.interact(body))
    assert "Applying…" in ack_view(acked)
    shown = json.dumps(shown_once(slack_api, "requires a reason"))
    assert "Nothing was changed." in shown
    assert iam_groups(aws, "alice") == ["developers"]
    assert requests_filed(roleup) == 0
    # With a reason, the same form goes through.
    why = {"groups": {"value": options("developers", "ops")}, "reason": {"value": typed("on call")}}
    slack.interact(submission(view, why, MANAGER))
    shown_once(slack_api, "Added: ops")
    assert iam_groups(aws, "alice") == ["developers", "ops"]


# --- invites -------------------------------------------------------------------------------------
def create_invite_form(slack, slack_api) -> dict[str, Any]:
    response = slack.command("/onboard", "invite <@UNEWBIE|newbie> prod", user_id=MANAGER)
    assert response.status_code == 200
    return opened_view(slack_api, "invite_create")


def invites_made(roleup) -> int:
    with roleup.core.sessions() as session:
        return session.scalar(select(func.count()).select_from(Invite)) or 0


def test_an_invite_sent_while_the_store_is_stalled_is_acked_then_sent_once(
    slack, slack_api, roleup, prod, sending
):
    form = create_invite_form(slack, slack_api)
    values = create_values("UNEWBIE", ["developers"])
    acked = acked_while_stalled(
        roleup, slack_api, sending, lambda: view_submission(slack, MANAGER, form, values)
    )
    assert acked["response_action"] == "update"
    assert "Sending the invite" in json.dumps(acked["view"])
    shown_once(slack_api, "Invite sent")
    slack_api.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == "DUNEWBIE")
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert invites_made(roleup) == 1


def test_an_invite_missing_its_reason_after_a_stalled_store_is_not_sent(
    slack, slack_api, roleup, prod, sending
):
    require_reason(roleup, prod)
    form = create_invite_form(slack, slack_api)
    values = create_values("UNEWBIE", ["developers"])
    acked = acked_while_stalled(
        roleup, slack_api, sending, lambda: view_submission(slack, MANAGER, form, values)
    )
    assert "Sending the invite" in json.dumps(acked["view"])
    assert "Invite not sent" in json.dumps(shown_once(slack_api, "requires a reason"))
    assert invites_made(roleup) == 0
    assert slack_api.calls_to("chat.postMessage") == []


def test_an_invite_answer_checked_while_the_store_is_stalled_is_acked_then_filed_once(
    slack, slack_api, roleup, prod, sending
):
    form = open_answer_form(slack, slack_api, send_invite(slack, slack_api))
    values = answer_values("newbie", GOOD_PASSWORD)
    acked = acked_while_stalled(
        roleup, slack_api, sending, lambda: view_submission(slack, "UNEWBIE", form, values)
    )
    assert "Checking your choice with AWS" in json.dumps(acked["view"])
    shown_once(slack_api, "waiting for approval")
    slack_api.wait_for("chat.update")  # the DM's button is gone: the invite is used
    assert requests_filed(roleup) == 1
    assert leaks(GOOD_PASSWORD, slack_api.all_text()) == []


def test_an_invite_answer_refused_after_a_stalled_store_shows_the_form_again(
    slack, slack_api, roleup, prod, sending
):
    form = open_answer_form(slack, slack_api, send_invite(slack, slack_api))
    values = answer_values("newbie", GOOD_PASSWORD, confirm=GOOD_PASSWORD + "x")
    acked = acked_while_stalled(
        roleup, slack_api, sending, lambda: view_submission(slack, "UNEWBIE", form, values)
    )
    assert "Checking your choice with AWS" in json.dumps(acked["view"])
    again = shown_once(slack_api, "The two passwords are not the same.")
    assert again["callback_id"] == "invite_answer"
    assert requests_filed(roleup) == 0
    assert slack_api.calls_to("chat.update") == []
    # The invite is still open: the corrected answer is filed.
    view_submission(slack, "UNEWBIE", form, answer_values("newbie", GOOD_PASSWORD))
    shown_once(slack_api, "waiting for approval")
    assert requests_filed(roleup) == 1
