"""Offboarding cuts access robustly: every cut is tried whatever another did, a refused inline
deny-all falls back to AWS's AWSDenyAll, and nothing is removed until every cut is done.
Changes are pinned to the user a request was made for; group changes apply a diff and leave
every other group alone."""

from __future__ import annotations

import functools
import json

import boto3
import pytest

from bot.services import iam as iam_service
from bot.services import offboard_steps
from bot.services.errors import (
    AccessCutFailed,
    AwsAccessDenied,
    GroupNotFound,
    InvalidGroupName,
    ReadOnlyIntegration,
    StepFailed,
    TargetReplaced,
)
from bot.services.iam import GroupChange
from bot.services.offboard_steps import (
    AWS_DENY_ALL_ARN,
    CUT_STEPS,
    DENY_ALL_POLICY_NAME,
    OFFBOARD_STEPS,
    STEP_LABELS,
)
from bot.services.request_kinds import is_own_principal
from tests.support.iam_users import POLICY_DOC, furnish_user, gone, leftovers

CLEANUP_STEPS = [step for step in OFFBOARD_STEPS if step not in CUT_STEPS]


@pytest.fixture
def aws_deny_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto knows AWS's managed policies (AWSDenyAll among them) only when asked to; it reads
    this when the test's first IAM call builds its backend. Of the ~1,300 it would load (most
    of these tests' CPU time, set-up and reset), AWSDenyAll is the one they need."""
    from moto.iam import models

    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    monkeypatch.setattr(models, "aws_managed_policies_data", _only_aws_deny_all())


@functools.cache
def _only_aws_deny_all() -> str:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.dumps({"AWSDenyAll": json.loads(aws_managed_policies_data)["AWSDenyAll"]})


@pytest.fixture
def client(iam, aws_calls):
    """A second client on the same moto account whose every call is recorded (and can fail);
    the `iam` fixture's client sets up and inspects unrecorded."""
    return aws_calls.attach(boto3.client("iam", region_name="us-east-1"))


class Steps:
    def __init__(self) -> None:
        self.reported: list[tuple[str, str]] = []

    def __call__(self, step: str, status: str) -> None:
        self.reported.append((step, status))

    def with_status(self, status: str) -> list[str]:
        return [step for step, st in self.reported if st == status]

    @property
    def touched(self) -> set[str]:
        return {step for step, _ in self.reported}


def attached_arns(iam, name: str = "bob") -> list[str]:
    attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
    return [p["PolicyArn"] for p in attached]


def has_password(iam, name: str = "bob") -> bool:
    try:
        iam.get_login_profile(UserName=name)
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def key_statuses(iam, name: str = "bob") -> list[str]:
    return [k["Status"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]


def cut_state(iam, name: str = "bob") -> dict[str, object]:
    return {
        "inline_deny": DENY_ALL_POLICY_NAME in iam.list_user_policies(UserName=name)["PolicyNames"],
        "aws_deny_all": AWS_DENY_ALL_ARN in attached_arns(iam, name),
        "password": has_password(iam, name),
        "keys": key_statuses(iam, name),
    }


# --- the deny-all fallback ----------------------------------------------------------------------
def test_moto_knows_aws_deny_all_when_asked(aws_deny_all, iam):
    policy = iam.get_policy(PolicyArn=AWS_DENY_ALL_ARN)["Policy"]
    assert policy["PolicyName"] == "AWSDenyAll"


@pytest.mark.parametrize("code", ["AccessDenied", "LimitExceeded", "ServiceFailure"])
def test_a_refused_inline_deny_all_falls_back_to_aws_deny_all_and_offboarding_finishes(
    aws_deny_all, client, iam, aws_calls, make_integration, code
):
    furnish_user(iam)
    integration = make_integration()
    seen: dict = {}
    aws_calls.fail("PutUserPolicy", code)
    aws_calls.on_call = {
        # The first cleanup write: every cut must be in place by then.
        "DeleteAccessKey": lambda: seen.setdefault("cleanup", cut_state(iam)),
        "DeleteUser": lambda: seen.setdefault("delete", leftovers(iam, "bob")),
    }
    steps = Steps()

    assert offboard_steps.offboard_user(client, integration, "bob", steps) is True

    assert gone(iam, "bob")
    assert steps.with_status("failed") == []
    assert steps.with_status("done") == OFFBOARD_STEPS
    assert aws_calls.params("AttachUserPolicy") == [
        {"UserName": "bob", "PolicyArn": AWS_DENY_ALL_ARN}
    ]
    assert seen["cleanup"] == {
        "inline_deny": False,
        "aws_deny_all": True,
        "password": False,
        "keys": ["Inactive", "Inactive"],
    }
    assert all(not items for items in seen["delete"].values()), seen["delete"]
    # AWSDenyAll survives "Detach managed policies" (which runs beside the other removals) and
    # is detached last, right before the user is deleted.
    assert aws_calls.writes[-2:] == ["DetachUserPolicy", "DeleteUser"]
    assert [p["PolicyArn"] for p in aws_calls.params("DetachUserPolicy")].count(
        AWS_DENY_ALL_ARN
    ) == 1
    assert aws_calls.params("DetachUserPolicy")[-1]["PolicyArn"] == AWS_DENY_ALL_ARN


def test_the_plan_never_lists_roleups_own_deny_all(
    aws_deny_all, client, iam, aws_calls, make_integration
):
    furnish_user(iam)
    integration = make_integration()
    aws_calls.fail("PutUserPolicy", "LimitExceeded")  # the fallback: AWSDenyAll attached
    aws_calls.fail("DeleteAccessKey", "ServiceFailure")  # the run stops in the cleanup
    with pytest.raises(StepFailed) as caught:
        offboard_steps.offboard_user(client, integration, "bob", Steps())
    assert caught.value.step == "access_keys"
    assert not isinstance(caught.value, AccessCutFailed)
    # The other removals went on beside the failed one; put some back for the plan to list.
    assert attached_arns(iam) == [AWS_DENY_ALL_ARN]
    bob_s3 = next(p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"])
    iam.attach_user_policy(UserName="bob", PolicyArn=bob_s3)
    iam.put_user_policy(UserName="bob", PolicyName="extra", PolicyDocument=POLICY_DOC)
    # An earlier run's inline deny-all may be there too.
    iam.put_user_policy(
        UserName="bob",
        PolicyName=DENY_ALL_POLICY_NAME,
        PolicyDocument=offboard_steps.DENY_ALL_DOCUMENT,
    )
    assert AWS_DENY_ALL_ARN in attached_arns(iam)

    plan = offboard_steps.plan_offboard(client, integration, "bob")

    names = {(item.kind, item.name) for item in plan}
    assert ("attached_policy", "bob-s3") in names
    assert ("inline_policy", "extra") in names
    # The other key went beside the one whose deletion failed.
    assert [i.kind for i in plan].count("access_key") == 1
    assert not [i for i in plan if i.kind == "attached_policy" and i.name == "AWSDenyAll"]
    assert not [i for i in plan if i.kind == "inline_policy" and i.name == DENY_ALL_POLICY_NAME]

    assert offboard_steps.offboard_user(client, integration, "bob", Steps()) is True
    assert gone(iam, "bob")


def test_both_deny_all_routes_refused_still_cuts_password_and_keys_and_removes_nothing(
    aws_deny_all, client, iam, aws_calls, make_integration
):
    furnish_user(iam)
    integration = make_integration()
    aws_calls.fail("PutUserPolicy", "LimitExceeded")
    aws_calls.fail("AttachUserPolicy", "AccessDenied")
    steps = Steps()

    with pytest.raises(StepFailed) as caught:
        offboard_steps.offboard_user(client, integration, "bob", steps)

    err = caught.value
    assert isinstance(err, AccessCutFailed)
    assert err.step == "deny_all"
    assert err.failed_steps == ("deny_all",)
    message = str(err)
    assert STEP_LABELS["deny_all"] in message
    assert AWS_DENY_ALL_ARN in message
    assert "Run it again" in message
    assert steps.with_status("failed") == ["deny_all"]
    assert steps.with_status("done") == ["login_profile", "deactivate_keys"]
    assert steps.touched == set(CUT_STEPS)  # no cleanup step even started
    assert cut_state(iam) == {
        "inline_deny": False,
        "aws_deny_all": False,
        "password": False,
        "keys": ["Inactive", "Inactive"],
    }
    assert not gone(iam, "bob")
    left = leftovers(iam, "bob")
    assert (len(left["keys"]), len(left["groups"]), len(left["certs"])) == (2, 2, 1)
    assert set(aws_calls.writes) == {
        "PutUserPolicy",
        "AttachUserPolicy",
        "DeleteLoginProfile",
        "UpdateAccessKey",
    }

    # Retry, the faults lifted: the cuts are redone and the run finishes.
    again = Steps()
    assert offboard_steps.offboard_user(client, integration, "bob", again) is True
    assert gone(iam, "bob")
    assert again.with_status("done") == OFFBOARD_STEPS
    assert again.with_status("failed") == []


def test_aws_deny_all_attached_by_an_earlier_run_counts_when_both_routes_are_refused(
    aws_deny_all, client, iam, aws_calls, make_integration
):
    furnish_user(iam)
    iam.attach_user_policy(UserName="bob", PolicyArn=AWS_DENY_ALL_ARN)  # the earlier run's
    integration = make_integration()
    aws_calls.fail("PutUserPolicy", "AccessDenied")
    aws_calls.fail("AttachUserPolicy", "AccessDenied")
    steps = Steps()
    assert offboard_steps.offboard_user(client, integration, "bob", steps) is True
    assert steps.with_status("failed") == []
    assert gone(iam, "bob")


def test_without_aws_deny_all_in_the_account_the_deny_all_fails_but_the_user_is_not_gone(
    client, iam, aws_calls, make_integration
):
    """AttachUserPolicy's NoSuchEntity may mean the policy, not the user: it is checked."""
    furnish_user(iam)
    integration = make_integration()
    aws_calls.fail("PutUserPolicy", "AccessDenied")
    steps = Steps()
    with pytest.raises(AccessCutFailed) as caught:
        offboard_steps.offboard_user(client, integration, "bob", steps)
    assert caught.value.step == "deny_all"
    assert isinstance(caught.value.cause, AwsAccessDenied)
    assert "no such managed policy" in str(caught.value)
    assert steps.with_status("done") == ["login_profile", "deactivate_keys"]
    assert not gone(iam, "bob")


def test_a_refused_password_deletion_still_denies_and_deactivates_keys(
    client, iam, aws_calls, make_integration
):
    furnish_user(iam)
    integration = make_integration()
    aws_calls.fail("DeleteLoginProfile", "AccessDenied")
    steps = Steps()

    with pytest.raises(StepFailed) as caught:
        offboard_steps.offboard_user(client, integration, "bob", steps)

    err = caught.value
    assert isinstance(err, AccessCutFailed)
    assert (err.step, err.failed_steps) == ("login_profile", ("login_profile",))
    assert isinstance(err.cause, AwsAccessDenied)
    assert STEP_LABELS["login_profile"] in str(err)
    assert steps.with_status("done") == ["deny_all", "deactivate_keys"]
    assert steps.touched == set(CUT_STEPS)
    assert cut_state(iam) == {
        "inline_deny": True,
        "aws_deny_all": False,
        "password": True,
        "keys": ["Inactive", "Inactive"],
    }
    assert not gone(iam, "bob")
    assert "DeleteAccessKey" not in aws_calls.writes

    assert offboard_steps.offboard_user(client, integration, "bob", Steps()) is True
    assert gone(iam, "bob")


def test_several_failed_cuts_are_all_named_and_the_first_is_the_step(
    client, iam, aws_calls, make_integration
):
    furnish_user(iam)
    integration = make_integration()
    aws_calls.fail("DeleteLoginProfile", "AccessDenied")
    aws_calls.fail("UpdateAccessKey", "AccessDenied")
    with pytest.raises(AccessCutFailed) as caught:
        offboard_steps.offboard_user(client, integration, "bob", Steps())
    err = caught.value
    assert (err.step, err.failed_steps) == ("login_profile", ("login_profile", "deactivate_keys"))
    assert STEP_LABELS["login_profile"] in str(err)
    assert STEP_LABELS["deactivate_keys"] in str(err)
    assert cut_state(iam)["inline_deny"] is True


def test_a_user_deleted_outside_roleup_during_the_cuts_counts_as_done(
    client, iam, aws_calls, make_integration
):
    furnish_user(iam)
    integration = make_integration()
    aws_calls.fail("DeleteLoginProfile", "AccessDenied")  # a cut fails...
    aws_calls.fail("ListAccessKeys", "NoSuchEntity")  # ...then the user is gone
    steps = Steps()
    assert offboard_steps.offboard_user(client, integration, "bob", steps) is True
    assert set(steps.with_status("done")) == set(OFFBOARD_STEPS)
    assert "DeleteUser" not in aws_calls.writes


# --- pinned to the user the request was made for ---------------------------------------------
@pytest.fixture
def replaced_bob(iam) -> str:
    """bob's id when the request was made; bob has since been deleted and re-created."""
    old_id = iam.create_user(UserName="bob")["User"]["UserId"]
    iam.delete_user(UserName="bob")
    iam.create_user(UserName="bob")
    iam.create_access_key(UserName="bob")
    iam.create_group(GroupName="developers")
    iam.add_user_to_group(UserName="bob", GroupName="developers")
    assert iam.get_user(UserName="bob")["User"]["UserId"] != old_id
    return old_id


REPLACED = (
    "The IAM user bob was deleted and re-created since this request was made "
    "(it is another user now): nothing was changed. Make a new request."
)


def test_offboarding_a_re_created_user_is_refused_before_any_write(
    client, iam, aws_calls, make_integration, replaced_bob
):
    integration = make_integration()
    steps = Steps()
    with pytest.raises(TargetReplaced) as caught:
        offboard_steps.offboard_user(
            client, integration, "bob", steps, expected_user_id=replaced_bob
        )
    assert str(caught.value) == REPLACED
    # Read with the user, its keys (the deactivation's read); nothing written.
    assert sorted(aws_calls.names) == ["GetUser", "ListAccessKeys"]
    assert aws_calls.writes == []
    assert steps.reported == []
    assert key_statuses(iam) == ["Active"]


def test_group_changes_to_a_re_created_user_are_refused_before_any_write(
    client, iam, aws_calls, make_integration, replaced_bob
):
    integration = make_integration()
    iam.create_group(GroupName="admins")
    with pytest.raises(TargetReplaced):
        iam_service.apply_group_change(
            client, integration, "bob", ["admins"], ["developers"], expected_user_id=replaced_bob
        )
    with pytest.raises(TargetReplaced):
        iam_service.set_groups(
            client, integration, "bob", ["admins"], expected_user_id=replaced_bob
        )
    assert aws_calls.writes == []
    groups = iam.list_groups_for_user(UserName="bob")["Groups"]
    assert [g["GroupName"] for g in groups] == ["developers"]


def test_the_same_user_is_offboarded_when_pinned(client, iam, aws_calls, make_integration):
    furnish_user(iam)
    user_id = iam_service.user_id_of(iam.get_user(UserName="bob")["User"])
    integration = make_integration()
    assert offboard_steps.offboard_user(
        client, integration, "bob", Steps(), expected_user_id=user_id
    )
    assert gone(iam, "bob")


def test_a_pinned_user_already_gone_counts_as_done(client, iam, aws_calls, make_integration):
    integration = make_integration()
    steps = Steps()
    assert (
        offboard_steps.offboard_user(
            client, integration, "bob", steps, expected_user_id="AIDAEXAMPLEEXAMPLE01"
        )
        is False
    )
    assert steps.reported == [(step, "done") for step in OFFBOARD_STEPS]
    assert aws_calls.writes == []


# --- group changes as a diff --------------------------------------------------------------------
@pytest.fixture
def bob_in_groups(iam) -> str:
    for group in ("developers", "readers", "admins", "ops"):
        iam.create_group(GroupName=group)
    user_id = iam.create_user(UserName="bob")["User"]["UserId"]
    iam.add_user_to_group(UserName="bob", GroupName="developers")
    iam.add_user_to_group(UserName="bob", GroupName="readers")
    return user_id


def groups_in_aws(iam, user: str = "bob") -> list[str]:
    return sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"])


def test_a_group_change_leaves_groups_changed_meanwhile_outside_roleup_alone(
    client, iam, aws_calls, make_integration, bob_in_groups
):
    integration = make_integration()
    # Requested against {developers, readers}: add admins, remove readers. Meanwhile, outside
    # RoleUp, bob joined ops and left developers.
    iam.add_user_to_group(UserName="bob", GroupName="ops")
    iam.remove_user_from_group(UserName="bob", GroupName="developers")

    change = iam_service.apply_group_change(
        client, integration, "bob", ["admins"], ["readers"], expected_user_id=bob_in_groups
    )

    assert change == GroupChange(added=["admins"], removed=["readers"])
    assert groups_in_aws(iam) == ["admins", "ops"]
    assert aws_calls.writes == ["AddUserToGroup", "RemoveUserFromGroup"]


def test_a_group_change_already_made_meanwhile_writes_nothing(
    client, iam, aws_calls, make_integration, bob_in_groups
):
    integration = make_integration()
    iam.add_user_to_group(UserName="bob", GroupName="admins")
    iam.remove_user_from_group(UserName="bob", GroupName="readers")
    change = iam_service.apply_group_change(client, integration, "bob", ["admins"], ["readers"])
    assert change == GroupChange(added=[], removed=[])
    assert aws_calls.writes == []
    assert groups_in_aws(iam) == ["admins", "developers"]


def test_a_failed_group_change_is_undone_and_other_groups_untouched(
    client, iam, aws_calls, make_integration, bob_in_groups
):
    integration = make_integration()
    iam.add_user_to_group(UserName="bob", GroupName="ops")  # outside RoleUp
    with pytest.raises(GroupNotFound) as caught:
        iam_service.apply_group_change(client, integration, "bob", ["admins", "nope"], ["readers"])
    assert "nope" in str(caught.value)
    assert "Nothing was changed" in str(caught.value)
    assert groups_in_aws(iam) == ["developers", "ops", "readers"]
    assert "RemoveUserFromGroup" in aws_calls.writes  # admins, undone


def test_a_group_change_is_checked_before_any_aws_call(
    client, iam, aws_calls, make_integration, bob_in_groups
):
    with pytest.raises(InvalidGroupName):
        iam_service.apply_group_change(client, make_integration(), "bob", ["admins"], ["admins"])
    with pytest.raises(InvalidGroupName):
        iam_service.apply_group_change(client, make_integration("b"), "bob", ["a b"], [])
    with pytest.raises(ReadOnlyIntegration):
        iam_service.apply_group_change(
            client, make_integration("ro", read_only=True), "bob", ["admins"], []
        )
    assert aws_calls.names == []


# --- principals -------------------------------------------------------------------------------
BOB_ARN = "arn:aws:iam::123456789012:user/staff/bob"


@pytest.mark.parametrize(
    ("principal", "user_name", "own"),
    [
        (BOB_ARN, "bob", True),
        (BOB_ARN, "Bob", True),  # IAM names are unique whatever their case
        ("arn:aws:iam::123456789012:user/bob", "bob", True),
        (BOB_ARN, "bobby", False),
        (BOB_ARN, "staff", False),
        ("arn:aws:iam::123456789012:role/bob", "bob", False),  # a role is no IAM user
        ("arn:aws:sts::123456789012:assumed-role/bob/bob", "bob", False),
        ("arn:aws:iam::123456789012:root", "root", False),
        (None, "bob", False),
        ("", "bob", False),
    ],
)
def test_roleups_own_principal_is_told_by_its_user_name(principal, user_name, own):
    assert is_own_principal(principal, user_name) is own


def test_user_id_of():
    assert iam_service.user_id_of({"UserName": "bob", "UserId": "AIDAEXAMPLE"}) == "AIDAEXAMPLE"
