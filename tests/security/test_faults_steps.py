"""A failure at every onboarding and offboarding step, through the approval flow in Slack.

Onboarding rolls back (IAM and the store hold nothing of the user) and offboarding stops where
it failed; either way the request is `failed`, the approval message and the requester say so
in words, and an approver's Retry finishes the job once.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.services import approvals
from bot.services.offboard_steps import OFFBOARD_STEPS, STEP_LABELS
from storage.models import Account
from tests.support.approvals import add_integration, audit_actions, click
from tests.support.requests import submit_request

PASSWORD = "Fault-Inject3d-Pw!x"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}],
    }
)
ONBOARD_OPERATIONS = ["CreateUser", "CreateLoginProfile", "AddUserToGroup", "AttachUserPolicy"]
# The AWS operation each offboarding step makes that no earlier part of the run makes
# (GetUser is also the run's first call, hence the skip).
OFFBOARD_OPERATIONS = {
    "deny_all": ("PutUserPolicy", 0),
    "login_profile": ("DeleteLoginProfile", 0),
    "deactivate_keys": ("UpdateAccessKey", 0),
    "access_keys": ("DeleteAccessKey", 0),
    "signing_certificates": ("ListSigningCertificates", 0),
    "ssh_keys": ("ListSSHPublicKeys", 0),
    "service_credentials": ("ListServiceSpecificCredentials", 0),
    "mfa_devices": ("ListMFADevices", 0),
    "inline_policies": ("DeleteUserPolicy", 0),
    "attached_policies": ("DetachUserPolicy", 0),
    "groups": ("RemoveUserFromGroup", 0),
    "delete_user": ("DeleteUser", 0),
    "confirm_gone": ("GetUser", 1),
}


def test_every_offboarding_step_is_covered():
    assert set(OFFBOARD_OPERATIONS) == set(OFFBOARD_STEPS)


@pytest.fixture
def account(iam):
    iam.create_group(GroupName="developers")
    arn = iam.create_policy(PolicyName="s3-read", PolicyDocument=POLICY)["Policy"]["Arn"]
    return {"policy_arn": arn}


def told_requester(slack_api, requester: str, word: str) -> str:
    (dm,) = slack_api.wait_for(
        "chat.postMessage",
        where=lambda c: c.params.get("channel") == requester and word in str(c.params.get("text")),
    )
    return str(dm.params["text"])


def last_approval_message(slack_api) -> str:
    updates = slack_api.calls_to("chat.update")
    return json.dumps(updates[-1].params.get("blocks")) + str(updates[-1].params.get("text"))


@pytest.mark.parametrize("operation", ONBOARD_OPERATIONS)
def test_onboarding_failing_at_any_step_rolls_back_says_so_and_retries_once(
    roleup, slack, slack_api, iam, account, aws_faults, operation
):
    integration_id = add_integration(roleup.core, approve_onboarding=True)
    row = submit_request(
        roleup.core,
        kind="onboard",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={
            "username": "alice",
            "groups": ["developers"],
            "policies": [account["policy_arn"]],
            "slack_user_id": "U0ALICE",
            "created_by": "UMANAGER",
        },
        secret=PASSWORD,
    )
    aws_faults.fail(operation, "ServiceFailure")
    click(slack, "approval_approve", row.id, user="UAPPROVER")
    text = told_requester(slack_api, "UMANAGER", "failed")
    if operation != "CreateUser":
        assert "undone" in text, text
    assert "Retry" in text
    assert approvals.load(roleup.core, row.id).state == approvals.FAILED
    assert iam.list_users()["Users"] == []
    with roleup.core.sessions() as s:
        assert s.scalars(select(Account)).all() == []
    assert "Retry" in last_approval_message(slack_api)

    click(slack, "approval_retry", row.id, user="UAPPROVER")
    told_requester(slack_api, "UMANAGER", "is done")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["alice"]
    assert iam.list_groups_for_user(UserName="alice")["Groups"][0]["GroupName"] == "developers"
    done = approvals.load(roleup.core, row.id)
    assert done.state == approvals.DONE
    assert done.secret_ciphertext is None
    actions = audit_actions(roleup.core, row.id)
    assert actions.count("request.failed") == 1 and actions.count("request.done") == 1, actions


def make_leaving_user(iam, account, name: str = "bob") -> None:
    iam.create_user(UserName=name)
    iam.create_login_profile(UserName=name, Password=PASSWORD, PasswordResetRequired=True)
    iam.create_access_key(UserName=name)
    iam.add_user_to_group(UserName=name, GroupName="developers")
    iam.attach_user_policy(UserName=name, PolicyArn=account["policy_arn"])
    iam.put_user_policy(UserName=name, PolicyName="extra", PolicyDocument=POLICY)


@pytest.mark.parametrize("step", OFFBOARD_STEPS)
def test_offboarding_failing_at_any_step_stops_says_where_and_resumes_once(
    roleup, slack, slack_api, iam, account, aws_faults, step
):
    integration_id = add_integration(roleup.core)
    make_leaving_user(iam, account)
    row = submit_request(
        roleup.core,
        kind="offboard",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={
            "target": "bob",
            "accounts": [
                {"integration_id": integration_id, "integration": "prod", "user_name": "bob"}
            ],
        },
    )
    operation, skip = OFFBOARD_OPERATIONS[step]
    aws_faults.fail_after(operation, skip)
    click(slack, "approval_approve", row.id, user="UAPPROVER")
    text = told_requester(slack_api, "UMANAGER", "failed")
    assert STEP_LABELS[step] in text, text
    assert "Retry" in text
    failed = approvals.load(roleup.core, row.id)
    assert failed.state == approvals.FAILED
    assert {"account": "prod/bob", "step": step, "status": "failed"} in failed.steps
    still_there = [u["UserName"] for u in iam.list_users()["Users"]]
    assert still_there == ([] if step == "confirm_gone" else ["bob"])
    assert "Retry" in last_approval_message(slack_api)

    click(slack, "approval_retry", row.id, user="UAPPROVER")
    told_requester(slack_api, "UMANAGER", "is done")
    assert iam.list_users()["Users"] == []
    done = approvals.load(roleup.core, row.id)
    assert done.state == approvals.DONE
    assert {"account": "prod/bob", "step": step, "status": "done"} in done.steps
    actions = audit_actions(roleup.core, row.id)
    assert actions.count("request.done") == 1, actions
