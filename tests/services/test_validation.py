"""Credential validation: STS + an IAM read + the policy simulator, and its wiring into adding."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.services import integrations
from bot.services.errors import AwsAccessDenied, InvalidCredentials
from bot.services.integration_check import _principal_arn, check_credentials, check_with_aws
from bot.services.integrations import IntegrationSpec, Validated
from storage.models import Account, Integration


def allow(actions: str | list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
    )


@pytest.fixture
def key_of(iam):
    """Make an IAM user with a policy and return its access key pair."""

    def make(name: str, actions: str | list[str] = "*") -> tuple[str, str]:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=allow(actions))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    return make


@pytest.fixture
def moto_auth(monkeypatch):
    """From now on moto checks signatures and IAM policies, as AWS does."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    def enable() -> None:
        monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)

    return enable


def test_a_working_key_gives_its_account_and_principal(core, key_of, moto_auth):
    key_id, secret = key_of("roleup")
    moto_auth()
    result = check_credentials(core, access_key_id=key_id, secret_access_key=secret)
    assert result.account_id == "123456789012"
    assert result.arn == "arn:aws:iam::123456789012:user/roleup"
    assert (result.missing, result.checked) == ([], True)


def test_a_wrong_secret_is_invalid_credentials_without_the_secret(core, key_of, moto_auth):
    key_id, secret = key_of("roleup")
    moto_auth()
    wrong = secret[::-1]
    with pytest.raises(InvalidCredentials) as caught:
        check_credentials(core, access_key_id=key_id, secret_access_key=wrong)
    assert "rejected the integration's credentials" in str(caught.value)
    assert wrong not in str(caught.value) and secret not in str(caught.value)


def test_an_unknown_key_id_is_invalid_credentials(core, key_of, moto_auth):
    key_of("roleup")
    moto_auth()
    with pytest.raises(InvalidCredentials, match="InvalidClientTokenId"):
        check_credentials(core, access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key="x" * 40)


def test_a_key_that_cannot_read_iam_is_refused_naming_the_permission(core, key_of, moto_auth):
    key_id, secret = key_of("stsonly", ["sts:GetCallerIdentity"])
    moto_auth()
    with pytest.raises(AwsAccessDenied, match="iam:ListUsers"):
        check_credentials(core, access_key_id=key_id, secret_access_key=secret)


def test_missing_write_permissions_are_reported_for_read_write_only(
    core, key_of, moto_gaps, aws_calls
):
    key_id, secret = key_of("roleup")
    moto_gaps.denied = {"iam:DeleteUser", "iam:CreateLoginProfile"}
    result = check_credentials(core, access_key_id=key_id, secret_access_key=secret)
    assert result.missing == ["iam:CreateLoginProfile", "iam:DeleteUser"]
    asked = aws_calls.params("SimulatePrincipalPolicy")
    assert {a["PolicySourceArn"] for a in asked} == {"arn:aws:iam::123456789012:user/roleup"}
    spec = IntegrationSpec(name="prod", access_key_id=key_id, secret_access_key=secret)
    with pytest.raises(AwsAccessDenied) as caught:
        check_with_aws(core, spec)
    assert "iam:DeleteUser" in str(caught.value)
    assert "read-only" in str(caught.value)
    spec.read_only = True
    assert check_with_aws(core, spec) == Validated(
        "123456789012", "arn:aws:iam::123456789012:user/roleup"
    )


def test_when_the_simulator_is_denied_the_check_is_skipped_not_failed(core, key_of, aws_calls):
    key_id, secret = key_of("roleup")
    aws_calls.fail("SimulatePrincipalPolicy", "AccessDenied")
    result = check_credentials(core, access_key_id=key_id, secret_access_key=secret)
    assert (result.missing, result.checked) == ([], False)


def test_a_role_is_assumed_and_simulated_as_the_role(core, iam, aws_calls):
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    role = iam.create_role(RoleName="RoleUp", Path="/ops/", AssumeRolePolicyDocument=trust)
    arn = role["Role"]["Arn"]
    result = check_credentials(core, role_arn=arn, external_id="ext-123", read_only=True)
    assert ":assumed-role/RoleUp/" in result.arn
    (assumed,) = aws_calls.params("AssumeRole")
    assert (assumed["RoleArn"], assumed["ExternalId"]) == (arn, "ext-123")
    asked = aws_calls.params("SimulatePrincipalPolicy")
    assert {a["PolicySourceArn"] for a in asked} == {arn}
    assert all(not a.startswith("iam:Delete") for one in asked for a in one["ActionNames"])


@pytest.mark.parametrize(
    "caller, role, expected",
    [
        (
            "arn:aws:iam::111122223333:user/ops/roleup",
            None,
            "arn:aws:iam::111122223333:user/ops/roleup",
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/RoleUp/roleup",
            None,
            "arn:aws:iam::111122223333:role/RoleUp",
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/RoleUp/roleup",
            "arn:aws:iam::111122223333:role/x/RoleUp",
            "arn:aws:iam::111122223333:role/x/RoleUp",
        ),
        ("arn:aws:iam::111122223333:root", None, None),
        ("arn:aws:sts::111122223333:federated-user/bob", None, None),
    ],
)
def test_the_simulated_principal(caller, role, expected):
    assert _principal_arn(caller, role) == expected


def test_adding_an_integration_validates_then_runs_the_first_sync(core, iam, key_of):
    key_id, secret = key_of("roleup")
    iam.create_user(UserName="alice", Path="/staff/")
    spec = IntegrationSpec(
        name="prod", access_key_id=key_id, secret_access_key=secret, path_prefix="/staff/"
    )
    added = integrations.add_integration(core, spec, actor="UADMIN")
    with core.sessions() as session:
        row = session.get(Integration, added.id)
        assert row.aws_account_id == "123456789012"
        assert row.last_sync_status == "ok"
        assert session.scalars(select(Account.user_name)).all() == ["alice"]


def test_adding_with_a_wrong_key_saves_nothing(core, key_of, moto_auth):
    key_id, _ = key_of("roleup")
    moto_auth()
    spec = IntegrationSpec(name="prod", access_key_id=key_id, secret_access_key="w" * 40)
    with pytest.raises(InvalidCredentials):
        integrations.add_integration(core, spec, actor="UADMIN")
    assert integrations.list_integrations(core) == []


def test_a_failed_first_sync_keeps_the_integration(core, key_of, aws_calls):
    key_id, secret = key_of("roleup")
    aws_calls.fail("GetAccountAuthorizationDetails", "ServiceUnavailable")
    spec = IntegrationSpec(name="prod", access_key_id=key_id, secret_access_key=secret)
    added = integrations.add_integration(core, spec, actor="UADMIN")
    with core.sessions() as session:
        assert session.get(Integration, added.id).last_sync_status == "failed"


def test_validation_end_to_end_against_a_moto_server(server_core, moto_url):
    import boto3

    client = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")
    client.create_user(UserName="roleup")
    key = client.create_access_key(UserName="roleup")["AccessKey"]
    result = check_credentials(
        server_core, access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"]
    )
    assert result.arn == "arn:aws:iam::123456789012:user/roleup"


# --- the check fits the integration's path prefix ---------------------------------------------
ACCOUNT = "arn:aws:iam::123456789012"
#: What an administrator writes for a RoleUp limited to /staff/, action by action.
STAFF_USER_ACTIONS = [
    "iam:GetUser",
    "iam:ListGroupsForUser",
    "iam:CreateUser",
    "iam:TagUser",
    "iam:CreateLoginProfile",
    "iam:GetLoginProfile",
    "iam:DeleteLoginProfile",
    "iam:AttachUserPolicy",
    "iam:DetachUserPolicy",
    "iam:ListAttachedUserPolicies",
    "iam:PutUserPolicy",
    "iam:ListUserPolicies",
    "iam:DeleteUserPolicy",
    "iam:ListAccessKeys",
    "iam:GetAccessKeyLastUsed",
    "iam:UpdateAccessKey",
    "iam:DeleteAccessKey",
    "iam:ListSigningCertificates",
    "iam:DeleteSigningCertificate",
    "iam:ListSSHPublicKeys",
    "iam:DeleteSSHPublicKey",
    "iam:ListServiceSpecificCredentials",
    "iam:DeleteServiceSpecificCredential",
    "iam:ListMFADevices",
    "iam:DeactivateMFADevice",
    "iam:DeleteUser",
]
ACCOUNT_READS = [
    "iam:GetAccountAuthorizationDetails",
    "iam:ListUsers",
    "iam:ListPolicies",
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
    "iam:GetAccountPasswordPolicy",
    "iam:SimulatePrincipalPolicy",
]


def staff_policy(user_actions: list[str]) -> list[dict]:
    return [
        {"Effect": "Allow", "Action": ACCOUNT_READS, "Resource": "*"},
        {"Effect": "Allow", "Action": user_actions, "Resource": f"{ACCOUNT}:user/staff/*"},
        {
            "Effect": "Allow",
            "Action": ["iam:GetGroup", "iam:AddUserToGroup", "iam:RemoveUserFromGroup"],
            "Resource": f"{ACCOUNT}:group/*",
        },
        {"Effect": "Allow", "Action": "iam:GetPolicy", "Resource": f"{ACCOUNT}:policy/*"},
        {"Effect": "Allow", "Action": "iam:DeleteVirtualMFADevice", "Resource": f"{ACCOUNT}:mfa/*"},
    ]


@pytest.fixture
def scoped_key(iam, moto_gaps):
    """A key whose user holds exactly `statements`; the simulator evaluates them."""
    moto_gaps.evaluate = True

    def make(statements: list[dict]) -> dict[str, str]:
        iam.create_user(UserName="roleup", Path="/robots/")
        document = json.dumps({"Version": "2012-10-17", "Statement": statements})
        iam.put_user_policy(UserName="roleup", PolicyName="roleup", PolicyDocument=document)
        key = iam.create_access_key(UserName="roleup")["AccessKey"]
        return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}

    return make


def test_a_key_limited_to_the_prefix_passes_and_is_checked_on_the_prefix(
    core, scoped_key, aws_calls
):
    key = scoped_key(staff_policy(STAFF_USER_ACTIONS))
    result = check_credentials(core, **key, path_prefix="/staff/")
    assert (result.missing, result.checked) == ([], True)
    asked = {
        tuple(one.get("ResourceArns", ["*"])): one["ActionNames"]
        for one in aws_calls.params("SimulatePrincipalPolicy")
    }
    assert set(asked) == {
        ("*",),
        (f"{ACCOUNT}:user/staff/*",),
        (f"{ACCOUNT}:group/*",),
        (f"{ACCOUNT}:policy/*",),
        (f"{ACCOUNT}:mfa/*",),
    }
    assert "iam:ListSSHPublicKeys" in asked[(f"{ACCOUNT}:user/staff/*",)]
    spec = IntegrationSpec(name="staff", path_prefix="/staff/", **key)
    assert check_with_aws(core, spec) == Validated(
        "123456789012", "arn:aws:iam::123456789012:user/robots/roleup"
    )
    # The same key for the whole account lacks every user action, and says so.
    whole = check_credentials(core, **key, path_prefix="/")
    assert whole.missing == [a for a in whole.missing if a in STAFF_USER_ACTIONS]
    assert set(whole.missing) == set(STAFF_USER_ACTIONS)


def test_a_key_missing_one_offboarding_read_is_refused_naming_exactly_that_action(core, scoped_key):
    lacking = [a for a in STAFF_USER_ACTIONS if a != "iam:ListSSHPublicKeys"]
    key = scoped_key(staff_policy(lacking))
    result = check_credentials(core, **key, path_prefix="/staff/")
    assert result.missing == ["iam:ListSSHPublicKeys"]
    spec = IntegrationSpec(name="staff", path_prefix="/staff/", **key)
    with pytest.raises(AwsAccessDenied) as caught:
        check_with_aws(core, spec)
    assert "lack permissions RoleUp needs to change IAM: iam:ListSSHPublicKeys." in str(
        caught.value
    )


def test_a_read_only_integration_is_asked_only_for_reads(core, scoped_key, aws_calls):
    reads_only = [
        {"Effect": "Allow", "Action": ACCOUNT_READS, "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["iam:GetUser", "iam:ListGroupsForUser"],
            "Resource": f"{ACCOUNT}:user/staff/*",
        },
    ]
    key = scoped_key(reads_only)
    result = check_credentials(core, **key, path_prefix="/staff/", read_only=True)
    assert (result.missing, result.checked) == ([], True)
    asked = {a for one in aws_calls.params("SimulatePrincipalPolicy") for a in one["ActionNames"]}
    assert asked == {
        "iam:GetAccountAuthorizationDetails",
        "iam:ListUsers",
        "iam:ListPolicies",
        "iam:GenerateCredentialReport",
        "iam:GetCredentialReport",
        "iam:GetUser",
        "iam:ListGroupsForUser",
    }
    assert check_credentials(core, **key, path_prefix="/staff/").missing  # read/write is not
