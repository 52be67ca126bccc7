"""Attacks on an Approve click's claim (pending -> approved -> running in one guarded UPDATE,
both moves audited in one INSERT), as a hostile approver or requester would try them: each
through really signed clicks into the real app, its answers read from the Slack stand-in, and
the request, the integration and the audit log read from the store afterwards."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.exc import OperationalError

from bot.app import create_app
from bot.cli import main
from bot.services import approvals
from bot.slack.approval_messages import APPROVE_ACTION, DENY_ACTION, RETRY_ACTION
from storage.models import AuditEvent, Integration, Request
from tests.security.faults import failing_statements
from tests.support.approvals import (
    PATIENCE,
    add_integration,
    click,
    offboarding,
    user_exists,
    wait_for,
    wait_until,
)
from tests.support.concurrency import race
from tests.support.live import LiveServer
from tests.support.requests import submit_request
from tests.support.sender import SlackSender

APPROVER, APPROVER2 = "UAPPROVER", "UAPPROVER2"
CLAIM = r"^UPDATE requests SET state"


# --- a request and what became of it --------------------------------------------------------
def removal(core: Any, *, requester: str = "UADMIN") -> tuple[str, int]:
    """A request to remove a new integration (no AWS call), waiting for one approver."""
    integration = add_integration(core)
    row = submit_request(
        core, kind="remove_integration", integration_id=integration, requester=requester, payload={}
    )
    return row.id, integration


def state_of(core: Any, request_id: str) -> str:
    return approvals.load(core, request_id).state


def audit_of(core: Any, request_id: str) -> list[tuple[str, str]]:
    """(action, actor) of the request's events, in the order they were recorded."""
    with core.sessions() as s:
        query = select(AuditEvent.action, AuditEvent.actor).where(
            AuditEvent.request_id == request_id
        )
        return [(a, who) for a, who in s.execute(query.order_by(AuditEvent.id))]


def actions_of(core: Any, request_id: str) -> list[str]:
    return [action for action, _ in audit_of(core, request_id)]


def integration_exists(core: Any, integration_id: int) -> bool:
    with core.sessions() as s:
        return s.get(Integration, integration_id) is not None


def answer_to(slack_api: Any, user: str) -> str:
    """What the clicker was told on the message's response_url (the click's own answer)."""
    (call,) = wait_for(slack_api, f"response_url:/respond/click-{user}")
    return str(call.params.get("text") or "") + json.dumps(call.params.get("blocks") or [])


def approve(slack: Any, request_id: str, user: str = APPROVER, **more: Any) -> None:
    click(slack, APPROVE_ACTION, request_id, user=user, **more)


def done_once(core: Any, request_id: str, integration: int, approver: str) -> None:
    """Run exactly once, by `approver`: both moves audited together, each once, in order."""
    assert state_of(core, request_id) == approvals.DONE
    assert not integration_exists(core, integration)
    assert audit_of(core, request_id) == [
        ("request.created", "UADMIN"),
        ("request.approved", approver),
        ("request.running", approver),
        ("integration.removed", approver),
        ("request.done", approver),
    ]


def wait_done(core: Any, slack_api: Any, request_id: str) -> None:
    # The requester is told the outcome once it is recorded.
    wait_for(slack_api, "chat.postMessage", where=lambda c: c.params.get("channel") == "UADMIN")
    assert state_of(core, request_id) == approvals.DONE


@contextlib.contextmanager
def before_the_claim(
    engine: Engine, change: Callable[[], None], times: int = 1
) -> Iterator[list[int]]:
    """Makes `change` (committed on a connection of its own) right before each of the first
    `times` claim UPDATEs runs: after the click read the request, its integrations and who may
    decide."""
    made: list[int] = []

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if len(made) >= times or not statement.startswith("UPDATE requests SET state"):
            return
        made.append(1)
        change()

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield made
    finally:
        event.remove(engine, "before_cursor_execute", hook)


class _LostCommit:
    def __init__(self) -> None:
        self.hits = 0


@contextlib.contextmanager
def failing_commit(engine: Engine, request_id: str) -> Iterator[_LostCommit]:
    """Fails, as a lost connection would, the COMMIT of the first transaction that ran the
    claim's UPDATE: the server never saw it."""
    fault = _LostCommit()

    def saw(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not fault.hits and statement.startswith("UPDATE requests SET state"):
            conn.info["claiming"] = True

    def commit(conn: Any) -> None:
        if conn.info.pop("claiming", False) and not fault.hits:
            fault.hits += 1
            raise OperationalError("COMMIT", None, Exception("server closed the connection"))

    event.listen(engine, "before_cursor_execute", saw)
    event.listen(engine, "commit", commit)
    try:
        yield fault
    finally:
        event.remove(engine, "before_cursor_execute", saw)
        event.remove(engine, "commit", commit)


def set_integration(core: Any, integration: int, **values: Any) -> Callable[[], None]:
    def change() -> None:
        with core.sessions.begin() as s:
            s.execute(update(Integration).where(Integration.id == integration).values(**values))

    return change


# --- 1. self-approval and the two-person rule -------------------------------------------------
def test_a_requester_cannot_approve_their_own_request(roleup, slack, slack_api):
    request_id, integration = removal(roleup.core, requester=APPROVER)
    approve(slack, request_id, APPROVER)
    assert "someone else has to approve" in answer_to(slack_api, APPROVER).lower()
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert actions_of(roleup.core, request_id) == ["request.created", "request.decide_refused"]
    assert integration_exists(roleup.core, integration)


def test_an_approver_removed_after_the_click_read_the_request_cannot_approve_it(
    roleup, slack, slack_api
):
    request_id, integration = removal(roleup.core)
    removed = set_integration(roleup.core, integration, approvers=[APPROVER2])
    with before_the_claim(roleup.core.engine, removed) as made:
        approve(slack, request_id, APPROVER)
        told = answer_to(slack_api, APPROVER)
    assert made == [1]
    assert "only the approvers of integration prod" in told.lower(), told
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert integration_exists(roleup.core, integration)
    assert actions_of(roleup.core, request_id) == ["request.created", "request.decide_refused"]
    # Who is still an approver runs it, once.
    approve(slack, request_id, APPROVER2)
    wait_done(roleup.core, slack_api, request_id)
    assert audit_of(roleup.core, request_id)[-4:] == [
        ("request.approved", APPROVER2),
        ("request.running", APPROVER2),
        ("integration.removed", APPROVER2),
        ("request.done", APPROVER2),
    ]


def test_a_quorum_raised_after_the_click_read_the_request_takes_a_second_person(
    roleup, slack, slack_api
):
    request_id, integration = removal(roleup.core)

    def raised() -> None:
        with roleup.core.sessions.begin() as s:
            s.execute(update(Request).where(Request.id == request_id).values(approvals_required=2))

    with before_the_claim(roleup.core.engine, raised) as made:
        approve(slack, request_id, APPROVER)
        wait_until(lambda: "request.approval_added" in actions_of(roleup.core, request_id))
    assert made == [1]
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert integration_exists(roleup.core, integration)
    # The same person again (a double click, or Slack's retry) is not a second approver.
    approve(slack, request_id, APPROVER, retry=1)
    approve(slack, request_id, APPROVER)
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert actions_of(roleup.core, request_id) == ["request.created", "request.approval_added"]
    approve(slack, request_id, APPROVER2)
    wait_done(roleup.core, slack_api, request_id)
    assert not integration_exists(roleup.core, integration)
    assert actions_of(roleup.core, request_id).count("request.running") == 1


def test_an_integration_edited_at_every_claim_is_never_run_on_a_stale_read(
    roleup, slack, slack_api
):
    """Edited again as the click's second try claims it too: the click gives up, says so in
    one sentence, and leaves the request as it was."""
    request_id, integration = removal(roleup.core)
    with roleup.core.sessions() as s:
        before = s.get(Integration, integration)
        assert before is not None
        channel = before.approvals_channel

    def touched() -> None:
        set_integration(roleup.core, integration, approvals_channel=channel)()

    with before_the_claim(roleup.core.engine, touched, times=2) as made:
        approve(slack, request_id, APPROVER)
        told = answer_to(slack_api, APPROVER)
    assert made == [1, 1]
    assert "changed as you clicked" in told and "click once more" in told, told
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert actions_of(roleup.core, request_id) == ["request.created"]
    assert integration_exists(roleup.core, integration)
    approve(slack, request_id, APPROVER)
    wait_done(roleup.core, slack_api, request_id)
    done_once(roleup.core, request_id, integration, APPROVER)


@pytest.mark.parametrize("between", [False, True], ids=["before-the-click", "as-it-claims"])
def test_an_integration_asking_two_approvers_since_the_request_was_made_takes_two(
    roleup, slack, slack_api, between
):
    """Made when one approver sufficed; its integration now asks two (set before the click,
    or between the click's read and its claim): one person's click does not run it."""
    request_id, integration = removal(roleup.core)
    two = set_integration(roleup.core, integration, approvals_required=2)
    with before_the_claim(roleup.core.engine, two if between else lambda: None):
        if not between:
            two()
        approve(slack, request_id, APPROVER)
        wait_until(lambda: "request.approval_added" in actions_of(roleup.core, request_id))
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert integration_exists(roleup.core, integration)
    assert "request.approved" not in actions_of(roleup.core, request_id)
    approve(slack, request_id, APPROVER2)
    wait_done(roleup.core, slack_api, request_id)
    assert actions_of(roleup.core, request_id).count("request.running") == 1
    assert not integration_exists(roleup.core, integration)


@pytest.mark.moto_server
def test_an_integration_made_read_only_after_the_click_read_it_changes_nothing_in_iam(
    roleup, slack, slack_api, aws
):
    """Turned read-only between the click's read and its claim: the run must not write
    through it as the read saw it (writable), whatever becomes of the request."""
    core = roleup.core
    integration, request_id = offboarding(aws, core, "dora")
    read_only = set_integration(core, integration, read_only=True)
    with before_the_claim(core.engine, read_only) as made:
        approve(slack, request_id, APPROVER)
        wait_until(lambda: state_of(core, request_id) != approvals.PENDING, timeout=PATIENCE)
    assert made == [1]
    wait_until(lambda: state_of(core, request_id) == approvals.FAILED, timeout=PATIENCE)
    assert "read-only" in (approvals.load(core, request_id).outcome or "")
    assert user_exists(aws, "dora")
    assert aws.get_login_profile(UserName="dora")["LoginProfile"]["UserName"] == "dora"
    assert [g["GroupName"] for g in aws.list_groups_for_user(UserName="dora")["Groups"]] == ["devs"]


# --- 2. stale and forged clicks ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "told"),
    [
        (approvals.DENIED, "already denied"),
        (approvals.EXPIRED, "expired"),
        (approvals.RUNNING, "is running"),
        (approvals.DONE, "is done"),
        (approvals.FAILED, "retry"),
    ],
)
def test_an_approve_click_on_a_request_no_longer_pending_changes_nothing(
    roleup, slack, slack_api, state, told
):
    request_id, integration = removal(roleup.core)
    with roleup.core.sessions.begin() as s:
        s.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(state=state, decided_by="UADMIN2", lease_owner=None)
        )
    approve(slack, request_id, APPROVER)
    assert told in answer_to(slack_api, APPROVER).lower()
    assert state_of(roleup.core, request_id) == state
    assert actions_of(roleup.core, request_id) == ["request.created"]
    assert integration_exists(roleup.core, integration)


@pytest.mark.parametrize(
    ("state", "told"),
    [(approvals.DENIED, "already denied by <@uapprover2>"), (approvals.EXPIRED, "expired")],
)
def test_a_request_denied_or_expired_after_the_click_read_it_is_not_run(
    roleup, slack, slack_api, state, told
):
    request_id, integration = removal(roleup.core)

    def decided() -> None:
        with roleup.core.sessions.begin() as s:
            s.execute(
                update(Request)
                .where(Request.id == request_id)
                .values(state=state, decided_by=APPROVER2)
            )

    with before_the_claim(roleup.core.engine, decided) as made:
        approve(slack, request_id, APPROVER)
        answer = answer_to(slack_api, APPROVER)
    assert made == [1]
    assert told in answer.lower(), answer
    assert state_of(roleup.core, request_id) == state
    assert actions_of(roleup.core, request_id) == ["request.created"]
    assert integration_exists(roleup.core, integration)


def test_an_approve_and_a_deny_at_once_end_it_one_way_only(roleup, slack, slack_api):
    request_id, integration = removal(roleup.core)
    clicks = [(APPROVE_ACTION, APPROVER), (DENY_ACTION, APPROVER2)]
    answered = race(
        len(clicks), lambda i: click(slack, clicks[i][0], request_id, user=clicks[i][1])
    )
    assert [a for a in answered if isinstance(a, Exception)] == []
    wait_until(
        lambda: state_of(roleup.core, request_id) in (approvals.DONE, approvals.DENIED),
        timeout=PATIENCE,
    )
    if state_of(roleup.core, request_id) == approvals.DONE:
        wait_done(roleup.core, slack_api, request_id)
        done_once(roleup.core, request_id, integration, APPROVER)
        (lost,) = wait_for(slack_api, f"response_url:/respond/click-{APPROVER2}")
        assert "already approved by <@UAPPROVER>" in str(lost.params.get("text"))
    else:
        assert integration_exists(roleup.core, integration)
        assert audit_of(roleup.core, request_id) == [
            ("request.created", "UADMIN"),
            ("request.denied", APPROVER2),
        ]
        (lost,) = wait_for(slack_api, f"response_url:/respond/click-{APPROVER}")
        assert "already denied by <@UAPPROVER2>" in str(lost.params.get("text"))


@pytest.mark.parametrize(
    "value",
    [
        "00000000-0000-0000-0000-000000000000",
        "' OR 1=1 --",
        "x" * 5000,
        "",
    ],
)
def test_a_forged_request_id_decides_nothing(roleup, slack, slack_api, value):
    request_id, integration = removal(roleup.core)
    approve(slack, value, APPROVER)
    told = answer_to(slack_api, APPROVER)
    assert "Traceback" not in told and len(told) < 1000, told
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert actions_of(roleup.core, request_id) == ["request.created"]
    assert integration_exists(roleup.core, integration)


def test_a_request_of_an_integration_someone_does_not_approve_is_not_theirs(
    roleup, slack, slack_api
):
    request_id, integration = removal(roleup.core)
    # UOTHER approves another integration only: the click carries this request's id.
    add_integration(roleup.core, name="other", approvers=["UOTHER"])
    approve(slack, request_id, "UOTHER")
    assert "only the approvers of integration prod" in answer_to(slack_api, "UOTHER").lower()
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert actions_of(roleup.core, request_id) == ["request.created", "request.decide_refused"]
    assert integration_exists(roleup.core, integration)


# --- 3. exactly once under races and a failing store ------------------------------------------
@pytest.fixture
def elsewhere(settings, slack_api) -> Iterator[SlackSender]:
    """A second process of the app on the same store (its own engine, delivery log and pools),
    and a sender to it: where a load balancer sends another approver's click, or Slack's
    retry."""
    app = create_app(settings)
    server = LiveServer(app.web).start()
    yield SlackSender(server.url, settings.slack_signing_secret, slack_api.response_url_base)
    server.stop()
    app.close()


@pytest.mark.parametrize("processes", [1, 2])
def test_double_clicks_retries_and_two_approvers_at_once_run_it_once(
    roleup, slack, slack_api, elsewhere, processes
):
    """A double click, Slack's retries and a second approver, all at once; with two processes
    every other click goes to the second one."""
    request_id, integration = removal(roleup.core)
    clicks = [(APPROVER, 0), (APPROVER, 0), (APPROVER, 1), (APPROVER2, 0), (APPROVER2, 2)]
    senders = [slack, elsewhere][:processes]
    answered = race(
        len(clicks),
        lambda i: approve(senders[i % processes], request_id, clicks[i][0], retry=clicks[i][1]),
    )
    assert [a for a in answered if isinstance(a, Exception)] == []
    wait_done(roleup.core, slack_api, request_id)
    (winner,) = {who for _, who in audit_of(roleup.core, request_id)} - {"UADMIN"}
    done_once(roleup.core, request_id, integration, winner)


@pytest.mark.parametrize("statement", [CLAIM, r"^INSERT INTO audit_events", "COMMIT"])
def test_the_store_lost_at_any_step_of_the_claim_leaves_it_pending_and_the_next_click_runs_once(
    roleup, slack, slack_api, statement
):
    request_id, integration = removal(roleup.core)
    with contextlib.ExitStack() as stack:
        if statement == "COMMIT":
            fault = stack.enter_context(failing_commit(roleup.core.engine, request_id))
        else:
            fault = stack.enter_context(failing_statements(roleup.core.engine, statement))
        approve(slack, request_id, APPROVER)
        told = answer_to(slack_api, APPROVER)
    assert fault.hits == 1
    assert "try again" in told.lower(), told
    assert state_of(roleup.core, request_id) == approvals.PENDING
    assert actions_of(roleup.core, request_id) == ["request.created"]
    assert integration_exists(roleup.core, integration)
    # Nothing is left for a recovery to pick up.
    later = approvals.utcnow() + timedelta(minutes=10)
    assert approvals.recover_running(roleup.core, now=later) == 0
    slack_api.reset()
    approve(slack, request_id, APPROVER)
    wait_done(roleup.core, slack_api, request_id)
    done_once(roleup.core, request_id, integration, APPROVER)


# --- 4. the audit as exported ---------------------------------------------------------------
def test_the_exported_audit_shows_both_moves_once_in_order_by_the_approver(
    roleup, slack, slack_api, database_url, monkeypatch, capsys
):
    request_id, integration = removal(roleup.core)
    approve(slack, request_id, APPROVER)
    wait_done(roleup.core, slack_api, request_id)
    monkeypatch.setenv("DATABASE_URL", database_url)
    capsys.readouterr()
    assert main(["audit", "export"]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [(e["action"], e["actor"]) for e in exported if e["request_id"] == request_id]
    assert mine == audit_of(roleup.core, request_id)
    done_once(roleup.core, request_id, integration, APPROVER)
    approved, running = (
        e for e in exported if e["action"] in ("request.approved", "request.running")
    )
    assert approved["id"] < running["id"] and approved["at"] <= running["at"]
    assert (
        approved["target"] == running["target"]
        and approved["integration"] == running["integration"]
    )


# --- 3b. a Retry of a failed request --------------------------------------------------------
def failed(core: Any, request_id: str) -> None:
    """As a run that failed after its approval leaves it: Retry may run it again."""
    with core.sessions.begin() as s:
        s.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(state=approvals.FAILED, decided_by=APPROVER2, lease_owner=None)
        )


def test_retries_clicked_twice_at_once_with_an_approve_run_it_once_audited_once(
    roleup, slack, slack_api
):
    request_id, integration = removal(roleup.core)
    failed(roleup.core, request_id)
    clicks = [(RETRY_ACTION, APPROVER), (RETRY_ACTION, APPROVER), (APPROVE_ACTION, APPROVER2)]
    answered = race(
        len(clicks),
        lambda i: click(slack, clicks[i][0], request_id, user=clicks[i][1]),
    )
    assert [a for a in answered if isinstance(a, Exception)] == []
    wait_done(roleup.core, slack_api, request_id)
    assert not integration_exists(roleup.core, integration)
    assert audit_of(roleup.core, request_id) == [
        ("request.created", "UADMIN"),
        ("request.retried", APPROVER),
        ("request.running", APPROVER),
        ("integration.removed", APPROVER),
        ("request.done", APPROVER),
    ]
    # The Approve is told the request is not pending; the losing Retry what became of it.
    for user in (APPROVER, APPROVER2):
        (told,) = wait_for(slack_api, f"response_url:/respond/click-{user}")
        assert "approved by <@UAPPROVER2>" in str(told.params.get("text")), told.params
