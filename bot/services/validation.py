"""Check an integration's credentials with AWS before it is saved.

STS GetCallerIdentity proves the key (or the role assumption) works; one IAM read proves it can
read IAM; for a read-write integration, the policy simulator (SimulatePrincipalPolicy) tells which
actions RoleUp needs that the principal lacks, when IAM can tell (the simulator needs its own
permission and cannot evaluate the root user).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.services.aws import call
from bot.services.errors import AwsAccessDenied, InvalidCredentials, RoleUpError
from bot.services.integration_spec import IntegrationSpec, Validated

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from bot.services.container import Core
    from storage.models import Integration

logger = logging.getLogger(__name__)

# An interactive check: fail fast rather than retry for long.
VALIDATION_RETRIES = 1

READ_ACTIONS = [
    "iam:GetAccountAuthorizationDetails",
    "iam:ListUsers",
    "iam:ListPolicies",
    "iam:GetUser",
    "iam:ListGroupsForUser",
]
WRITE_ACTIONS = [
    "iam:GetAccountPasswordPolicy",  # a read, but only onboarding needs it
    "iam:CreateUser",
    "iam:TagUser",
    "iam:CreateLoginProfile",
    "iam:DeleteLoginProfile",
    "iam:AddUserToGroup",
    "iam:RemoveUserFromGroup",
    "iam:AttachUserPolicy",
    "iam:DetachUserPolicy",
    "iam:PutUserPolicy",
    "iam:DeleteUserPolicy",
    "iam:UpdateAccessKey",
    "iam:DeleteAccessKey",
    "iam:DeleteSigningCertificate",
    "iam:DeleteSSHPublicKey",
    "iam:DeleteServiceSpecificCredential",
    "iam:DeactivateMFADevice",
    "iam:DeleteVirtualMFADevice",
    "iam:DeleteUser",
]


@dataclass(frozen=True)
class ValidationResult:
    account_id: str
    arn: str
    #: Actions RoleUp needs that the principal lacks (empty when all are allowed or unknown).
    missing: list[str] = field(default_factory=list)
    #: False when IAM could not tell (no simulator permission, root user...).
    checked: bool = True


def validate_credentials(
    core: Core,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    role_arn: str | None = None,
    external_id: str | None = None,
    read_only: bool = False,
) -> ValidationResult:
    """Raise InvalidCredentials / AwsAccessDenied when the credentials cannot be used."""
    credentials = _credentials(
        core, access_key_id, secret_access_key, role_arn=role_arn, external_id=external_id
    )
    sts = core.aws.sts_with_credentials(credentials, retries=VALIDATION_RETRIES)
    identity = call(sts.get_caller_identity, "check the credentials with AWS")
    iam = core.aws.iam_with_credentials(credentials, retries=VALIDATION_RETRIES)
    call(iam.list_users, "read IAM with these credentials", MaxItems=1)
    principal = _principal_arn(str(identity["Arn"]), role_arn)
    actions = READ_ACTIONS if read_only else READ_ACTIONS + WRITE_ACTIONS
    missing, checked = _simulate(iam, principal, actions)
    return ValidationResult(
        account_id=str(identity["Account"]),
        arn=str(identity["Arn"]),
        missing=missing,
        checked=checked,
    )


def _credentials(
    core: Core,
    access_key_id: str | None,
    secret_access_key: str | None,
    *,
    role_arn: str | None,
    external_id: str | None,
) -> dict[str, str]:
    if access_key_id and secret_access_key:
        return {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
    if role_arn:
        return call(
            lambda: core.aws.assume_role(role_arn, external_id),
            f"assume the role {role_arn}",
        )
    raise InvalidCredentials("Give an access key id and secret access key, or a role ARN.")


def _principal_arn(caller_arn: str, role_arn: str | None) -> str | None:
    """The IAM principal the simulator can evaluate, from the caller identity's ARN."""
    if ":assumed-role/" in caller_arn:
        if role_arn:
            return role_arn
        account = caller_arn.split(":")[4]
        role_name = caller_arn.split(":assumed-role/", 1)[1].split("/")[0]
        return f"arn:aws:iam::{account}:role/{role_name}"
    if caller_arn.endswith(":root") or ":user/" not in caller_arn:
        return None  # the root user (or a federated one): the simulator cannot evaluate it
    return caller_arn


def _simulate(iam: IAMClient, principal: str | None, actions: list[str]) -> tuple[list[str], bool]:
    if principal is None:
        return [], False
    try:
        answer = call(
            iam.simulate_principal_policy,
            "ask IAM's policy simulator which permissions the key has",
            PolicySourceArn=principal,
            ActionNames=actions,
        )
    except Exception as err:  # the simulator is optional: any failure means "cannot tell"
        logger.info("permission check skipped: %s", err)
        return [], False
    denied = {
        result["EvalActionName"]
        for result in answer.get("EvaluationResults", [])
        if result.get("EvalDecision") != "allowed"
    }
    return [action for action in actions if action in denied], True


# --- wiring into bot.services.integrations ----------------------------------------------------
def validate_spec(core: Core, spec: IntegrationSpec) -> Validated:
    """The integrations service's validator: the AWS account id and RoleUp's own principal
    (the caller's ARN; for a role, the role itself), or a clear error."""
    result = validate_credentials(
        core,
        access_key_id=spec.access_key_id,
        secret_access_key=spec.secret_access_key,
        role_arn=spec.role_arn,
        external_id=spec.external_id,
        read_only=spec.read_only,
    )
    reads = [a for a in result.missing if a in READ_ACTIONS]
    if reads:
        raise AwsAccessDenied(
            f"The credentials cannot read IAM as RoleUp needs: they lack {', '.join(reads)}."
        )
    if result.missing:
        raise AwsAccessDenied(
            "The credentials lack permissions RoleUp needs to change IAM: "
            f"{', '.join(result.missing)}. Grant them, or add the integration as read-only."
        )
    return Validated(result.account_id, spec.role_arn or result.arn)


def first_sync(core: Core, integration: Integration) -> None:
    """Run after a validated add. A failure is recorded on the integration (and in the audit
    log) by the sync itself and does not undo the add: the next scheduled sync retries."""
    from bot.services.sync import sync_integration

    try:
        sync_integration(core, integration.id, actor=integration.created_by)
    except RoleUpError as err:
        logger.warning("first sync of %s failed: %s", integration.name, err)
