"""The database failing in the middle of a Slack request: nothing lost, nothing half-applied,
and the person who clicked is told in plain words."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.services import approvals
from bot.slack.approval_messages import APPROVE_ACTION
from storage.models import AuditEvent, Integration
from tests.security.faults import failing_statements
from tests.security.payloads import block_action
from tests.support.approvals import removal_request


def approve(slack, slack_api, request_id: str, tag: str) -> None:
    payload = block_action(APPROVE_ACTION, request_id, user_id="UAPPROVER")
    payload["response_url"] = slack_api.response_url_base + tag
    assert slack.interact(payload).status_code == 200


def audit_actions(core, request_id: str) -> list[str]:
    with core.sessions() as s:
        query = select(AuditEvent.action).where(AuditEvent.request_id == request_id)
        return list(s.scalars(query.order_by(AuditEvent.id)))


def integration_count(core) -> int:
    with core.sessions() as s:
        return len(s.scalars(select(Integration.id)).all())


def test_store_lost_at_the_decision_leaves_the_request_pending_and_says_so(
    roleup, slack, slack_api
):
    request_id = removal_request(roleup.core)
    with failing_statements(roleup.core.engine, r"^UPDATE requests SET state") as fault:
        approve(slack, slack_api, request_id, "lost")
        (answer,) = slack_api.wait_for("response_url:/respond/lost")
    assert fault.hits == 1
    text = str(answer.params.get("text"))
    assert "database" in text.lower() and "try again" in text.lower(), text
    assert "Traceback" not in text and "OperationalError" not in text
    assert approvals.load(roleup.core, request_id).state == approvals.PENDING
    assert audit_actions(roleup.core, request_id) == ["request.created"]
    assert integration_count(roleup.core) == 1
    # The store is back: the same click now works, once.
    approve(slack, slack_api, request_id, "again")
    slack_api.wait_for("chat.postMessage", where=lambda c: c.params.get("channel") == "UADMIN")
    assert approvals.load(roleup.core, request_id).state == approvals.DONE
    assert integration_count(roleup.core) == 0


def test_store_lost_at_the_claim_takes_the_decision_back_too_and_a_new_click_runs_once(
    roleup, slack, slack_api
):
    request_id = removal_request(roleup.core)
    # The decision and the claim (pending -> approved -> running) are one UPDATE, audited in
    # the same transaction: the audit's INSERT lost, the UPDATE is not left behind half-made.
    with failing_statements(roleup.core.engine, r"^INSERT INTO audit_events") as fault:
        approve(slack, slack_api, request_id, "claim")
        (answer,) = slack_api.wait_for("response_url:/respond/claim")
    assert fault.hits == 1
    assert "try again" in str(answer.params.get("text")).lower()
    assert approvals.load(roleup.core, request_id).state == approvals.PENDING
    assert audit_actions(roleup.core, request_id) == ["request.created"]
    assert integration_count(roleup.core) == 1
    # Nothing is left for a recovery to pick up; the store back, a click runs it, once.
    later = approvals.utcnow() + timedelta(minutes=10)
    assert approvals.recover_running(roleup.core, now=later) == 0
    approve(slack, slack_api, request_id, "again")
    slack_api.wait_for("chat.postMessage", where=lambda c: c.params.get("channel") == "UADMIN")
    assert approvals.load(roleup.core, request_id).state == approvals.DONE
    assert integration_count(roleup.core) == 0
    assert audit_actions(roleup.core, request_id).count("request.done") == 1


def test_a_command_while_the_store_fails_still_gets_a_clear_answer(roleup, slack, slack_api):
    """The retry guard's bookkeeping write fails: the command must still be answered in words,
    not with a 500 (which Slack shows as a bare timeout error)."""
    with failing_statements(roleup.core.engine, r"slack_deliveries", times=100):
        help_response = slack.command("/roleup", "help", user_id="UADMIN")
        accounts_response = slack.command("/accounts", "", user_id="UADMIN")
    assert help_response.status_code == 200
    assert "/roleup" in help_response.text
    assert accounts_response.status_code == 200
