"""Submissions sent while the store is held (tests/support/held_store.py): the integration they
act on, the sender thread, the ack taken while stalled and the one view shown after it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.slack import commands
from storage.models import Group, Integration, ManagedPolicy, Request, SlackDelivery
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.onboard_modal import POLICY
from tests.support.seed import add_account, add_integration

# A Slack retry's headers, the retry guard's logger, and the line it logs for a dropped retry.
RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
GUARD_LOG = "bot.slack.retry_guard"
DROPPED = "dropped Slack retry of trigger"


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


def ack_view(response) -> str:
    """The view a submission's ack put in its modal (response_action "update"), as JSON."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response_action"] == "update", body
    return json.dumps(body["view"], ensure_ascii=False)


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


def held_then_released(roleup, sending, send: Callable[[], Any]) -> Any:
    """The answer of `send()`, which must come back while every statement is held."""
    with HeldStore(roleup.core.engine) as held:
        answer = sending(send)
        assert held.arrived.wait(PATIENCE), "nothing asked the store"
        return answer.result(timeout=PATIENCE)  # never while the ack waits on the store


def request_states(roleup) -> list[str]:
    with roleup.core.sessions() as session:
        return sorted(session.scalars(select(Request.state)))


def stored_keys(roleup) -> set[str]:
    """The delivery keys in the store, this process's pending ones written first."""
    roleup.core.deliveries.flush()
    with roleup.core.sessions() as session:
        return set(session.scalars(select(SlackDelivery.key)))


def first_then_retry(roleup, sending, first: Callable[[], Any], retry: Callable[[], Any]) -> Any:
    """The acks of a first delivery and of its retry, sent one after the other while every
    statement is held: both must come back before it is released."""
    with HeldStore(roleup.core.engine) as held:
        first_ack = sending(first).result(timeout=PATIENCE)
        retried = sending(retry)
        assert held.arrived.wait(PATIENCE), "nothing asked the store"
        return first_ack, retried.result(timeout=PATIENCE)
