"""Slack Web API failures while posting an approval never lose the request's state."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from bot.services import approvals
from storage.models import AuditEvent
from tests.support.approvals import add_integration, buttons
from tests.support.requests import submit_request


def removal(core):
    return submit_request(
        core,
        kind="remove_integration",
        integration_id=add_integration(core),
        requester="UADMIN",
        payload={},
    )


def failures(core, request_id):
    with core.sessions() as s:
        query = select(AuditEvent).where(
            AuditEvent.request_id == request_id, AuditEvent.action == "request.post_failed"
        )
        return [e.detail["error"] for e in s.scalars(query)]


def test_channel_not_found_keeps_the_request_pending_and_says_why(roleup, slack_api):
    slack_api.fail("chat.postMessage", "channel_not_found")
    row = removal(roleup.core)
    assert row.state == "pending"
    assert not approvals.was_posted(row)
    assert any("channel_not_found" in e for e in failures(roleup.core, row.id))
    # Still decidable: an approver who finds it (e.g. after the channel is fixed) can act.
    slack_api.reset()
    decided = approvals.decide(roleup.core, row.id, approver="UAPPROVER", approve=False)
    assert decided.state == "denied"


def test_ratelimited_is_retried_after_the_time_slack_asks(roleup, slack_api):
    attempts = itertools.count()

    def limited_once(call):
        if next(attempts) == 0:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
        return {"ok": True, "channel": call.params["channel"], "ts": "1700000000.000100"}

    slack_api.overrides["chat.postMessage"] = limited_once
    row = removal(roleup.core)
    assert approvals.was_posted(row)
    assert row.message_channel == "CAPPROVALS"
    assert row.message_ts == "1700000000.000100"
    posts = slack_api.calls_to("chat.postMessage")
    assert len(posts) == 2
    assert set(buttons(posts[1])) == {"Approve", "Deny"}
    assert failures(roleup.core, row.id) == []


def test_a_server_error_is_retried_then_recorded(roleup, slack_api):
    slack_api.fail("chat.postMessage", "internal_error", status=500)
    row = removal(roleup.core)
    assert row.state == "pending"
    assert len(slack_api.calls_to("chat.postMessage")) >= 3  # retried, then given up
    assert failures(roleup.core, row.id)


def test_a_failing_update_does_not_undo_a_decision(roleup, slack_api):
    row = removal(roleup.core)
    slack_api.fail("chat.update", "message_not_found")
    decided = approvals.decide(roleup.core, row.id, approver="UAPPROVER", approve=True)
    assert decided.state == "done"
