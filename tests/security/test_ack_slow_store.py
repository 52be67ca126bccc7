"""Submissions whose checks read the store, acked while that store is stalled (a SQLite writer's
lock, a PostgreSQL row lock: tests/support/held_store.py): the ack never waits on it past
ANSWER_WITHIN, and once the store answers the outcome is shown in the modal once, as an in-time
one would have been (the in-time answers are the e2e tests'). Really signed requests into the
real app, IAM on a moto server, both stores."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.slack import commands
from storage.models import Group, Integration, Invite, ManagedPolicy, Request
from tests.security.snapshot import leaks
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
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
from tests.support.onboard_modal import POLICY, TYPED, fill, open_modal
from tests.support.seed import MANAGER, add_account, add_integration

pytestmark = pytest.mark.moto_server


@pytest.fixture
def sending() -> Iterator[Callable[..., Future]]:
    """Sends requests from another thread, so the test can hold the store meanwhile."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-sender") as pool:
        yield pool.submit


@pytest.fixture
def prod(roleup, aws, monkeypatch) -> int:
    """Integration prod: IAM user alice in developers; developers and ops grantable, and the
    policy the onboarding form picks (tests/support/onboard_modal.py)."""
    integration_id = add_integration(roleup.core)
    for group in ("developers", "ops"):
        aws.create_group(GroupName=group)
        with roleup.core.sessions.begin() as session:
            session.add(Group(integration_id=integration_id, name=group))
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    aws.create_policy(PolicyName="ReadSome", PolicyDocument=json.dumps(document))
    with roleup.core.sessions.begin() as session:
        policy = ManagedPolicy(integration_id=integration_id, arn=POLICY, name="ReadSome")
        session.add(policy)
    aws.create_user(UserName="alice")
    aws.add_user_to_group(UserName="alice", GroupName="developers")
    add_account(roleup.core.sessions, integration_id, "alice", ("developers",))
    # Not waited for long while held: what is late is decided sooner (never a timing assertion).
    monkeypatch.setattr(commands, "ANSWER_WITHIN", 0.05)
    return integration_id


def acked_while_stalled(roleup, slack_api, sending, submit: Callable[[], Any]) -> dict[str, Any]:
    """The ack of `submit()`, which must come back while every statement is held; nothing is
    shown in the modal before the store answers."""
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        answer = sending(submit)
        assert held.arrived.wait(PATIENCE), "the submission never asked the store"
        acked = answer.result(timeout=PATIENCE)  # never while the ack waits on the store
        assert slack_api.calls_to("views.update") == []
    return acked


def shown_once(slack_api, says: str) -> dict[str, Any]:
    """The one view the app showed after the ack containing `says`."""
    (shown,) = slack_api.wait_for("views.update", where=lambda c: says in json.dumps(c.params))
    return shown.params["view"]


def requests_filed(roleup) -> int:
    with roleup.core.sessions() as session:
        return session.scalar(select(func.count()).select_from(Request)) or 0


def require_reason(roleup, integration_id: int) -> None:
    with roleup.core.sessions.begin() as session:
        session.get_one(Integration, integration_id).require_reason = True


def groups_form(slack, slack_api) -> dict[str, Any]:
    assert slack.command("/groups", "alice", user_id=MANAGER).status_code == 200
    (filled,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    return filled.params["view"]


def iam_groups(aws, user: str) -> list[str]:
    return sorted(g["GroupName"] for g in aws.list_groups_for_user(UserName=user)["Groups"])


def ack_view(response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response_action"] == "update", body
    return json.dumps(body["view"], ensure_ascii=False)


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
