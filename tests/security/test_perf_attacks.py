"""Attacks on what the performance work traded: kept threads, clicks that work in the listener
thread, kept-alive reply connections, listeners matched on the body, the sync's diffing."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from bot.services import approvals
from bot.services.offboard_requests import request_offboard, targets_by_username
from storage.models import AuditEvent
from tests.support.approvals import (
    PATIENCE,
    add_integration,
    click,
    make_user,
    user_exists,
    wait_until,
)
from tests.support.aws_wire import AwsWire
from tests.support.seed import ADMIN
from tests.support.slack_answers import _answer, _text

# moto 5 lacks service-specific credentials: answer as AWS does for a user with none.
pytestmark = [pytest.mark.usefixtures("moto_gaps"), pytest.mark.moto_server]

LISTENER_THREADS = 16  # bot.app's listener pool


@pytest.fixture
def wire(moto_url):
    recording = AwsWire(moto_url).start()
    yield recording
    recording.stop()


@pytest.fixture
def settings(settings, wire):
    """RoleUp's AWS calls go through the recording proxy (which can hold them: a slow AWS)."""
    return dataclasses.replace(settings, aws_endpoint_url=wire.url)


def offboarded(core, request_id) -> int:
    with core.sessions() as s:
        return s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.request_id == request_id, AuditEvent.action == "iam.offboard")
        )


def state_of(core, request_id) -> str:
    return approvals.load(core, request_id).state


def held_users(wire) -> set[str]:
    return {c.params.get("UserName", "") for c in wire.calls if c.action == "GetUser"}


# --- 2. clicks that work after their ack ---------------------------------------------------
def test_clicks_stuck_on_a_slow_aws_leave_other_commands_acked(roleup, slack, slack_api, aws, wire):
    """As many Approve clicks as the app has listener threads, each offboarding against an AWS
    that does not answer yet: another user's /accounts is still acked (Bolt answers 404 for a
    listener that has not acked within 3 s) and answered, and every offboarding then runs once."""
    core = roleup.core
    integration_id = add_integration(core)
    names = [f"slow{n:02d}" for n in range(LISTENER_THREADS + 1)]
    requests = []
    for name in names:
        make_user(aws, core, integration_id, name)
        requests.append(
            request_offboard(
                core, requester="UMANAGER", targets=targets_by_username(core, name), asked_for=name
            ).id
        )
    gate = wire.hold(lambda call: call.action == "GetUser")
    try:
        for request_id in requests:
            click(slack, "approval_approve", request_id, user="UAPPROVER")
        wait_until(lambda: held_users(wire) == set(names), timeout=PATIENCE)
        slack_api.reset()
        response = slack.command("/accounts", "prod", user_id=ADMIN)
        assert response.status_code == 200, response.text
        assert "*slow00*" in _text(_answer(slack_api))  # answered, not only acked
    finally:
        gate.set()
    for name, request_id in zip(names, requests, strict=True):
        wait_until(lambda r=request_id: offboarded(core, r) == 1, timeout=PATIENCE)
        assert not user_exists(aws, name)
