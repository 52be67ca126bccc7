"""Offboarding end to end: the request service, approval message with the plan, signed clicks,
a moto server as AWS; asserted on IAM, on what Slack was sent and on the audit log."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from bot.services import approvals, lifecycle
from bot.services.offboard_requests import (
    request_offboard,
    targets_by_username,
    targets_of_slack_user,
)
from bot.slack.approval_messages import TAG_LINKS_HEAD, submitted_text
from storage.models import Account, AuditEvent, Integration
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
    wait_until,
)

# moto 5 lacks service-specific credentials: answer as AWS does for a user with none.
pytestmark = [pytest.mark.usefixtures("moto_gaps"), pytest.mark.moto_server]


def offboard_events(core, request_id) -> int:
    with core.sessions() as s:
        query = select(AuditEvent).where(
            AuditEvent.request_id == request_id, AuditEvent.action == "iam.offboard"
        )
        return len(s.scalars(query).all())


def ask(core, user_name, requester="UMANAGER"):
    """What /offboard does after its checks: find the account, read the plan, submit."""
    return request_offboard(
        core,
        requester=requester,
        targets=targets_by_username(core, user_name),
        asked_for=user_name,
    )


def test_offboard_asks_with_exactly_the_plan_then_runs_once_approved(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    key = make_user(aws, core, integration_id, "alice")

    asked = ask(core, "alice")
    assert asked.state == "pending"
    post = approval_post(slack_api)
    shown = message_text(post)
    for expected in (
        "Offboarding request",
        "Console password",
        f"Access key {key} (active, never used)",
        "Group membership devs",
        "Managed policy (detach) ReadS3",
        "Inline policy inline-extra",
    ):
        assert expected in shown, expected
    assert set(buttons(post)) == {"Approve", "Deny"}
    assert user_exists(aws, "alice")  # nothing happens before the click

    request_id = request_id_of(post)
    click(slack, "approval_approve", request_id, user="UAPPROVER")
    done = wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert not user_exists(aws, "alice")
    final = message_text(done[-1])
    assert ":x:" not in final and ":hourglass_flowing_sand:" not in final
    assert "Confirm AWS no longer knows the user" in final
    # The checklist was shown while it ran, before "done".
    updates = slack_api.calls_to("chat.update")
    running = [
        u for u in updates if ":hourglass_flowing_sand: Delete access keys" in message_text(u)
    ]
    assert running and updates.index(running[0]) < updates.index(done[0])
    dm = wait_for(slack_api, "chat.postMessage", where=lambda c: c.params["channel"] == "UMANAGER")
    assert "is done" in dm[-1].params["text"]
    assert offboard_events(core, request_id) == 1
    actions = audit_actions(core, request_id)
    assert actions[:3] == ["request.created", "request.approved", "request.running"]
    assert actions[-1] == "request.done"
    with core.sessions() as s:
        assert s.scalars(select(Account)).all() == []


def test_a_double_click_and_a_second_approver_offboard_once(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    ask(core, "alice")
    request_id = request_id_of(approval_post(slack_api))

    clickers = ["UAPPROVER", "UAPPROVER", "UAPPROVER2", "UAPPROVER2"]
    barrier = threading.Barrier(len(clickers))

    def run(user: str) -> None:
        barrier.wait()
        click(slack, "approval_approve", request_id, user=user)

    threads = [threading.Thread(target=run, args=(u,)) for u in clickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    wait_until(
        lambda: (
            len(slack_api.calls_to("response_url:/respond/click-UAPPROVER"))
            + len(slack_api.calls_to("response_url:/respond/click-UAPPROVER2"))
            == 3
        )
    )
    assert not user_exists(aws, "alice")
    assert offboard_events(core, request_id) == 1
    assert audit_actions(core, request_id).count("request.approved") == 1


def test_deny_leaves_the_user_untouched(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    ask(core, "alice")
    request_id = request_id_of(approval_post(slack_api))
    click(slack, "approval_deny", request_id, user="UAPPROVER")
    wait_for(slack_api, "chat.update", where=lambda c: "Denied by <@UAPPROVER>" in message_text(c))
    assert user_exists(aws, "alice")
    assert aws.list_access_keys(UserName="alice")["AccessKeyMetadata"][0]["Status"] == "Active"
    assert offboard_events(core, request_id) == 0


def test_the_requester_cannot_approve_their_own_offboarding(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core, approvers=["UMANAGER", "UAPPROVER"])
    make_user(aws, core, integration_id, "alice")
    ask(core, "alice")
    request_id = request_id_of(approval_post(slack_api))
    click(slack, "approval_approve", request_id, user="UMANAGER")
    (said,) = wait_for(slack_api, "response_url:/respond/click-UMANAGER")
    assert "someone else has to approve it" in said.params["text"]
    assert user_exists(aws, "alice")
    assert approvals.load(core, request_id).state == "pending"


def test_a_failed_run_shows_what_failed_and_retry_resumes(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    ask(core, "alice")
    request_id = request_id_of(approval_post(slack_api))
    # Made read-only after asking: the run is refused before any AWS write.
    with core.sessions.begin() as s:
        s.get(Integration, integration_id).read_only = True
    click(slack, "approval_approve", request_id, user="UAPPROVER")
    failed = wait_for(slack_api, "chat.update", where=lambda c: "Failed" in message_text(c))
    assert "read-only" in message_text(failed[-1]).lower()
    assert set(buttons(failed[-1])) == {"Retry"}
    assert user_exists(aws, "alice")
    dm = wait_for(slack_api, "chat.postMessage", where=lambda c: c.params["channel"] == "UMANAGER")
    assert "failed" in dm[-1].params["text"]

    # The requester may not retry; an approver may.
    click(slack, "approval_retry", request_id, user="UMANAGER")
    (said,) = wait_for(slack_api, "response_url:/respond/click-UMANAGER")
    assert "someone else" in said.params["text"]
    with core.sessions.begin() as s:
        s.get(Integration, integration_id).read_only = False
    click(slack, "approval_retry", request_id, user="UAPPROVER2")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert not user_exists(aws, "alice")
    actions = audit_actions(core, request_id)
    assert actions.count("request.failed") == 1 and actions.count("request.retried") == 1


def test_offboarding_a_slack_user_covers_every_linked_account(roleup, slack, slack_api, aws):
    core = roleup.core
    prod = add_integration(core, name="prod", path_prefix="/prod/")
    dev = add_integration(core, name="dev", path_prefix="/dev/")
    make_user(aws, core, prod, "alice-prod", path="/prod/", slack_user="UALICE")
    make_user(aws, core, dev, "alice-dev", path="/dev/", slack_user="UALICE")
    make_user(aws, core, dev, "bob", path="/dev/", slack_user="UBOB")

    request_offboard(
        core,
        requester="UMANAGER",
        targets=targets_of_slack_user(core, "UALICE"),
        asked_for="<@UALICE>",
    )
    post = approval_post(slack_api)
    assert "prod/alice-prod" in message_text(post) and "dev/alice-dev" in message_text(post)
    click(slack, "approval_approve", request_id_of(post), user="UAPPROVER")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert not user_exists(aws, "alice-prod")
    assert not user_exists(aws, "alice-dev")
    assert user_exists(aws, "bob")


def test_offboarding_a_person_flags_accounts_only_a_tag_links_to_them(roleup, slack_api, aws):
    core = roleup.core
    prod = add_integration(core, name="prod", path_prefix="/prod/")
    # Linked in the store without RoleUp making the link, as a first sync reads a tag.
    make_user(aws, core, prod, "alice-old", path="/prod/", slack_user="UALICE")
    make_user(aws, core, prod, "alice-new", path="/prod/")
    lifecycle.link_slack_user(core, prod, "alice-new", "UALICE", actor="UADMIN")

    row = request_offboard(
        core,
        requester="UMANAGER",
        targets=targets_of_slack_user(core, "UALICE"),
        asked_for="<@UALICE>",
        whole_person=True,
    )
    assert [a["user_name"] for a in row.payload["accounts"]] == ["alice-new", "alice-old"]
    assert row.payload["tag_links"] == ["prod/alice-old"]
    flagged = [
        block["text"]["text"]
        for block in approval_post(slack_api).params["blocks"]
        if TAG_LINKS_HEAD in block.get("text", {}).get("text", "")
    ]
    assert flagged == [f"{TAG_LINKS_HEAD}\n• prod/alice-old"]
    assert submitted_text(row).endswith(f"{TAG_LINKS_HEAD}\n• prod/alice-old")


@pytest.mark.filterwarnings("ignore::UserWarning:moto.core.serialize")
def test_a_step_aws_refuses_is_shown_failed_and_retry_finishes_from_there(
    roleup, slack, slack_api, aws, monkeypatch
):
    """AWS refusing one step (fault injected into the moto server): the checklist shows the
    steps before it done and that step failed, with Retry; Retry resumes and finishes."""
    from moto.iam.exceptions import IAMException
    from moto.iam.responses import IamResponse

    def refuse(self):
        raise IAMException("AccessDenied", "not authorized to perform iam:DetachUserPolicy")

    original = IamResponse.detach_user_policy
    monkeypatch.setattr(IamResponse, "detach_user_policy", refuse)
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    request_id = ask(core, "alice").id
    click(slack, "approval_approve", request_id, user="UAPPROVER")
    (failed,) = wait_for(slack_api, "chat.update", where=lambda c: "Failed" in message_text(c))
    shown = message_text(failed)
    assert ":white_check_mark: Delete the console password" in shown
    assert ":x: Detach managed policies" in shown
    assert ":white_large_square: Delete the IAM user" in shown
    assert set(buttons(failed)) == {"Retry"}
    assert user_exists(aws, "alice")
    assert aws.get_user_policy(UserName="alice", PolicyName="roleup-offboarded-deny-all")
    assert aws.list_access_keys(UserName="alice")["AccessKeyMetadata"] == []

    monkeypatch.setattr(IamResponse, "detach_user_policy", original)
    click(slack, "approval_retry", request_id, user="UAPPROVER")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert not user_exists(aws, "alice")
    assert approvals.load(core, request_id).state == "done"
