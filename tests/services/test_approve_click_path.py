"""What an Approve click does before its first AWS call: the request, its integration and who
may decide are read in one session, and the decision and the claim are one guarded UPDATE in one
transaction that hands back the row it claimed; the run starts from that row and the
integration already read. A quorum raised between the read and the claim makes the click an
approval towards it, never a run on one approver."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import DBAPIError

from bot.services import approvals
from bot.services.approvals import DONE, PENDING
from storage import db
from storage.models import AuditEvent, Request, RequestApproval
from tests.support import seed
from tests.support.ended_sessions import end_other_sessions, noting_failures
from tests.support.iam_users import furnish_user, gone
from tests.support.requests import submit_request


def _offboarding(core, iam) -> Request:
    furnish_user(iam)
    integration_id = seed.add_integration(core)
    return submit_request(
        core,
        kind="offboard",
        integration_id=integration_id,
        requester=seed.MANAGER,
        payload={
            "target": "bob",
            "accounts": [{"integration_id": integration_id, "user_name": "bob"}],
        },
    )


def test_an_approved_offboarding_reaches_aws_after_one_read_and_one_transaction(
    core, iam, aws_calls
):
    row = _offboarding(core, iam)
    statements: list[str] = []
    commits: list[int] = []
    first_aws_call: list[tuple[int, int]] = []

    def note(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()))

    def committed(_conn):
        commits.append(len(statements))

    def aws_called() -> None:
        if not first_aws_call:
            first_aws_call.append((len(statements), len(commits)))

    for operation in ("GetUser", "ListAccessKeys"):  # the user check and the read beside it
        aws_calls.on_call[operation] = aws_called
    event.listen(core.engine, "before_cursor_execute", note)
    event.listen(core.engine, "commit", committed)
    try:
        done = approvals.decide(core, row.id, approver=seed.APPROVER, approve=True)
    finally:
        event.remove(core.engine, "before_cursor_execute", note)
        event.remove(core.engine, "commit", committed)

    assert done.state == DONE, done.outcome
    assert gone(iam, "bob")
    statement_count, commit_count = first_aws_call[0]
    before = [s for s in statements[:statement_count] if s != "SELECT 1"]  # PostgreSQL's ping

    def count(pattern: str) -> int:
        return sum(1 for s in before if re.search(pattern, s, re.IGNORECASE))

    # The click's read: the request (not its approvals: a one-approver request has none), its
    # integration and that integration's privileged groups.
    assert count(r"^SELECT .* FROM requests\b") == 1, before
    assert count(r"^SELECT .* FROM request_approvals\b") == 0, before
    assert count(r"^SELECT .* FROM integrations\b") == 1, before
    # Approved and claimed: one guarded UPDATE, both moves audited in one INSERT, one commit.
    assert count(r"^UPDATE requests\b") == 1, before
    assert count(r"^INSERT INTO audit_events\b") == 1, before
    assert len(before) == 5, before
    assert commit_count == 1
    with core.sessions() as session:
        trail = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.request_id == row.id, AuditEvent.actor == seed.APPROVER)
            .order_by(AuditEvent.id)
        ).all()
    assert trail[:2] == ["request.approved", "request.running"]
    assert trail[-1] == "request.done"
    assert done.decided_by == seed.APPROVER


def test_a_quorum_raised_between_the_clicks_read_and_its_claim_counts_the_click_towards_it(
    core, iam, aws_calls
):
    row = _offboarding(core, iam)

    raised: list[bool] = []

    def raise_quorum(_conn, _cursor, statement, *_args):
        # Another approver's click raised it (a group turned privileged meanwhile) just before
        # this click's claim: on a connection of its own, committed first.
        claiming = statement.startswith("UPDATE requests") and "approvals_required <=" in statement
        if claiming and not raised:
            raised.append(True)
            with core.engine.begin() as other:
                other.execute(
                    update(Request).where(Request.id == row.id).values(approvals_required=2)
                )

    made_before = len(aws_calls.made)
    event.listen(core.engine, "before_cursor_execute", raise_quorum)
    try:
        after = approvals.decide(core, row.id, approver=seed.APPROVER, approve=True)
    finally:
        event.remove(core.engine, "before_cursor_execute", raise_quorum)

    assert raised
    assert after.state == PENDING
    assert approvals.tally_of(after).missing == 1
    assert not gone(iam, "bob")
    assert aws_calls.made[made_before:] == []
    with core.sessions() as session:
        counted = session.scalars(
            select(RequestApproval.approver).where(RequestApproval.request_id == row.id)
        ).all()
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.request_id == row.id)
        ).all()
    assert counted == [seed.APPROVER]
    assert "request.approval_added" in actions
    assert "request.running" not in actions and "request.approved" not in actions


@pytest.mark.postgresql_only  # SQLite has no server to end a connection
def test_a_click_on_a_pooled_connection_the_server_ended_unseen_is_read_again_and_runs_once(
    core, iam, database_url, monkeypatch
):
    """A failover or an administrator ends every session, and the server's notice has not
    reached a pooled connection's socket when the click takes it (storage.db's checkout sees
    nothing to read): the click's read fails on it, and, as it only reads, is read again on a
    new connection; the approval then runs once, as any other."""
    row = _offboarding(core, iam)
    for _ in range(3):  # connections in the pool, as a busy process has
        assert approvals.load(core, row.id).state == PENDING
    monkeypatch.setattr(db, "_readable", lambda fd: False)  # the checkout sees nothing yet
    assert end_other_sessions(database_url)
    reads: list[DBAPIError] = []
    once = approvals._read_once_for_decision
    monkeypatch.setattr(approvals, "_read_once_for_decision", noting_failures(once, reads))
    done = approvals.decide(core, row.id, approver=seed.APPROVER, approve=True)
    assert [exc.connection_invalidated for exc in reads] == [True]  # the race did happen
    assert done.state == DONE, done.outcome
    assert gone(iam, "bob")
    with core.sessions() as session:
        decided = session.scalars(
            select(AuditEvent.action).where(AuditEvent.request_id == row.id)
        ).all()
    assert decided.count("request.approved") == 1, decided
