"""Two-person approval on real `roleup serve` processes (two over one PostgreSQL; one with two
workers over SQLite): an offboarding and a privileged group grant, each approved by four
concurrent clicks spread over both processes, run once (counted on the wire to AWS); the
requester's own click never counts; a Deny by one approver ends a request."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, update

from storage.models import AuditEvent, Integration, Request
from tests.e2e.cluster import Cluster
from tests.e2e.instances import add_integration_with_own_user, syncs, wait_until
from tests.support.approvals import buttons, click, message_text
from tests.support.modal import options, submission
from tests.support.slack_api import FakeSlackApi

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("moto_gaps")]

MANAGER = "UMANAGER"
APPROVERS = ["UAPPR0001", "UAPPR0002", "UAPPR0003", "UAPPR0004"]
CHANNEL = "CPROD"
PATIENCE = 60.0


@pytest.fixture
def moto_gaps():
    from bot.demo.moto_gaps import fill_moto_gaps

    restore = fill_moto_gaps()
    yield
    restore()


@pytest.fixture
def prod(cluster: Cluster, aws) -> Cluster:
    """prod needs two approvers for offboarding and for its privileged group `admins`; the
    requester is an approver too. alice has what an offboarding removes; bob has nothing."""
    aws.create_user(UserName="alice")
    aws.create_login_profile(UserName="alice", Password="Sup3r-Secret-Pass!")
    aws.create_access_key(UserName="alice")
    aws.create_group(GroupName="devs")
    aws.add_user_to_group(GroupName="devs", UserName="alice")
    aws.create_user(UserName="bob")
    aws.create_group(GroupName="admins")
    aws.create_group(GroupName="auditors")
    add_integration_with_own_user(cluster.engine, aws, "prod", every=4)
    with cluster.engine.begin() as conn:
        conn.execute(
            update(Integration).values(
                managers=[MANAGER],
                approvers=[*APPROVERS, MANAGER],
                approvals_required=2,
                privileged_groups=["admins", "auditors"],
            )
        )
    wait_until(lambda: "ok" in syncs(cluster.engine, "prod"))
    return cluster


def approval_post(slack_api: FakeSlackApi, what: str):
    (post,) = slack_api.wait_for(
        "chat.postMessage",
        where=lambda c: c.params.get("channel") == CHANNEL and what in message_text(c),
        timeout=PATIENCE,
    )
    return post


def ask_groups(cluster: Cluster, slack_api: FakeSlackApi, user: str, group: str):
    """/groups <user> on the first process, the modal submitted with `group` added: the
    approval message and the id of the request it carries."""
    slack = cluster.senders[0]
    assert slack.command("/groups", user, user_id=MANAGER).status_code == 200
    view = slack_api.wait_for(
        "views.update",
        where=lambda c: f"*{user}*" in str(c.params.get("view")) and "groups" in str(c.params),
        timeout=PATIENCE,
    )[-1].params["view"]
    slack.interact(submission(view, {"groups": {"value": options(group)}}, MANAGER))
    post = approval_post(slack_api, group)
    return post, str(buttons(post)["Approve"]["value"])


def concurrent_approvals(cluster: Cluster, clicks: list[tuple[str, str]]) -> None:
    """(request id, approver) clicks, all released at once, alternating between processes."""
    barrier = threading.Barrier(len(clicks))
    errors: list[BaseException] = []

    def run(index: int, request_id: str, approver: str) -> None:
        slack = cluster.senders[index % 2]
        barrier.wait()
        try:
            click(slack, "approval_approve", request_id, user=approver, channel=CHANNEL)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i, request_id, approver))
        for i, (request_id, approver) in enumerate(clicks)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def state_of(cluster: Cluster, request_id: str) -> str:
    with cluster.engine.connect() as conn:
        return str(conn.scalar(select(Request.state).where(Request.id == request_id)))


def audited(cluster: Cluster, request_id: str, action: str) -> list[AuditEvent]:
    with cluster.engine.connect() as conn:
        query = select(AuditEvent).where(
            AuditEvent.request_id == request_id, AuditEvent.action == action
        )
        return list(conn.execute(query))


def updates_of(slack_api: FakeSlackApi, post, text: str):
    ts = post.response["ts"]
    return [
        c
        for c in slack_api.calls_to("chat.update")
        if c.params.get("ts") == ts and text in message_text(c)
    ]


def test_four_concurrent_approvals_over_two_processes_run_each_request_once(prod, slack_api, aws):
    cluster = prod
    slack = cluster.senders[0]
    assert slack.command("/offboard", "alice", user_id=MANAGER).status_code == 200
    offboarding = approval_post(slack_api, "Offboarding request")
    assert "Waiting for 2 different approvers" in message_text(offboarding)
    offboard_id = str(buttons(offboarding)["Approve"]["value"])
    grant_post, grant_id = ask_groups(cluster, slack_api, "bob", "admins")
    assert "Waiting for 2 different approvers" in message_text(grant_post)

    # The requester is listed as an approver: their click is refused and counts for nothing.
    for index, request_id in enumerate((offboard_id, grant_id)):
        click(cluster.senders[index], "approval_approve", request_id, user=MANAGER, channel=CHANNEL)
    said = slack_api.wait_for(f"response_url:/respond/click-{MANAGER}", count=2, timeout=PATIENCE)
    assert all("someone else has to approve it" in c.params["text"] for c in said)
    assert state_of(cluster, offboard_id) == state_of(cluster, grant_id) == "pending"
    assert not audited(cluster, offboard_id, "request.approval_added")

    # Four approvers on each request, eight clicks at once over the two processes.
    concurrent_approvals(
        cluster, [(rid, who) for who in APPROVERS for rid in (offboard_id, grant_id)]
    )
    wait_until(lambda: state_of(cluster, offboard_id) == "done", timeout=PATIENCE)
    wait_until(lambda: state_of(cluster, grant_id) == "done", timeout=PATIENCE)

    # Each ran once: the AWS calls a second run would repeat were each made once.
    deletes = [c for c in cluster.wire.of("DeleteUser") if c.params["UserName"] == "alice"]
    assert len(deletes) == 1
    assert len(cluster.wire.of("DeleteLoginProfile")) == 1
    adds = cluster.wire.of("AddUserToGroup")
    assert [(c.params["UserName"], c.params["GroupName"]) for c in adds] == [("bob", "admins")]
    assert [g["GroupName"] for g in aws.list_groups_for_user(UserName="bob")["Groups"]] == [
        "admins"
    ]
    for request_id in (offboard_id, grant_id):
        assert len(audited(cluster, request_id, "request.running")) == 1
        assert len(audited(cluster, request_id, "request.done")) == 1
        (approved,) = audited(cluster, request_id, "request.approved")
        counted = approved.detail["approvers"]
        assert len(counted) == 2 and set(counted) <= set(APPROVERS)

    # What the approvers see: two of the four, "2 of 2 approvals", never the requester.
    for post in (offboarding, grant_post):
        # The request is stored done before its message says so: wait for the message.
        wait_until(lambda post=post: bool(updates_of(slack_api, post, "Done")), timeout=PATIENCE)
        (done,) = updates_of(slack_api, post, "Done")
        shown = message_text(done)
        assert "2 of 2 approvals" in shown and f"<@{MANAGER}>" not in shown.split("Done")[1]
        assert sum(f"<@{a}>" in shown.split("Done")[1] for a in APPROVERS) == 2


def test_a_deny_by_one_approver_ends_a_request_one_approval_short(prod, slack_api, aws):
    cluster = prod
    post, request_id = ask_groups(cluster, slack_api, "bob", "auditors")
    first, second, third = APPROVERS[:3]

    click(cluster.senders[0], "approval_approve", request_id, user=first, channel=CHANNEL)
    wait_until(
        lambda: bool(updates_of(slack_api, post, f"1 of 2 approvals: <@{first}>")),
        timeout=PATIENCE,
    )
    click(cluster.senders[1], "approval_deny", request_id, user=second, channel=CHANNEL)
    wait_until(lambda: bool(updates_of(slack_api, post, f"Denied by <@{second}>")))
    assert state_of(cluster, request_id) == "denied"

    # A later approval finds it decided: nothing runs.
    click(cluster.senders[0], "approval_approve", request_id, user=third, channel=CHANNEL)
    (said,) = slack_api.wait_for(f"response_url:/respond/click-{third}", timeout=PATIENCE)
    assert "denied" in said.params["text"]
    assert state_of(cluster, request_id) == "denied"
    assert cluster.wire.of("AddUserToGroup") == []
    assert aws.list_groups_for_user(UserName="bob")["Groups"] == []
    assert not audited(cluster, request_id, "request.running")
