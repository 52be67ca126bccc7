"""What an Approve click does before its first AWS call: the request, its integration and who
may decide are read in one session, the decision and the claim are one transaction, and the
run starts from the row the claim left and the integration already read."""

from __future__ import annotations

import re

from sqlalchemy import event

from bot.services import approvals
from bot.services.approvals import DONE
from tests.support import seed
from tests.support.iam_users import furnish_user, gone
from tests.support.requests import submit_request


def test_an_approved_offboarding_reads_the_store_once_before_its_first_aws_call(
    core, iam, aws_calls
):
    furnish_user(iam)
    integration_id = seed.add_integration(core)
    row = submit_request(
        core,
        kind="offboard",
        integration_id=integration_id,
        requester=seed.MANAGER,
        payload={
            "target": "bob",
            "accounts": [{"integration_id": integration_id, "user_name": "bob"}],
        },
    )
    statements: list[str] = []
    first_aws_call: list[int] = []

    def note(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()))

    def aws_called() -> None:
        if not first_aws_call:
            first_aws_call.append(len(statements))

    for operation in ("GetUser", "ListAccessKeys"):  # the user check and the read beside it
        aws_calls.on_call[operation] = aws_called
    event.listen(core.engine, "before_cursor_execute", note)
    try:
        done = approvals.decide(core, row.id, approver=seed.APPROVER, approve=True)
    finally:
        event.remove(core.engine, "before_cursor_execute", note)

    assert done.state == DONE, done.outcome
    assert gone(iam, "bob")
    before = statements[: first_aws_call[0]]

    def count(pattern: str) -> int:
        return sum(1 for s in before if re.search(pattern, s, re.IGNORECASE))

    # The click's read, then the row as the claim left it (in the claim's own transaction).
    assert count(r"^SELECT .* FROM requests\b") == 2, before
    assert count(r"^SELECT .* FROM integrations\b") == 1, before
    # Approved and claimed: two guarded UPDATEs, nothing else written to the request.
    assert count(r"^UPDATE requests\b") == 2, before
