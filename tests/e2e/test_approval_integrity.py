"""Attacks on the approval flow, each replayed end to end and shown refused or made harmless.

Every test drives the real Bolt app with really signed Slack requests (commands, modal
submissions, button clicks), against IAM on a moto server over HTTP, and checks what a person
would check afterwards: IAM itself, the request row in the store, and what Slack was told.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from sqlalchemy import select, update

from bot.services.sync import sync_integration
from storage.models import Group, Integration, Request, utcnow
from tests.support import invite_kit, seed
from tests.support.approvals import (
    ACCOUNT,
    PATIENCE,
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
from tests.support.aws_calls import READS
from tests.support.invite_flow import (
    answer_values,
    open_answer_form,
    outcome_view,
    send_invite,
    submit_answer,
)
from tests.support.modal import one_user, options, submission, text

# moto 5 lacks service-specific credentials: answer as AWS does for a user with none.
pytestmark = [pytest.mark.usefixtures("moto_gaps"), pytest.mark.moto_server]

MANAGER, APPROVER, APPROVER2 = "UMANAGER", "UAPPROVER", "UAPPROVER2"
PASSWORD = "Typed-Secret-Passw0rd!"
ADMIN_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
AWS_DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"
OWN_PRINCIPAL_REFUSAL = "RoleUp never offboards or regroups its own principal"


@pytest.fixture
def aws_managed_policies(moto_url) -> Iterator[None]:
    """AWS's managed policies (AdministratorAccess, AWSDenyAll...) in the moto account: moto
    loads them only when asked, when a reset rebuilds its backend (undone afterwards, so the
    other tests keep their small account)."""
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    yield
    os.environ.pop("MOTO_IAM_LOAD_MANAGED_POLICIES", None)
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)


# --- reading the outcome ---------------------------------------------------------------------
def requests_in_store(core) -> list[Request]:
    with core.sessions() as s:
        return list(s.scalars(select(Request).order_by(Request.created_at)))


def only_request(core) -> Request:
    (row,) = requests_in_store(core)
    return row


def request_row(core, request_id: str) -> Request:
    with core.sessions() as s:
        row = s.get(Request, request_id)
        assert row is not None
        return row


def wait_for_state(core, request_id: str, state: str) -> Request:
    wait_until(lambda: request_row(core, request_id).state == state, timeout=PATIENCE)
    return request_row(core, request_id)


def groups_of(aws, user: str) -> list[str]:
    return sorted(g["GroupName"] for g in aws.list_groups_for_user(UserName=user)["Groups"])


def has_password(aws, user: str) -> bool:
    try:
        aws.get_login_profile(UserName=user)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchEntity"
        return False
    return True


def key_statuses(aws, user: str) -> dict[str, str]:
    keys = aws.list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in keys}


def attached_arns(aws, user: str) -> list[str]:
    attached = aws.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    return sorted(p["PolicyArn"] for p in attached)


def iam_state(aws, user: str) -> dict[str, Any]:
    """Everything of a user a person would look at in the console."""
    return {
        "user_id": aws.get_user(UserName=user)["User"]["UserId"],
        "password": has_password(aws, user),
        "keys": key_statuses(aws, user),
        "groups": groups_of(aws, user),
        "attached": attached_arns(aws, user),
        "inline": sorted(aws.list_user_policies(UserName=user)["PolicyNames"]),
    }


def writes_on(calls, user: str, since: int = 0) -> list[str]:
    """The IAM write calls the app made on `user` (from the `since`-th recorded call on)."""
    return [
        name
        for name, params in calls.made[since:]
        if params.get("UserName") == user and not name.startswith(READS)
    ]


def told_clicker(slack_api, user: str, count: int = 1) -> list[Any]:
    return wait_for(slack_api, f"response_url:/respond/click-{user}", count=count)


def approval_updates(slack_api) -> list[Any]:
    return [c for c in slack_api.calls_to("chat.update") if c.params.get("channel") == "CAPPROVALS"]


def last_approval_update(slack_api) -> str:
    """The approval message as last re-rendered."""
    updates = approval_updates(slack_api)
    assert updates, "the approval message was never updated"
    return message_text(updates[-1])


def buttons_of_last_update(slack_api) -> set[str]:
    updates = approval_updates(slack_api)
    return set(buttons(updates[-1])) if updates else set()


# --- driving modals --------------------------------------------------------------------------
def open_groups(slack, slack_api, user_name: str, user_id: str = MANAGER) -> dict[str, Any]:
    """`/groups user_name`: the modal as the app filled it after the ack."""
    slack_api.reset()
    assert slack.command("/groups", user_name, user_id=user_id).status_code == 200
    wait_for(slack_api, "views.open")
    return wait_for(slack_api, "views.update")[0].params["view"]


def submit_groups(slack, view: dict[str, Any], groups: list[str], user_id: str = MANAGER) -> None:
    values = {"groups": {"value": options(*groups)}}
    body = slack.interact(submission(view, values, user_id)).json()
    assert body["response_action"] == "update", body


def modal_outcome(slack_api, needle: str) -> str:
    """The text of the view the app showed after an ack, once it contains `needle`."""
    calls = wait_for(slack_api, "views.update", where=lambda c: needle in json.dumps(c.params))
    return json.dumps(calls[-1].params["view"])


def synced_integration(core, aws, **overrides: Any) -> int:
    """An integration whose store is filled by a real sync of the moto account."""
    integration_id = add_integration(core, **overrides)
    sync_integration(core, integration_id, actor="UADMIN")
    return integration_id


# --- 1. an invite's creator never completes it himself ---------------------------------------
@pytest.mark.parametrize(
    "approvers",
    [
        [MANAGER, APPROVER],  # the creator is an approver too: the creator rule alone stops him
        [APPROVER],  # a plain manager (who here could not complete any onboarding either)
    ],
    ids=["creator-is-approver", "creator-is-manager"],
)
def test_the_manager_who_made_an_invite_cannot_approve_its_answer(
    roleup, slack, slack_api, aws, approvers
):
    core = roleup.core
    integration_id = seed.add_integration(
        core,
        managers=[MANAGER, "UMANAGER2"],
        approvers=approvers,
        approve_onboarding=True,
        approve_group_grants=True,
    )
    aws.create_group(GroupName="developers")
    with core.sessions.begin() as s:
        s.add(Group(integration_id=integration_id, name="developers"))
    dm = send_invite(slack, slack_api)  # by UMANAGER, with the group developers
    form = open_answer_form(slack, slack_api, dm)
    submit_answer(slack, slack_api, form, answer_values("newbie", invite_kit.GOOD_PASSWORD))
    outcome_view(slack_api, "waiting for approval")
    request = only_request(core)
    assert (request.kind, request.state, request.payload["invite_creator"]) == (
        "invite_onboard",
        "pending",
        MANAGER,
    )

    click(slack, "approval_approve", request.id, user=MANAGER)
    (said,) = told_clicker(slack_api, MANAGER)
    assert "You created this invite, so someone else has to approve it." in said.params["text"]
    assert said.params["response_type"] == "ephemeral"
    assert request_row(core, request.id).state == "pending"
    assert request_row(core, request.id).decided_by is None
    assert not user_exists(aws, "newbie")
    # Another manager may not complete it either: the same /onboard would need an approver.
    click(slack, "approval_approve", request.id, user="UMANAGER2")
    (said,) = told_clicker(slack_api, "UMANAGER2")
    assert "Only the approvers of integration prod can decide" in said.params["text"]
    assert request_row(core, request.id).state == "pending"
    assert not user_exists(aws, "newbie")
    assert audit_actions(core, request.id).count("request.decide_refused") == 2

    click(slack, "approval_approve", request.id, user=APPROVER)
    done = wait_for_state(core, request.id, "done")
    assert done.decided_by == APPROVER
    assert groups_of(aws, "newbie") == ["developers"]


# --- 2. /onboard straight into a group waits when grants need an approver ----------------------
def test_onboarding_into_a_group_waits_when_the_integration_approves_grants(
    roleup, slack, slack_api, aws
):
    core = roleup.core
    integration_id = add_integration(core, approve_group_grants=True)
    aws.create_group(GroupName="developers")
    with core.sessions.begin() as s:
        s.add(Group(integration_id=integration_id, name="developers"))
    assert slack.command("/onboard", "", user_id=MANAGER).status_code == 200
    wait_for(slack_api, "views.open")
    view = wait_for(slack_api, "views.update")[0].params["view"]
    values = {
        "integration": {
            "onboard_integration": {
                "type": "static_select",
                "selected_option": {"value": str(integration_id)},
            }
        },
        "username": {"value": text("carol")},
        "password": {"value": text(PASSWORD)},
        "groups": {"value": options("developers")},
        "policies": {"onboard_policies": options()},
        "slack_user": {"value": one_user("UCAROL")},
    }
    body = slack.interact(submission(view, values, MANAGER)).json()
    assert body["response_action"] == "update", body
    shown = modal_outcome(slack_api, "Asked for approval in <#CAPPROVALS>")
    assert "was created" not in shown
    request = only_request(core)
    assert (request.kind, request.state) == ("onboard", "pending")
    assert request.payload["why"] == "this integration wants group grants approved"
    assert "Why an approver" in message_text(approval_post(slack_api))
    assert not user_exists(aws, "carol")

    click(slack, "approval_approve", request.id, user=APPROVER)
    wait_for_state(core, request.id, "done")
    assert groups_of(aws, "carol") == ["developers"]


# --- 3. a group with AdministratorAccess is a privileged grant --------------------------------
@pytest.mark.usefixtures("aws_managed_policies")
def test_a_group_granting_administrator_access_waits_while_a_harmless_one_does_not(
    roleup, slack, slack_api, aws
):
    core = roleup.core
    aws.create_group(GroupName="admins")
    aws.attach_group_policy(GroupName="admins", PolicyArn=ADMIN_ACCESS)
    aws.create_group(GroupName="readers")
    aws.create_user(UserName="bob")
    integration_id = synced_integration(core, aws)  # no approval settings at all
    with core.sessions() as s:
        integration = s.get(Integration, integration_id)
        assert integration is not None
        assert not integration.approve_group_grants and not integration.approve_onboarding

    submit_groups(slack, open_groups(slack, slack_api, "bob"), ["admins"])
    modal_outcome(slack_api, "Asked for approval in <#CAPPROVALS>")
    held = only_request(core)
    assert (held.kind, held.state) == ("set_groups", "pending")
    assert held.payload["added"] == ["admins"]
    assert held.payload["why"] == "privileged grant: admins"
    assert "privileged grant: admins" in message_text(approval_post(slack_api))
    assert groups_of(aws, "bob") == []

    submit_groups(slack, open_groups(slack, slack_api, "bob"), ["readers"])
    shown = modal_outcome(slack_api, "changed")
    assert "Added: readers" in shown
    assert groups_of(aws, "bob") == ["readers"]
    ran = [r for r in requests_in_store(core) if r.id != held.id]
    assert [(r.state, r.decided_by) for r in ran] == [("done", "policy")]
    assert request_row(core, held.id).state == "pending"


# --- 4. a group change is a diff, never a wanted list ----------------------------------------
def ask_to_remove_admins(roleup, slack, slack_api, aws, start: list[str]) -> Request:
    """bob starts in `start`; the manager unticks admins in /groups; the request waits."""
    core = roleup.core
    for group in ("developers", "admins", "billing"):
        aws.create_group(GroupName=group)
    aws.create_user(UserName="bob")
    for group in start:
        aws.add_user_to_group(UserName="bob", GroupName=group)
    synced_integration(core, aws)
    view = open_groups(slack, slack_api, "bob")
    submit_groups(slack, view, [g for g in start if g != "admins"])
    modal_outcome(slack_api, "Asked for approval in <#CAPPROVALS>")
    request = only_request(core)
    assert request.state == "pending"
    assert (request.payload["added"], request.payload["removed"]) == ([], ["admins"])
    return request


def test_a_group_added_outside_roleup_while_waiting_is_kept(roleup, slack, slack_api, aws):
    request = ask_to_remove_admins(roleup, slack, slack_api, aws, ["admins", "developers"])
    aws.add_user_to_group(UserName="bob", GroupName="billing")  # someone, in the console
    click(slack, "approval_approve", request.id, user=APPROVER)
    wait_for_state(roleup.core, request.id, "done")
    assert groups_of(aws, "bob") == ["billing", "developers"]


def test_a_group_removed_outside_roleup_while_waiting_is_not_put_back(
    roleup, slack, slack_api, aws
):
    start = ["admins", "billing", "developers"]
    request = ask_to_remove_admins(roleup, slack, slack_api, aws, start)
    aws.remove_user_from_group(UserName="bob", GroupName="billing")  # someone, in the console
    click(slack, "approval_approve", request.id, user=APPROVER)
    wait_for_state(roleup.core, request.id, "done")
    assert groups_of(aws, "bob") == ["developers"]


# --- 5. a user deleted and re-created under the same name is someone else --------------------
def delete_user_outside_roleup(aws, name: str) -> None:
    """What an admin does in the console: empty the user, then delete it."""
    with contextlib.suppress(ClientError):
        aws.delete_login_profile(UserName=name)
    for key in aws.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        aws.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    for group in groups_of(aws, name):
        aws.remove_user_from_group(UserName=name, GroupName=group)
    for arn in attached_arns(aws, name):
        aws.detach_user_policy(UserName=name, PolicyArn=arn)
    for policy in aws.list_user_policies(UserName=name)["PolicyNames"]:
        aws.delete_user_policy(UserName=name, PolicyName=policy)
    aws.delete_user(UserName=name)


def test_offboarding_a_user_recreated_under_the_same_name_touches_nothing(
    roleup,
    slack,
    slack_api,
    aws,
    aws_faults,
):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    slack.command("/offboard", "alice", user_id=MANAGER)
    request_id = request_id_of(approval_post(slack_api))
    pinned = request_row(core, request_id).payload["accounts"][0]["user_id"]
    assert pinned == aws.get_user(UserName="alice")["User"]["UserId"]

    # The old alice leaves and a new person called alice joins, outside RoleUp.
    delete_user_outside_roleup(aws, "alice")
    aws.create_user(UserName="alice")
    aws.create_login_profile(UserName="alice", Password="An0ther-Person-Pw!")
    aws.create_access_key(UserName="alice")
    aws.add_user_to_group(UserName="alice", GroupName="devs")
    new_alice = iam_state(aws, "alice")
    assert new_alice["user_id"] != pinned

    before = len(aws_faults.made)
    click(slack, "approval_approve", request_id, user=APPROVER)
    failed = wait_for_state(core, request_id, "failed")
    assert "deleted and re-created" in (failed.outcome or "")
    assert "nothing was changed" in (failed.outcome or "")
    assert iam_state(aws, "alice") == new_alice
    assert new_alice["password"] and list(new_alice["keys"].values()) == ["Active"]
    assert writes_on(aws_faults, "alice", since=before) == []
    told = wait_for(
        slack_api,
        "chat.postMessage",
        where=lambda c: c.params["channel"] == MANAGER and "failed" in c.params["text"],
    )
    assert "deleted and re-created" in told[0].params["text"]


# --- 6. RoleUp's own principal ---------------------------------------------------------------
@pytest.fixture
def own_principal(roleup, aws) -> int:
    """Integration prod whose recorded principal is the IAM user roleup-bot (synced like any
    other user, linked to a Slack user)."""
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "roleup-bot", slack_user="UROBOT")
    aws.create_group(GroupName="ops")
    arn = aws.get_user(UserName="roleup-bot")["User"]["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:user/roleup-bot"
    with core.sessions.begin() as s:
        s.execute(
            update(Integration).where(Integration.id == integration_id).values(principal_arn=arn)
        )
        s.add(Group(integration_id=integration_id, name="devs"))
        s.add(Group(integration_id=integration_id, name="ops"))
    return integration_id


@pytest.mark.parametrize("target", ["roleup-bot", "<@UROBOT|robot>"])
def test_offboarding_roleups_own_principal_is_refused(
    roleup, slack, slack_api, aws, own_principal, target
):
    before = iam_state(aws, "roleup-bot")
    slack.command("/offboard", target, user_id=MANAGER)
    told = wait_for(slack_api, "response_url:/respond/cmd")
    assert OWN_PRINCIPAL_REFUSAL in told[-1].params["text"]
    assert told[-1].params["response_type"] == "ephemeral"
    assert requests_in_store(roleup.core) == []
    assert slack_api.calls_to("chat.postMessage") == []
    assert iam_state(aws, "roleup-bot") == before


def test_regrouping_roleups_own_principal_is_refused(roleup, slack, slack_api, aws, own_principal):
    before = iam_state(aws, "roleup-bot")
    view = open_groups(slack, slack_api, "roleup-bot")
    assert view.get("callback_id") != "groups"  # refused before the form opens
    assert OWN_PRINCIPAL_REFUSAL in json.dumps(view)
    assert requests_in_store(roleup.core) == []
    assert iam_state(aws, "roleup-bot") == before


# --- 7. a refused deny-all never stops the other cuts ----------------------------------------
@pytest.mark.usefixtures("aws_managed_policies")
def test_a_refused_inline_deny_all_falls_back_to_aws_deny_all_and_finishes(
    roleup,
    slack,
    slack_api,
    aws,
    aws_faults,
):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    aws_faults.fail("PutUserPolicy", "AccessDenied", times=100)
    slack.command("/offboard", "alice", user_id=MANAGER)
    request_id = request_id_of(approval_post(slack_api))
    click(slack, "approval_approve", request_id, user=APPROVER)
    wait_for_state(core, request_id, "done")

    assert not user_exists(aws, "alice")
    assert {"UserName": "alice", "PolicyArn": AWS_DENY_ALL} in aws_faults.params("AttachUserPolicy")
    assert [p["UserName"] for p in aws_faults.params("DeleteLoginProfile")] == ["alice"]
    deactivated = aws_faults.params("UpdateAccessKey")
    assert [(p["UserName"], p["Status"]) for p in deactivated] == [("alice", "Inactive")]
    names = aws_faults.names
    # The three cuts run together (no order among them), all before the clean-up starts.
    assert names.index("AttachUserPolicy") < names.index("DetachUserPolicy")
    assert names.index("DeleteLoginProfile") < names.index("DetachUserPolicy")
    assert names.index("DeleteLoginProfile") < names.index("DeleteUser")


@pytest.mark.usefixtures("aws_managed_policies")
def test_when_no_deny_all_can_be_set_password_and_keys_are_still_cut(
    roleup,
    slack,
    slack_api,
    aws,
    aws_faults,
):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    aws_faults.fail("PutUserPolicy", "AccessDenied", times=100)
    aws_faults.fail("AttachUserPolicy", "AccessDenied", times=100)
    slack.command("/offboard", "alice", user_id=MANAGER)
    request_id = request_id_of(approval_post(slack_api))
    click(slack, "approval_approve", request_id, user=APPROVER)
    failed = wait_for_state(core, request_id, "failed")

    # The two other cuts were made; nothing else was removed.
    after = iam_state(aws, "alice")
    assert after["password"] is False
    assert set(after["keys"].values()) == {"Inactive"}
    assert after["groups"] == ["devs"]
    assert after["attached"] == [f"arn:aws:iam::{ACCOUNT}:policy/ReadS3"]
    assert after["inline"] == ["inline-extra"]
    assert "could not cut all of its access" in (failed.outcome or "")
    assert "Attach a deny-all policy" in (failed.outcome or "")
    steps = {s["step"]: s["status"] for s in failed.steps}
    assert (steps["deny_all"], steps["login_profile"], steps["deactivate_keys"]) == (
        "failed",
        "done",
        "done",
    )
    assert "delete_user" not in steps
    wait_until(lambda: ":x: Failed" in last_approval_update(slack_api), PATIENCE)
    shown = last_approval_update(slack_api)
    assert ":x: Attach a deny-all policy (live sessions stop)" in shown
    assert ":white_check_mark: Delete the console password" in shown
    assert ":white_check_mark: Deactivate access keys" in shown
    assert ":white_large_square: Delete the IAM user" in shown


# --- 8. /offboard @person across a writable and a read-only integration ----------------------
def test_offboarding_a_person_leaves_their_read_only_account_alone(roleup, slack, slack_api, aws):
    core = roleup.core
    prod = add_integration(core, name="prod", path_prefix="/prod/")
    audit = add_integration(core, name="audit", path_prefix="/audit/", read_only=True)
    make_user(aws, core, prod, "alice-prod", path="/prod/", slack_user="UALICE")
    make_user(aws, core, audit, "alice-audit", path="/audit/", slack_user="UALICE")
    untouched = iam_state(aws, "alice-audit")

    slack.command("/offboard", "<@UALICE|alice>", user_id=MANAGER)
    post = approval_post(slack_api)
    shown = message_text(post)
    assert "prod/alice-prod" in shown
    assert "Not touched (read-only):" in shown and "audit/alice-audit" in shown
    request = only_request(core)
    assert [a["user_name"] for a in request.payload["accounts"]] == ["alice-prod"]
    assert request.payload["read_only"] == ["audit/alice-audit"]

    click(slack, "approval_approve", request_id_of(post), user=APPROVER)
    wait_for_state(core, request.id, "done")
    assert not user_exists(aws, "alice-prod")
    assert iam_state(aws, "alice-audit") == untouched


# --- 9. Slack guests and deactivated users never decide --------------------------------------
def slack_directory(odd_one: str, fields: dict[str, Any]):
    """users.info as Slack answers it: everyone a full member but `odd_one`."""

    def answer(call) -> dict[str, Any]:
        user = str(call.params.get("user", ""))
        found = {"id": user, "name": user.lower(), "deleted": False, "is_restricted": False}
        if user == odd_one:
            found.update(fields)
        return {"ok": True, "user": found}

    return answer


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"is_restricted": True}, "Slack guests can't use RoleUp."),
        ({"is_ultra_restricted": True}, "Slack guests can't use RoleUp."),
        ({"deleted": True}, "Deactivated Slack accounts can't use RoleUp."),
    ],
    ids=["guest", "single-channel-guest", "deactivated"],
)
def test_a_listed_approver_who_is_a_guest_or_deactivated_cannot_decide(
    roleup, slack, slack_api, aws, fields, refusal
):
    core = roleup.core
    integration_id = add_integration(core)  # approvers UAPPROVER and UAPPROVER2
    make_user(aws, core, integration_id, "alice")
    slack.command("/offboard", "alice", user_id=MANAGER)
    post = approval_post(slack_api)
    request_id = request_id_of(post)
    slack_api.overrides["users.info"] = slack_directory(APPROVER, fields)

    click(slack, "approval_approve", request_id, user=APPROVER)
    click(slack, "approval_deny", request_id, user=APPROVER)
    said = told_clicker(slack_api, APPROVER, count=2)
    assert [s.params["text"] for s in said] == [refusal, refusal]
    assert {s.params["response_type"] for s in said} == {"ephemeral"}
    row = request_row(core, request_id)
    assert (row.state, row.decided_by) == ("pending", None)
    assert user_exists(aws, "alice")
    assert audit_actions(core, request_id).count("request.decide_refused") == 2

    click(slack, "approval_approve", request_id, user=APPROVER2)  # a full member
    wait_for_state(core, request_id, "done")
    assert not user_exists(aws, "alice")


# --- 10. Retry only within the retry window --------------------------------------------------
def age(core, request_id: str, hours: float) -> None:
    """Make the request's last change `hours` old, as the passing of time would."""
    with core.sessions.begin() as s:
        row = s.get(Request, request_id)
        assert row is not None
        row.updated_at = utcnow() - timedelta(hours=hours)


def test_retry_after_the_window_asks_for_a_new_request(
    roleup,
    slack,
    slack_api,
    aws,
    aws_faults,
):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    aws_faults.fail("DeleteUser", "AccessDenied", times=1)
    slack.command("/offboard", "alice", user_id=MANAGER)
    request_id = request_id_of(approval_post(slack_api))
    click(slack, "approval_approve", request_id, user=APPROVER)
    wait_for_state(core, request_id, "failed")
    wait_until(lambda: "Retry" in buttons_of_last_update(slack_api), PATIENCE)
    assert user_exists(aws, "alice")

    age(core, request_id, hours=25)
    click(slack, "approval_retry", request_id, user=APPROVER)
    (said,) = told_clicker(slack_api, APPROVER)
    assert "failed more than 24 hours ago: make a new request" in said.params["text"]
    assert said.params["response_type"] == "ephemeral"
    assert request_row(core, request_id).state == "failed"
    assert user_exists(aws, "alice")
    assert "request.retry_refused" in audit_actions(core, request_id)
    assert "request.retried" not in audit_actions(core, request_id)

    age(core, request_id, hours=23)  # inside the window, the same click finishes the job
    click(slack, "approval_retry", request_id, user=APPROVER)
    wait_for_state(core, request_id, "done")
    assert not user_exists(aws, "alice")
