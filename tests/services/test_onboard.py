"""Onboarding: checks before any write, the user as created, rollback of every step."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.services import lifecycle
from bot.services.errors import (
    AwsError,
    AwsUnavailable,
    GroupNotFound,
    IntegrationNotFound,
    InvalidGroupName,
    InvalidPolicyArn,
    InvalidUsername,
    PasswordPolicyViolation,
    PolicyNotFound,
    ReadOnlyIntegration,
    RoleUpError,
    UserExists,
)
from bot.services.iam import PasswordRules
from bot.services.lifecycle import OnboardSpec
from storage.models import Account, AuditEvent, Group, Membership

PASSWORD = "Tr0ub4dor&3-horse"
POLICY_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}],
    }
)


@pytest.fixture
def account_setup(iam):
    """Two groups and a customer managed policy in the mocked account."""
    iam.create_group(GroupName="developers")
    iam.create_group(GroupName="readers")
    arn = iam.create_policy(PolicyName="s3-read", PolicyDocument=POLICY_DOC)["Policy"]["Arn"]
    return {"policy_arn": arn}


def spec(**overrides) -> OnboardSpec:
    values = {
        "username": "alice",
        "password": PASSWORD,
        "groups": [],
        "policies": [],
        "slack_user_id": "U0ALICE",
        "created_by": "UMANAGER",
    }
    values.update(overrides)
    return OnboardSpec(**values)


def audit_events(core, action):
    with core.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_onboard_creates_the_user_with_prefix_tags_password_groups_and_policies(
    core, make_integration, iam, account_setup, aws_calls
):
    integration = make_integration(path_prefix="/eng/")
    arn = account_setup["policy_arn"]

    result = lifecycle.onboard(
        core,
        integration.id,
        spec(groups=["developers", "readers"], policies=[arn]),
        actor="UMANAGER",
        request_id="req-1",
    )

    user = iam.get_user(UserName="alice")["User"]
    assert user["Path"] == "/eng/"
    assert result.arn == user["Arn"]
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="alice")["Tags"]}
    assert tags == {
        "roleup:slack-user": "U0ALICE",
        "roleup:created-by": "UMANAGER",
        "roleup:request-id": "req-1",
    }
    iam.get_login_profile(UserName="alice")
    # moto does not echo PasswordResetRequired back: assert on the call RoleUp made.
    (profile,) = aws_calls.params("CreateLoginProfile")
    assert profile["PasswordResetRequired"] is True
    groups = {g["GroupName"] for g in iam.list_groups_for_user(UserName="alice")["Groups"]}
    assert groups == {"developers", "readers"}
    attached = iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arn]

    with core.sessions() as session:
        account = session.scalar(select(Account).where(Account.user_name == "alice"))
        assert account is not None
        assert account.slack_user_id == "U0ALICE"
        assert account.path == "/eng/"
        names = session.scalars(
            select(Group.name).join(Membership).where(Membership.account_id == account.id)
        )
        assert sorted(names) == ["developers", "readers"]
    (event,) = audit_events(core, "iam.onboard")
    assert (event.actor, event.target, event.outcome) == ("UMANAGER", "alice", "ok")
    assert event.request_id == "req-1"
    assert PASSWORD not in json.dumps(event.detail)


def test_the_password_is_not_in_the_spec_repr():
    assert PASSWORD not in repr(spec())


BAD_USERNAMES = [
    "",
    "a" * 65,
    "has space",
    "tab\tname",
    "semi;colon",
    "slash/name",
    "ünïcode",
    "x'",
]
BAD_GROUPS = ["", "g" * 129, "with space", "a/b", "star*"]
BAD_ARNS = [
    "",
    "ReadOnlyAccess",
    "arn:aws:iam::aws:role/ReadOnlyAccess",
    "arn:aws:iam::12345:policy/short-account",
    "arn:aws:s3:::bucket",
    "arn:aws:iam::aws:policy/bad name",
]


@pytest.mark.parametrize("username", BAD_USERNAMES)
def test_bad_usernames_are_refused_before_any_aws_call(
    core, make_integration, mocked_aws, aws_calls, username
):
    integration = make_integration()
    with pytest.raises(InvalidUsername) as caught:
        lifecycle.check_onboard(core, integration.id, spec(username=username), actor="UREQ")
    assert caught.value.field == "username"
    assert "valid IAM username" in str(caught.value)
    assert aws_calls.names == []


@pytest.mark.parametrize("group", BAD_GROUPS)
def test_bad_group_names_are_refused_before_any_aws_call(
    core, make_integration, mocked_aws, aws_calls, group
):
    integration = make_integration()
    with pytest.raises(InvalidGroupName) as caught:
        lifecycle.onboard(core, integration.id, spec(groups=[group]), actor="U1")
    assert caught.value.field == "groups"
    assert aws_calls.names == []


@pytest.mark.parametrize("arn", BAD_ARNS)
def test_bad_policy_arns_are_refused_before_any_aws_call(
    core, make_integration, mocked_aws, aws_calls, arn
):
    integration = make_integration()
    with pytest.raises(InvalidPolicyArn) as caught:
        lifecycle.onboard(core, integration.id, spec(policies=[arn]), actor="U1")
    assert caught.value.field == "policies"
    assert aws_calls.names == []


@pytest.mark.parametrize(
    "password, words",
    [
        ("alllowercase", "at least 3 of"),
        ("ALLUPPER123", None),
        ("Sh0rt!", "at least 8 characters"),
        ("Pässwörd123!", "ASCII"),
        ("A" * 100 + "a1!" + "b" * 30, "at most 128"),
        ("", "required"),
    ],
)
def test_passwords_breaking_the_default_policy_are_refused_without_writes(
    core, make_integration, iam, aws_calls, password, words
):
    integration = make_integration()
    with pytest.raises(PasswordPolicyViolation) as caught:
        lifecycle.onboard(core, integration.id, spec(password=password), actor="U1")
    assert caught.value.field == "password"
    if words:
        assert words in str(caught.value)
    if password:
        assert password not in str(caught.value)
    assert aws_calls.writes == []
    assert iam.list_users()["Users"] == []


def test_the_accounts_own_password_policy_is_enforced(core, make_integration, iam, aws_calls):
    iam.update_account_password_policy(
        MinimumPasswordLength=16, RequireSymbols=True, RequireNumbers=True
    )
    integration = make_integration()
    with pytest.raises(PasswordPolicyViolation) as caught:
        lifecycle.onboard(core, integration.id, spec(password="Abcdefgh12345"), actor="U1")
    assert "at least 16 characters" in str(caught.value)
    assert "a symbol" in str(caught.value)
    assert aws_calls.writes == []
    lifecycle.onboard(core, integration.id, spec(password="Abcdefgh12345!xyz"), actor="U1")
    assert iam.get_user(UserName="alice")


def test_generated_passwords_meet_the_default_and_the_accounts_policy(core, make_integration, iam):
    integration = make_integration()
    first = lifecycle.generate_password(core, integration.id, actor="UREQ")
    PasswordRules().check(first)
    iam.update_account_password_policy(
        MinimumPasswordLength=40,
        RequireSymbols=True,
        RequireNumbers=True,
        RequireUppercaseCharacters=True,
        RequireLowercaseCharacters=True,
    )
    second = lifecycle.generate_password(core, integration.id, actor="UREQ")
    assert len(second) == 40
    assert second != first
    lifecycle.onboard(core, integration.id, spec(password=second), actor="U1")


def test_a_taken_username_is_refused(core, make_integration, iam, aws_calls):
    iam.create_user(UserName="alice")
    integration = make_integration()
    with pytest.raises(UserExists) as caught:
        lifecycle.check_onboard(core, integration.id, spec(), actor="UREQ")
    assert caught.value.field == "username"
    assert aws_calls.writes == []


def test_a_username_taken_in_another_case_is_refused(core, make_integration, iam, aws_calls):
    integration = make_integration()
    lifecycle.onboard(core, integration.id, spec(username="Alice"), actor="U1")
    with pytest.raises(UserExists):
        lifecycle.onboard(core, integration.id, spec(username="alice"), actor="U1")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["Alice"]


def test_unknown_groups_and_policies_are_field_errors(core, make_integration, iam, aws_calls):
    integration = make_integration()
    with pytest.raises(GroupNotFound) as group_error:
        lifecycle.check_onboard(core, integration.id, spec(groups=["nope"]), actor="UREQ")
    assert group_error.value.field == "groups"
    missing = "arn:aws:iam::123456789012:policy/missing"
    with pytest.raises(PolicyNotFound) as policy_error:
        lifecycle.check_onboard(core, integration.id, spec(policies=[missing]), actor="UREQ")
    assert policy_error.value.field == "policies"
    assert aws_calls.writes == []


def test_read_only_integration_refuses_onboarding_before_any_aws_call(
    core, make_integration, mocked_aws, aws_calls
):
    integration = make_integration(read_only=True)
    for call in (
        lambda: lifecycle.check_onboard(core, integration.id, spec(), actor="UREQ"),
        lambda: lifecycle.onboard(core, integration.id, spec(), actor="U1"),
    ):
        with pytest.raises(ReadOnlyIntegration) as caught:
            call()
        assert "read-only" in str(caught.value)
    assert aws_calls.names == []


def test_unknown_integration(core, mocked_aws):
    with pytest.raises(IntegrationNotFound):
        lifecycle.onboard(core, 999, spec(), actor="U1")


ONBOARD_STEPS = ["CreateUser", "CreateLoginProfile", "AddUserToGroup", "AttachUserPolicy"]


@pytest.mark.parametrize("failing", ONBOARD_STEPS)
def test_a_failure_at_any_onboarding_step_leaves_nothing_behind(
    core, make_integration, iam, account_setup, aws_calls, failing
):
    integration = make_integration()
    aws_calls.fail(failing, "ServiceFailure")
    with pytest.raises(AwsUnavailable) as caught:
        lifecycle.onboard(
            core,
            integration.id,
            spec(groups=["developers", "readers"], policies=[account_setup["policy_arn"]]),
            actor="U1",
        )
    message = str(caught.value)
    assert PASSWORD not in message
    if failing != "CreateUser":
        assert "undone" in message
        assert "DeleteUser" in aws_calls.names
    assert iam.list_users()["Users"] == []
    assert iam.get_group(GroupName="developers")["Users"] == []
    with core.sessions() as session:
        assert session.scalars(select(Account)).all() == []
    (event,) = audit_events(core, "iam.onboard")
    assert event.outcome == "failed"


def test_a_failed_undo_says_what_is_left(core, make_integration, iam, account_setup, aws_calls):
    integration = make_integration()
    aws_calls.fail("AttachUserPolicy", "ServiceFailure")
    aws_calls.fail("DeleteUser", "AccessDenied")
    with pytest.raises(AwsError) as caught:
        lifecycle.onboard(
            core, integration.id, spec(policies=[account_setup["policy_arn"]]), actor="U1"
        )
    assert "offboard alice" in str(caught.value)
    assert "delete the user" in str(caught.value)


def test_a_password_refused_by_aws_is_a_field_error_without_the_password(
    core, make_integration, iam, aws_calls
):
    integration = make_integration()
    aws_calls.fail("CreateLoginProfile", "PasswordPolicyViolation")
    with pytest.raises(PasswordPolicyViolation) as caught:
        lifecycle.onboard(core, integration.id, spec(), actor="U1")
    assert caught.value.field == "password"
    assert PASSWORD not in str(caught.value)
    assert iam.list_users()["Users"] == []


def test_every_error_is_a_roleup_error_with_a_short_message(core, make_integration, iam, aws_calls):
    integration = make_integration()
    aws_calls.fail("GetUser", "AccessDenied")
    with pytest.raises(RoleUpError) as caught:
        lifecycle.onboard(core, integration.id, spec(), actor="U1")
    assert "iam:GetUser" in str(caught.value)
    assert len(str(caught.value)) < 300


def test_onboarding_end_to_end_against_a_moto_server(server_core, make_integration, moto_url):
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")
    iam.create_group(GroupName="developers")
    integration = make_integration(path_prefix="/team/")
    lifecycle.check_onboard(server_core, integration.id, spec(groups=["developers"]), actor="UREQ")
    lifecycle.onboard(server_core, integration.id, spec(groups=["developers"]), actor="U1")
    user = iam.get_user(UserName="alice")["User"]
    assert user["Path"] == "/team/"
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="alice")["Groups"]] == [
        "developers"
    ]
    with pytest.raises(UserExists):
        lifecycle.check_onboard(server_core, integration.id, spec(), actor="UREQ")


def test_a_stale_row_of_the_same_name_does_not_block_onboarding(core, make_integration, iam):
    integration = make_integration()
    with core.sessions.begin() as session:
        session.add(Account(integration_id=integration.id, user_name="alice", path="/"))
    lifecycle.onboard(core, integration.id, spec(), actor="U1")
    assert iam.get_user(UserName="alice")["User"]["UserName"] == "alice"
    with core.sessions() as session:
        assert session.scalars(select(Account.user_name)).all() == ["alice"]


def test_a_key_that_may_not_read_the_password_policy_is_checked_against_the_default(
    core, make_integration, iam, aws_calls
):
    integration = make_integration()
    aws_calls.fail("GetAccountPasswordPolicy", "AccessDenied", times=2)
    with pytest.raises(PasswordPolicyViolation):
        lifecycle.check_onboard(core, integration.id, spec(password="alllowercase"), actor="UREQ")
    lifecycle.onboard(core, integration.id, spec(), actor="U1")
    assert iam.get_user(UserName="alice")
