"""Offboarding: the preview, access cut first, everything removed, resumable at every step."""

from __future__ import annotations

import json

import boto3
import pytest
from sqlalchemy import select

from bot.services import lifecycle
from bot.services.errors import (
    AwsUnavailable,
    ReadOnlyIntegration,
    StepFailed,
    UserNotFound,
)
from bot.services.lifecycle import OffboardPlan
from bot.services.offboard_steps import (
    CLEANUP_STEPS,
    CUT_STEPS,
    DENY_ALL_POLICY_NAME,
    OFFBOARD_STEPS,
)
from storage.models import Account, AuditEvent
from tests.support.iam_users import (  # noqa: F401
    POLICY_DOC,
    SSH_KEY,
    certificate_pem,
    furnish_user,
    gone,
    leftovers,
)


def test_the_plan_lists_exactly_what_will_be_removed(core, make_integration, iam):
    furnish_user(iam)
    integration = make_integration()
    plan = lifecycle.plan_offboard(core, integration.id, "bob", actor="UREQ")
    kinds = sorted(item.kind for item in plan.items)
    assert kinds == sorted(
        [
            "login_profile",
            "access_key",
            "access_key",
            "mfa_device",
            "signing_certificate",
            "ssh_key",
            "inline_policy",
            "attached_policy",
            "group",
            "group",
        ]
    )
    keys = [item for item in plan.items if item.kind == "access_key"]
    assert all(item.detail == "active, never used" for item in keys)
    assert {i.name for i in plan.items if i.kind == "group"} == {"developers", "readers"}
    assert OffboardPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert gone(iam, "bob") is False


def test_offboarding_cuts_access_first_then_removes_everything_and_confirms(
    core, make_integration, iam, aws_calls
):
    furnish_user(iam)
    integration = make_integration()
    with core.sessions.begin() as session:
        session.add(Account(integration_id=integration.id, user_name="bob", path="/"))
    checked: dict[str, list] = {}

    def before_delete(**_):
        checked.update(leftovers(iam, "bob"))
        checked["inline"] = iam.list_user_policies(UserName="bob")["PolicyNames"]

    # A second client (not recorded) looks at the user right before RoleUp deletes it.
    aws_calls.on_call = {"DeleteUser": before_delete}
    reported: list[tuple[str, str]] = []
    result = lifecycle.offboard(
        core,
        integration.id,
        "bob",
        actor="UAPPROVER",
        request_id="req-9",
        on_step=lambda step, status: reported.append((step, status)),
    )

    assert result.already_gone is False
    assert gone(iam, "bob")
    assert all(not items for items in checked.values()), checked
    writes = aws_calls.writes
    assert writes[:3] == ["PutUserPolicy", "DeleteLoginProfile", "UpdateAccessKey"]
    assert writes.index("UpdateAccessKey") < writes.index("DeleteAccessKey")
    assert writes[-1] == "DeleteUser"
    (deny,) = aws_calls.params("PutUserPolicy")
    assert deny["PolicyName"] == DENY_ALL_POLICY_NAME
    assert json.loads(deny["PolicyDocument"])["Statement"][0]["Effect"] == "Deny"
    assert aws_calls.params("DeleteVirtualMFADevice")
    assert [s for s, status in reported if status == "done"] == OFFBOARD_STEPS
    assert aws_calls.names[-1] == "GetUser"  # the confirmation
    with core.sessions() as session:
        assert session.scalars(select(Account)).all() == []
        steps = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "iam.offboard.step")
        ).all()
        assert [d["step"] for d in steps] == OFFBOARD_STEPS
        final = session.scalars(select(AuditEvent).where(AuditEvent.action == "iam.offboard")).one()
        assert (final.outcome, final.request_id, final.actor) == ("ok", "req-9", "UAPPROVER")


# The write (or read) each step makes first, to fail it there.
STEP_OPERATIONS = {
    "deny_all": ("PutUserPolicy", 0),
    "login_profile": ("DeleteLoginProfile", 0),
    "deactivate_keys": ("UpdateAccessKey", 0),
    "access_keys": ("DeleteAccessKey", 0),
    "signing_certificates": ("DeleteSigningCertificate", 0),
    "ssh_keys": ("DeleteSSHPublicKey", 0),
    "service_credentials": ("ListServiceSpecificCredentials", 0),
    "mfa_devices": ("DeactivateMFADevice", 0),
    "inline_policies": ("DeleteUserPolicy", 0),
    "attached_policies": ("DetachUserPolicy", 0),
    "groups": ("RemoveUserFromGroup", 0),
    "delete_user": ("DeleteUser", 0),
    "confirm_gone": ("GetUser", 1),  # the first GetUser is the lookup before any step
}


def test_every_step_has_a_fault_case():
    assert list(STEP_OPERATIONS) == OFFBOARD_STEPS


@pytest.mark.parametrize("step", OFFBOARD_STEPS)
def test_a_failure_at_any_step_is_reported_and_running_again_finishes(
    core, make_integration, iam, aws_calls, step
):
    furnish_user(iam)
    integration = make_integration()
    operation, after = STEP_OPERATIONS[step]
    aws_calls.fail(operation, "ServiceFailure", after=after)
    reported: list[tuple[str, str]] = []
    with pytest.raises(StepFailed) as caught:
        lifecycle.offboard(
            core, integration.id, "bob", actor="U1", on_step=lambda s, st: reported.append((s, st))
        )
    assert caught.value.step == step
    assert isinstance(caught.value.cause, AwsUnavailable)
    assert "Run it again" in str(caught.value)
    assert (step, "failed") in reported
    done = [s for s, status in reported if status == "done"]
    if step in CUT_STEPS:
        # Every cut is tried whatever another did; nothing else runs until all are done.
        assert done == [s for s in CUT_STEPS if s != step]
    elif step in CLEANUP_STEPS:
        # The other removals went on (a failure hides none of them), reported in checklist
        # order; the user is not deleted while something failed.
        assert done == [
            s for s in OFFBOARD_STEPS if s != step and s in (*CUT_STEPS, *CLEANUP_STEPS)
        ]
        assert not gone(iam, "bob")
        assert not [s for s, _ in reported if s in ("delete_user", "confirm_gone")]
    else:
        assert reported[-1] == (step, "failed")
        assert done == OFFBOARD_STEPS[: OFFBOARD_STEPS.index(step)]

    result = lifecycle.offboard(core, integration.id, "bob", actor="U1")
    assert gone(iam, "bob")
    assert result.already_gone is (step == "confirm_gone")
    with core.sessions() as session:
        outcomes = session.scalars(
            select(AuditEvent.outcome).where(AuditEvent.action == "iam.offboard")
        ).all()
    assert outcomes == ["failed", "ok"]


def test_a_user_already_gone_is_success(core, make_integration, mocked_aws, aws_calls):
    integration = make_integration()
    reported: list[tuple[str, str]] = []
    result = lifecycle.offboard(
        core, integration.id, "ghost", actor="U1", on_step=lambda s, st: reported.append((s, st))
    )
    assert result.already_gone is True
    assert reported == [(step, "done") for step in OFFBOARD_STEPS]
    assert aws_calls.writes == []


def test_a_user_deleted_by_someone_else_midway_counts_as_done(
    core, make_integration, iam, aws_calls
):
    furnish_user(iam)
    integration = make_integration()
    # Someone removes the user from outside as RoleUp reaches the SSH keys.
    aws_calls.fail("DeleteSSHPublicKey", "NoSuchEntity")
    aws_calls.fail("ListServiceSpecificCredentials", "NoSuchEntity")
    result = lifecycle.offboard(core, integration.id, "bob", actor="U1")
    assert result.already_gone is False
    assert [s for s, st in result.steps if st == "done"] == OFFBOARD_STEPS
    assert "DeleteUser" not in aws_calls.writes


def test_a_user_outside_the_prefix_is_not_found_and_never_touched(
    core, make_integration, iam, aws_calls
):
    furnish_user(iam, path="/contractors/")
    integration = make_integration(path_prefix="/staff/")
    for call in (
        lambda: lifecycle.plan_offboard(core, integration.id, "bob", actor="UREQ"),
        lambda: lifecycle.offboard(core, integration.id, "bob", actor="U1"),
        lambda: lifecycle.current_groups(core, integration.id, "bob", actor="UREQ"),
        lambda: lifecycle.set_groups(core, integration.id, "bob", [], actor="U1"),
        lambda: lifecycle.link_slack_user(core, integration.id, "bob", "U0BOB", actor="U1"),
    ):
        with pytest.raises(UserNotFound) as caught:
            call()
        assert str(caught.value) == "There is no IAM user bob in prod."
    assert aws_calls.writes == []
    assert not gone(iam, "bob")


def test_read_only_refuses_offboarding_before_any_aws_call(core, make_integration, iam, aws_calls):
    furnish_user(iam)
    integration = make_integration(read_only=True)
    for call in (
        lambda: lifecycle.plan_offboard(core, integration.id, "bob", actor="UREQ"),
        lambda: lifecycle.offboard(core, integration.id, "bob", actor="U1"),
        lambda: lifecycle.set_groups(core, integration.id, "bob", [], actor="U1"),
        lambda: lifecycle.link_slack_user(core, integration.id, "bob", "U0BOB", actor="U1"),
    ):
        with pytest.raises(ReadOnlyIntegration):
            call()
    assert aws_calls.names == []


def test_offboarding_end_to_end_against_a_moto_server(server_core, make_integration, moto_url):
    iam = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")
    furnish_user(iam)
    integration = make_integration()
    plan = lifecycle.plan_offboard(server_core, integration.id, "bob", actor="UREQ")
    assert len(plan.items) == 10
    lifecycle.offboard(server_core, integration.id, "bob", actor="U1")
    assert gone(iam, "bob")
    again = lifecycle.offboard(server_core, integration.id, "bob", actor="U1")
    assert again.already_gone is True
