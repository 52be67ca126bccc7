"""Two-person approval and reasons end to end: signed Slack requests into the live app, a moto
server as AWS; asserted on IAM, on what Slack was sent and on the audit log."""

from __future__ import annotations

import dataclasses
import threading

import boto3
import pytest
from sqlalchemy import select

from bot.services import approvals
from bot.services.offboard_requests import request_offboard, targets_by_username
from storage.models import AuditEvent
from tests.e2e.approval_support import (
    add_integration,
    approval_post,
    audit_actions,
    click,
    make_user,
    message_text,
    request_id_of,
    user_exists,
    wait_for,
    wait_until,
)
from tests.services.conftest import moto_gaps  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("moto_gaps")
TWO_PERSON = {"approvers": ["UAPPROVER", "UAPPROVER2", "UMANAGER"], "approvals_required": 2}


@pytest.fixture
def settings(settings, moto_url):
    return dataclasses.replace(settings, aws_endpoint_url=moto_url)


@pytest.fixture
def aws(moto_url):
    return boto3.client(
        "iam",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def events(core, request_id, action) -> list[AuditEvent]:
    with core.sessions() as s:
        query = select(AuditEvent).where(
            AuditEvent.request_id == request_id, AuditEvent.action == action
        )
        return list(s.scalars(query))


def concurrent_clicks(slack, request_id, clickers) -> None:
    barrier = threading.Barrier(len(clickers))

    def run(user: str) -> None:
        barrier.wait()
        click(slack, "approval_approve", request_id, user=user)

    threads = [threading.Thread(target=run, args=(u,)) for u in clickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_two_person_offboarding_counts_distinct_approvers_and_runs_exactly_once(
    roleup, slack, slack_api, aws
):
    core = roleup.core
    integration_id = add_integration(core, **TWO_PERSON)
    make_user(aws, core, integration_id, "alice")
    request_offboard(
        core,
        requester="UMANAGER",
        targets=targets_by_username(core, "alice"),
        asked_for="alice",
    )
    post = approval_post(slack_api)
    assert "Waiting for 2 different approvers" in message_text(post)
    request_id = request_id_of(post)

    click(slack, "approval_approve", request_id, user="UAPPROVER")
    wait_for(
        slack_api,
        "chat.update",
        where=lambda c: "1 of 2 approvals: <@UAPPROVER>" in message_text(c),
    )
    assert approvals.load(core, request_id).state == "pending"
    assert user_exists(aws, "alice")

    # The requester is listed as an approver too: their click never counts.
    click(slack, "approval_approve", request_id, user="UMANAGER")
    (said,) = wait_for(slack_api, "response_url:/respond/click-UMANAGER")
    assert "someone else has to approve it" in said.params["text"]
    assert approvals.load(core, request_id).state == "pending"

    concurrent_clicks(slack, request_id, ["UAPPROVER", "UAPPROVER", "UAPPROVER2", "UAPPROVER2"])
    done = wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert "approved by <@UAPPROVER>, <@UAPPROVER2>" in message_text(done[-1])
    wait_until(lambda: approvals.load(core, request_id).state == "done")
    assert not user_exists(aws, "alice")
    assert len(events(core, request_id, "iam.offboard")) == 1  # the AWS effect, once
    assert len(events(core, request_id, "request.done")) == 1
    assert len(events(core, request_id, "request.running")) == 1
    (approved,) = events(core, request_id, "request.approved")
    assert approved.detail["approvers"] == ["UAPPROVER", "UAPPROVER2"]
    assert "UMANAGER" not in approved.detail["approvers"]
    assert audit_actions(core, request_id).count("request.approval_added") == 2
