"""Approve / Deny through really signed clicks into the live app (an integration removal)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from bot.services import approvals
from storage.models import Integration
from tests.support.approvals import (
    add_integration,
    audit_actions,
    buttons,
    click,
    ephemeral_to,
    message_text,
    wait_for,
    wait_until,
)
from tests.support.requests import submit_request


@pytest.fixture
def removal(roleup, slack_api):
    """A pending request (by admin UADMIN) to remove integration prod, posted for approval."""
    integration_id = add_integration(roleup.core)
    row = submit_request(
        roleup.core,
        kind="remove_integration",
        integration_id=integration_id,
        requester="UADMIN",
        payload={},
    )
    return row


# The audit trail of a removal approved and run once.
REMOVED_ONCE = [
    "request.created",
    "request.approved",
    "request.running",
    "integration.removed",
    "request.done",
]


def integration_names(core) -> list[str]:
    with core.sessions() as s:
        return list(s.scalars(select(Integration.name)))


def is_final(call) -> bool:
    return "Done" in message_text(call) or "Denied" in message_text(call)


def test_the_approval_message_has_approve_and_deny_carrying_only_the_request_id(removal, slack_api):
    (post,) = wait_for(
        slack_api, "chat.postMessage", where=lambda c: c.params["channel"] == "CAPPROVALS"
    )
    shown = buttons(post)
    assert set(shown) == {"Approve", "Deny"}
    assert shown["Approve"]["value"] == removal.id
    assert shown["Deny"]["value"] == removal.id
    assert "Integration removal request" in message_text(post)
    assert "<@UADMIN>" in message_text(post)


def test_approve_removes_the_integration_once_and_tells_everyone(roleup, slack, slack_api, removal):
    click(slack, "approval_approve", removal.id, user="UAPPROVER")
    final = wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert "approved by <@UAPPROVER>" in message_text(final[-1])
    assert buttons(final[-1]) == {}
    assert integration_names(roleup.core) == []
    told = wait_for(slack_api, "chat.postMessage", where=lambda c: c.params["channel"] == "UADMIN")
    assert "Your request to remove integration prod is done." in told[0].params["text"]
    assert approvals.load(roleup.core, removal.id).state == "done"
    assert audit_actions(roleup.core, removal.id) == REMOVED_ONCE


def test_a_slack_retry_of_an_approve_click_runs_nothing_twice(roleup, slack, slack_api, removal):
    click(slack, "approval_approve", removal.id, user="UAPPROVER")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    click(slack, "approval_approve", removal.id, user="UAPPROVER", retry=1)
    # A click after it that is not a retry is answered: once it is, the retry was long done.
    click(slack, "approval_deny", removal.id, user="UAPPROVER2")
    wait_until(lambda: ephemeral_to(slack_api, "UAPPROVER2"))
    assert audit_actions(roleup.core, removal.id) == REMOVED_ONCE
    # The retry was dropped before the listener: the first clicker heard nothing more.
    assert ephemeral_to(slack_api, "UAPPROVER") == []


def test_deny_keeps_the_integration_and_tells_the_requester(roleup, slack, slack_api, removal):
    click(slack, "approval_deny", removal.id, user="UAPPROVER2")
    wait_for(slack_api, "chat.update", where=lambda c: "Denied by <@UAPPROVER2>" in message_text(c))
    told = wait_for(slack_api, "chat.postMessage", where=lambda c: c.params["channel"] == "UADMIN")
    assert "was denied by <@UAPPROVER2>" in told[0].params["text"]
    assert integration_names(roleup.core) == ["prod"]
    assert approvals.load(roleup.core, removal.id).state == "denied"


def test_the_requester_cannot_approve_their_own_request(roleup, slack, slack_api, removal):
    # UADMIN is an admin, and admins may decide integration removals: but not their own.
    click(slack, "approval_approve", removal.id, user="UADMIN")
    (said,) = wait_for(slack_api, "response_url:/respond/click-UADMIN")
    assert "someone else has to approve it" in said.params["text"]
    assert said.params["response_type"] == "ephemeral"
    assert integration_names(roleup.core) == ["prod"]
    assert approvals.load(roleup.core, removal.id).state == "pending"
    assert "request.decide_refused" in audit_actions(roleup.core, removal.id)


def test_an_approver_of_another_integration_cannot_decide(roleup, slack, slack_api, removal):
    add_integration(roleup.core, name="dev", approvers=["UDEVAPPROVER"])
    click(slack, "approval_approve", removal.id, user="UDEVAPPROVER")
    (said,) = wait_for(slack_api, "response_url:/respond/click-UDEVAPPROVER")
    assert "Only the approvers of integration prod" in said.params["text"]
    assert sorted(integration_names(roleup.core)) == ["dev", "prod"]


# A well-formed id no request has; fixed, so every xdist worker collects the same test ids.
UNKNOWN_REQUEST = "3f0c2a4e-9b7d-4c1e-8a55-0d6f1e2b7c90"


@pytest.mark.parametrize(
    "value",
    ["not-a-request", UNKNOWN_REQUEST, "x" * 5000, ""],
    ids=["word", "uuid", "long", "empty"],
)
def test_a_tampered_request_id_finds_nothing(roleup, slack, slack_api, removal, value):
    click(slack, "approval_approve", value, user="UAPPROVER")
    (said,) = wait_for(slack_api, "response_url:/respond/click-UAPPROVER")
    assert said.params["text"] == "That request no longer exists."
    assert integration_names(roleup.core) == ["prod"]


def test_a_decided_request_says_who_decided(roleup, slack, slack_api, removal):
    click(slack, "approval_deny", removal.id, user="UAPPROVER2")
    wait_for(slack_api, "chat.update", where=lambda c: "Denied" in message_text(c))
    click(slack, "approval_approve", removal.id, user="UAPPROVER")
    (said,) = wait_for(slack_api, "response_url:/respond/click-UAPPROVER")
    assert "already denied by <@UAPPROVER2>" in said.params["text"]
    assert integration_names(roleup.core) == ["prod"]


def concurrent_clicks(slack, clicks):
    barrier = threading.Barrier(len(clicks))

    def run(action_id: str, value: str, user: str) -> None:
        barrier.wait()
        click(slack, action_id, value, user=user)

    threads = [threading.Thread(target=run, args=c) for c in clicks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_double_click_executes_once(roleup, slack, slack_api, removal):
    concurrent_clicks(slack, [("approval_approve", removal.id, "UAPPROVER")] * 2)
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    (said,) = wait_for(slack_api, "response_url:/respond/click-UAPPROVER")  # the loser is told
    assert "already approved by <@UAPPROVER>" in said.params["text"]
    actions = audit_actions(roleup.core, removal.id)
    assert actions.count("request.approved") == 1
    assert actions.count("integration.removed") == 1


def test_two_approvers_at_once_execute_once(roleup, slack, slack_api, removal):
    concurrent_clicks(
        slack,
        [
            ("approval_approve", removal.id, "UAPPROVER"),
            ("approval_approve", removal.id, "UAPPROVER2"),
        ],
    )
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))

    def losers() -> list[str]:
        return ephemeral_to(slack_api, "UAPPROVER") + ephemeral_to(slack_api, "UAPPROVER2")

    wait_until(lambda: len(losers()) == 1)
    assert "already approved" in losers()[0]
    actions = audit_actions(roleup.core, removal.id)
    assert actions.count("request.approved") == 1
    assert actions.count("integration.removed") == 1
    assert integration_names(roleup.core) == []
