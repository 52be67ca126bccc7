"""Requests other than offboarding, and the life around a decision: onboarding with a chosen
password, group removals, DMs to approvers, expiry and reminder notices, recovery at start."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.services import approvals
from storage.models import AuditEvent, Request, utcnow
from tests.support.approvals import (
    add_integration,
    approval_post,
    audit_actions,
    buttons,
    click,
    make_user,
    message_text,
    request_id_of,
    user_exists,
    wait_for,
)
from tests.support.requests import submit_request

pytestmark = [pytest.mark.usefixtures("moto_gaps"), pytest.mark.moto_server]
CHOSEN = "Chosen-Passw0rd-9!x"


def invite_request(core, integration_id):
    return submit_request(
        core,
        kind="invite_onboard",
        integration_id=integration_id,
        requester="UNEWBIE",
        payload={"username": "newbie", "groups": [], "policies": [], "created_by": "UINVITER"},
        secret=CHOSEN,
    )


def test_an_invite_onboarding_creates_the_user_with_the_chosen_password_then_forgets_it(
    roleup, slack, slack_api, aws
):
    core = roleup.core
    row = invite_request(core, add_integration(core))
    post = approval_post(slack_api)
    assert "Username:* newbie" in message_text(post)
    # A manager (not the invite's creator) completes an invite that needs no other approver.
    click(slack, "approval_approve", row.id, user="UMANAGER")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert user_exists(aws, "newbie")
    # (moto 5 does not keep PasswordResetRequired; the IAM service's own tests cover it.)
    assert aws.get_login_profile(UserName="newbie")["LoginProfile"]["UserName"] == "newbie"
    done = approvals.load(core, row.id)
    assert done.state == "done"
    assert done.secret_ciphertext is None
    assert CHOSEN not in slack_api.all_text()
    dm = wait_for(slack_api, "chat.postMessage", where=lambda c: c.params["channel"] == "UNEWBIE")
    assert "is done" in dm[-1].params["text"]


def test_an_expired_invite_onboarding_loses_its_password_and_says_so(roleup, slack_api, aws):
    core = roleup.core
    row = invite_request(core, add_integration(core))
    approval_post(slack_api)
    assert approvals.expire_pending(core, now=utcnow() + timedelta(hours=25)) == 1
    expired = approvals.load(core, row.id)
    assert expired.state == "expired"
    assert expired.secret_ciphertext is None
    update_call = wait_for(slack_api, "chat.update", where=lambda c: "Expired" in message_text(c))
    assert buttons(update_call[-1]) == {}
    dm = wait_for(slack_api, "chat.postMessage", where=lambda c: c.params["channel"] == "UNEWBIE")
    assert "expired" in dm[-1].params["text"]
    assert not user_exists(aws, "newbie")


def test_removing_a_user_from_a_group_waits_for_an_approver(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    row = submit_request(
        core,
        kind="set_groups",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={"user_name": "alice", "groups": [], "added": [], "removed": ["devs"]},
    )
    assert row.state == "pending"
    post = approval_post(slack_api)
    assert "Remove from:* devs" in message_text(post)
    assert [g["GroupName"] for g in aws.list_groups_for_user(UserName="alice")["Groups"]] == [
        "devs"
    ]
    click(slack, "approval_approve", row.id, user="UAPPROVER")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert aws.list_groups_for_user(UserName="alice")["Groups"] == []


def test_a_group_grant_the_integration_does_not_guard_runs_at_once(roleup, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    aws.create_group(GroupName="ops")
    row = submit_request(
        core,
        kind="set_groups",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={"user_name": "alice", "groups": ["devs", "ops"], "added": ["ops"], "removed": []},
    )
    assert row.state == "done"
    assert row.decided_by == approvals.AUTO_APPROVER
    assert slack_api.calls_to("chat.postMessage") == []  # nobody was asked
    groups = {g["GroupName"] for g in aws.list_groups_for_user(UserName="alice")["Groups"]}
    assert groups == {"devs", "ops"}
    assert audit_actions(core, row.id)[:3] == [
        "request.created",
        "request.running",
        "iam.set_groups",
    ]


def test_without_an_approvals_channel_each_approver_gets_a_dm(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core, approvals_channel=None)
    make_user(aws, core, integration_id, "alice")
    row = submit_request(
        core,
        kind="set_groups",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={"user_name": "alice", "groups": [], "added": [], "removed": ["devs"]},
    )
    opened = [c.params["users"] for c in slack_api.calls_to("conversations.open")]
    assert opened == ["UAPPROVER", "UAPPROVER2"]
    posts = slack_api.calls_to("chat.postMessage")
    assert [p.params["channel"] for p in posts] == ["DUAPPROVER", "DUAPPROVER2"]
    assert all(set(buttons(p)) == {"Approve", "Deny"} for p in posts)
    click(slack, "approval_deny", row.id, user="UAPPROVER2", channel="DUAPPROVER2")
    updates = wait_for(
        slack_api, "chat.update", count=2, where=lambda c: "Denied" in message_text(c)
    )
    assert {u.params["channel"] for u in updates} == {"DUAPPROVER", "DUAPPROVER2"}


def test_a_reminder_is_posted_in_the_thread_of_each_approval_message(roleup, slack_api):
    core = roleup.core
    row = submit_request(
        core,
        kind="remove_integration",
        integration_id=add_integration(core),
        requester="UADMIN",
        payload={},
    )
    later = utcnow() + timedelta(hours=5)
    assert approvals.remind_pending(core, timedelta(hours=4), now=later) == 1
    (reminder,) = wait_for(
        slack_api, "chat.postMessage", where=lambda c: c.params.get("thread_ts") == row.message_ts
    )
    assert "still waiting" in reminder.params["text"]


def test_an_offboarding_left_running_by_a_killed_process_resumes(roleup, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    from bot.services.offboard_requests import request_offboard, targets_by_username

    row = request_offboard(
        core,
        requester="UMANAGER",
        targets=targets_by_username(core, "alice"),
        asked_for="alice",
    )
    approvals.decide(core, row.id, approver="UAPPROVER", approve=True, execute_now=False)
    # The process claimed it and died before running a step.
    with core.sessions.begin() as s:
        approvals.move(s, row.id, from_states=["approved"], to="running")
        s.execute(
            update(Request)
            .where(Request.id == row.id)
            .values(updated_at=utcnow() - timedelta(hours=1))
        )
    assert approvals.recover_running(core) == 1
    assert approvals.load(core, row.id).state == "done"
    assert not user_exists(aws, "alice")
    assert "request.recovered" in audit_actions(core, row.id)
    assert request_id_of(approval_post(slack_api)) == row.id


class ProcessDied(BaseException):
    """The process going away mid-run: nothing in RoleUp catches it, no outcome is written."""


def test_an_offboarding_whose_process_dies_after_the_cuts_resumes_and_ends_complete(
    roleup, slack_api, aws, monkeypatch
):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    from bot.services import offboard_steps
    from bot.services.offboard_requests import request_offboard, targets_by_username

    row = request_offboard(
        core, requester="UMANAGER", targets=targets_by_username(core, "alice"), asked_for="alice"
    )

    def die(target, key):
        raise ProcessDied

    # The cuts answered; the first cleanup step takes the process down.
    steps = offboard_steps.STEPS
    dying = offboard_steps.step_of("access_keys")
    monkeypatch.setattr(
        offboard_steps,
        "STEPS",
        tuple(dataclasses.replace(s, remove=die) if s is dying else s for s in steps),
    )
    with pytest.raises(ProcessDied):
        approvals.decide(core, row.id, approver="UAPPROVER", approve=True)
    stuck = approvals.load(core, row.id)
    assert stuck.state == "running"
    assert aws.list_access_keys(UserName="alice")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    # What the store says was done is true; the unfinished step is not marked done.
    reported = {s["step"]: s["status"] for s in stuck.steps}
    assert {reported[s] for s in offboard_steps.CUT_STEPS} == {"done"}
    assert reported.get("access_keys") != "done"
    assert reported.get("finished") is None

    monkeypatch.setattr(offboard_steps, "STEPS", steps)
    later = utcnow() + timedelta(hours=1)
    assert approvals.recover_running(core, now=later) == 1
    done = approvals.load(core, row.id)
    assert done.state == "done", done.outcome
    assert not user_exists(aws, "alice")
    # The checklist ends complete and the audit keeps every step.
    final = {s["step"]: s["status"] for s in done.steps}
    assert final == {**dict.fromkeys(offboard_steps.OFFBOARD_STEPS, "done"), "finished": "done"}
    with core.sessions() as s:
        audited = s.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.request_id == row.id, AuditEvent.action == "iam.offboard.step"
            )
        ).all()
    assert {d["step"] for d in audited if d["status"] == "done"} == set(
        offboard_steps.OFFBOARD_STEPS
    )
    assert "request.recovered" in audit_actions(core, row.id)
