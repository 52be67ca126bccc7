"""Each listener runs in the request's own thread and its ack is the HTTP response sent when it
returns (bot.app): so the ack of every kind of interaction comes back while the Slack call its
work makes is still held by the Web API stand-in, and a listener that fails after its ack keeps
its ack. Really signed requests into the real app; Slack stood in by tests/support/slack_api.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
import requests

from bot.slack.approval_messages import APPROVE_ACTION
from storage.models import Group
from tests.support.approvals import add_integration, click
from tests.support.held_calls import PATIENCE, HeldCall, acked_while_held
from tests.support.home import home_opened
from tests.support.modal import options, submission
from tests.support.requests import submit_request
from tests.support.seed import MANAGER, add_account
from tests.support.seed import add_integration as add_plain_integration
from tests.support.slack_api import Call


@pytest.fixture
def sending() -> Iterator[Callable[[Callable[[], requests.Response]], Future]]:
    """Sends a request from another thread, so the test can watch the held call meanwhile."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-sender") as pool:
        yield pool.submit


@pytest.fixture
def alice(roleup, aws) -> str:
    """IAM user alice in integration prod, which has a grantable group `ops`."""
    integration_id = add_plain_integration(roleup.core)
    aws.create_group(GroupName="ops")
    with roleup.core.sessions.begin() as session:
        session.add(Group(integration_id=integration_id, name="ops"))
    aws.create_user(UserName="alice")
    add_account(roleup.core.sessions, integration_id, "alice", ())
    return "alice"


def changed(call: Call) -> bool:
    """The modal's update with the outcome of a /groups submission."""
    return "changed" in str(call.params)


def test_app_home_opened_is_acked_while_views_publish_is_held(slack, slack_api, sending):
    with HeldCall(slack_api, "views.publish") as held:
        send = partial(slack.post, home_opened("UHOME", "home"), content_type="application/json")
        assert acked_while_held(held, send, sending).status_code == 200
    (published,) = slack_api.wait_for("views.publish", timeout=PATIENCE)
    assert published.params["user_id"] == "UHOME"


@pytest.mark.moto_server
def test_a_command_is_acked_while_its_modal_is_held_then_opens(slack, slack_api, alice, sending):
    with HeldCall(slack_api, "views.open") as held:
        response = acked_while_held(held, lambda: slack.command("/groups", "alice"), sending)
        assert response.status_code == 200 and response.text == ""
    (update,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    assert "alice" in str(update.params["view"])


@pytest.mark.moto_server
def test_a_modal_submission_is_acked_while_its_outcome_is_held(slack, slack_api, alice, sending):
    assert slack.command("/groups", "alice").status_code == 200
    (filled,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    view = filled.params["view"]
    values = {"groups": {"value": options("ops")}}
    with HeldCall(slack_api, "views.update", changed) as held:
        response = acked_while_held(
            held, lambda: slack.interact(submission(view, values, MANAGER)), sending
        )
        assert response.json()["response_action"] == "update"  # "Applying…" in the modal
        assert "Applying" in str(response.json()["view"])
    (done,) = slack_api.wait_for("views.update", where=changed, timeout=PATIENCE)
    assert "Added: ops" in str(done.params["view"])


def test_an_approve_click_is_acked_while_its_message_update_is_held(
    slack, slack_api, roleup, sending
):
    row = submit_request(
        roleup.core,
        kind="remove_integration",
        integration_id=add_integration(roleup.core),
        requester="UADMIN",
        payload={},
    )
    with HeldCall(slack_api, "chat.update") as held:
        send = partial(click, slack, APPROVE_ACTION, row.id, user="UAPPROVER")
        assert acked_while_held(held, send, sending).status_code == 200
    slack_api.wait_for("chat.update", timeout=PATIENCE)


def test_a_listener_failing_after_its_ack_keeps_the_ack(slack, caplog, monkeypatch):
    """Bolt would answer 500 (Slack shows the person an error for a command it took); the ack
    stands and the failure is in the log with a reference."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("a bug after the ack")

    monkeypatch.setattr("bot.slack.commands.run_after_ack", broken)
    caplog.set_level(logging.INFO)
    response = slack.command("/offboard", "alice prod")
    assert response.status_code == 200 and response.text == ""
    assert "a Slack listener failed (ref " in caplog.text
    assert "a bug after the ack" in caplog.text
