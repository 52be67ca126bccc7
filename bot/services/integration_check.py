"""Check an integration's credentials with AWS before it is saved, and run its first sync after.

STS GetCallerIdentity proves the key (or the role assumption) works; one IAM read proves it can
read IAM; the policy simulator (SimulatePrincipalPolicy) then tells which of the actions RoleUp
uses (bot.services.iam.PERMISSIONS; the reads only, for a read-only integration) the principal
lacks on the resources RoleUp uses them on (the users of the path prefix, groups, policies, MFA
devices, the account), when IAM can tell (the simulator needs its own permission and cannot
evaluate the root user).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.services.acting import CHECK_ACTOR, Actor
from bot.services.aws import call
from bot.services.errors import AwsAccessDenied, InvalidCredentials, RoleUpError
from bot.services.iam import Permission, permissions_needed, resource_arn
from bot.services.integration_spec import IntegrationSpec, Validated

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from bot.services.container import Core
    from storage.models import Integration

logger = logging.getLogger(__name__)

# An interactive check: fail fast rather than retry for long.
CHECK_RETRIES = 1

#: Kept for callers that name the two sets; both come from bot.services.iam.PERMISSIONS.
READ_ACTIONS = [p.action for p in permissions_needed(read_only=True)]
WRITE_ACTIONS = [p.action for p in permissions_needed(read_only=False) if p.writes]


@dataclass(frozen=True)
class CredentialCheck:
    account_id: str
    arn: str
    #: Actions RoleUp needs that the principal lacks (empty when all are allowed or unknown).
    missing: list[str] = field(default_factory=list)
    #: False when IAM could not tell (no simulator permission, root user...).
    checked: bool = True


def check_credentials(
    core: Core,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    role_arn: str | None = None,
    external_id: str | None = None,
    read_only: bool = False,
    path_prefix: str | None = "/",
    actor: Actor = CHECK_ACTOR,
) -> CredentialCheck:
    """Raise InvalidCredentials / AwsAccessDenied when the credentials cannot be used; name in
    `missing` every action RoleUp uses that they lack on the users of `path_prefix`."""
    credentials = _credentials(
        core,
        access_key_id,
        secret_access_key,
        role_arn=role_arn,
        external_id=external_id,
        actor=actor,
    )
    sts = core.aws.sts_with_credentials(credentials, retries=CHECK_RETRIES)
    identity = call(sts.get_caller_identity, "check the credentials with AWS")
    iam = core.aws.iam_with_credentials(credentials, retries=CHECK_RETRIES)
    call(iam.list_users, "read IAM with these credentials", MaxItems=1)
    principal = _principal_arn(str(identity["Arn"]), role_arn)
    place = _Place(
        partition=str(identity["Arn"]).split(":")[1] or "aws",
        account=str(identity["Account"]),
        path_prefix=path_prefix,
    )
    missing, checked = _simulate(iam, principal, permissions_needed(read_only=read_only), place)
    return CredentialCheck(
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
    actor: Actor,
) -> dict[str, str]:
    if access_key_id and secret_access_key:
        return {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
    if role_arn:
        return call(
            lambda: core.aws.assume_role(role_arn, external_id, actor),
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


@dataclass(frozen=True)
class _Place:
    partition: str
    account: str
    path_prefix: str | None

    def arn(self, kind: str) -> str:
        return resource_arn(
            kind, partition=self.partition, account=self.account, path_prefix=self.path_prefix
        )


def _simulate(
    iam: IAMClient, principal: str | None, needed: list[Permission], place: _Place
) -> tuple[list[str], bool]:
    """The needed actions the principal may not perform, each on the resources RoleUp uses it
    on (one simulation per kind of resource, so each answer is about exactly one ARN)."""
    if principal is None:
        return [], False
    denied: set[str] = set()
    by_kind: dict[str, list[str]] = {}
    for permission in needed:
        by_kind.setdefault(permission.resource, []).append(permission.action)
    try:
        for kind, actions in by_kind.items():
            denied |= _denied(iam, principal, actions, place.arn(kind))
    except Exception as err:  # the simulator is optional: any failure means "cannot tell"
        logger.info("permission check skipped: %s", err)
        return [], False
    return [p.action for p in needed if p.action in denied], True


def _denied(iam: IAMClient, principal: str, actions: list[str], resource: str) -> set[str]:
    params: dict[str, Any] = {"PolicySourceArn": principal, "ActionNames": actions}
    if resource != "*":
        params["ResourceArns"] = [resource]
    denied: set[str] = set()
    while True:
        answer = call(
            iam.simulate_principal_policy,
            "ask IAM's policy simulator which permissions the key has",
            **params,
        )
        for result in answer.get("EvaluationResults", []):
            per_resource = result.get("ResourceSpecificResults") or []
            if result.get("EvalDecision") != "allowed" or any(
                r.get("EvalResourceDecision") != "allowed" for r in per_resource
            ):
                denied.add(result["EvalActionName"])
        if not answer.get("IsTruncated"):
            return denied
        params["Marker"] = answer["Marker"]


# --- wiring into bot.services.integrations ----------------------------------------------------
def check_with_aws(core: Core, spec: IntegrationSpec) -> Validated:
    """The integrations service's validator: the AWS account id and RoleUp's own principal
    (the caller's ARN; for a role, the role itself), or a clear error."""
    result = check_credentials(
        core,
        access_key_id=spec.access_key_id,
        secret_access_key=spec.secret_access_key,
        role_arn=spec.role_arn,
        external_id=spec.external_id,
        read_only=spec.read_only,
        path_prefix=spec.path_prefix,
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
