"""Two-person approval and reasons end to end: signed Slack requests into the live app, a moto
server as AWS; asserted on IAM, on what Slack was sent and on the audit log."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from bot.services import approvals
from bot.services.offboard_requests import request_offboard, targets_by_username
from storage.models import AuditEvent, Request
from tests.support.approvals import (
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

pytestmark = [pytest.mark.usefixtures("moto_gaps"), pytest.mark.moto_server]
TWO_PERSON = {"approvers": ["UAPPROVER", "UAPPROVER2", "UMANAGER"], "approvals_required": 2}


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


def test_offboard_with_a_reason_shows_it_to_approvers_and_in_roleup_audit(
    roleup, slack, slack_api, aws
):
    core = roleup.core
    add_integration(core, require_reason=True)
    make_user(aws, core, 1, "alice")
    # Slack escapes & < > in command text (should_escape): the reason is stored as typed.
    hostile = "Left the company &lt;!channel&gt; see &lt;https://evil.example|bank&gt;"
    slack.command("/offboard", f"alice ticket:<https://jira.example.com/browse/SEC-9> -- {hostile}")
    post = approval_post(slack_api)
    shown = message_text(post)
    assert (
        "*Reason:* Left the company &lt;!channel&gt; see &lt;https://evil.example|bank&gt;" in shown
    )
    assert "<!channel>" not in shown
    assert (
        "*Ticket:* <https://jira.example.com/browse/SEC-9|https://jira.example.com/browse/SEC-9>"
        in shown
    )
    request_id = request_id_of(post)
    row = approvals.load(core, request_id)
    assert row.reason == "Left the company <!channel> see <https://evil.example|bank>"
    assert row.ticket == "https://jira.example.com/browse/SEC-9"

    slack.command("/roleup", "audit 5", user_id="UADMIN")
    (answer,) = wait_for(
        slack_api,
        "response_url:/respond/cmd",
        where=lambda c: "Audit: latest" in str(c.params.get("text", "")),
    )
    audit_text = message_text(answer)
    assert "reason: Left the company &lt;!channel&gt;" in audit_text
    assert "ticket: `https://jira.example.com/browse/SEC-9`" in audit_text
    assert "<!channel>" not in audit_text


def test_offboard_without_a_required_reason_is_refused_with_the_usage_line(
    roleup, slack, slack_api, aws
):
    core = roleup.core
    integration_id = add_integration(core, require_reason=True)
    make_user(aws, core, integration_id, "alice")
    slack.command("/offboard", "alice")
    told = wait_for(slack_api, "response_url:/respond/cmd")
    text = told[-1].params["text"]
    assert "requires a reason" in text and "Usage: `/offboard" in text
    assert slack_api.calls_to("chat.postMessage") == []
    with core.sessions() as s:
        assert (
            s.scalars(select(AuditEvent).where(AuditEvent.action == "request.created")).all() == []
        )
    # An oversized or hostile reason is refused in the acknowledgement itself.
    for text in ("alice -- " + "x" * 501, "alice -- bidi \u202e override", "alice ticket:http://x"):
        response = slack.command("/offboard", text)
        assert response.status_code == 200
        assert "Usage: `/offboard" in response.text
    assert "too long (501 characters)" in slack.command("/offboard", "alice -- " + "x" * 501).text
    with core.sessions() as s:
        assert s.scalars(select(Request)).all() == []
