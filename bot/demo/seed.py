"""The demo's pretend company in IAM, and its RoleUp integration.

IAM (moto, in this process) gets a service user for RoleUp under /service/ and a handful of
people under /people/: the integration's path prefix, so the service user stays invisible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from bot.services.container import Core

PATH = "/people/"
INTEGRATION = "demo"
DEMO_ACTOR = "roleup-demo"
GROUPS = {
    "developers": ["arn:aws:iam::aws:policy/PowerUserAccess"],
    "admins": ["arn:aws:iam::aws:policy/AdministratorAccess"],
    "readonly": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
    "billing": ["arn:aws:iam::aws:policy/job-function/Billing"],
}
CUSTOMER_POLICIES = {
    "demo-s3-data-read": {"Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"},
    "demo-cost-explorer": {"Action": ["ce:Get*", "ce:Describe*"], "Resource": "*"},
}
USERS: dict[str, dict[str, Any]] = {
    "alice": {"groups": ["developers"], "console": True, "keys": 1, "signed_in_days_ago": 1},
    "bob": {"groups": ["developers", "readonly"], "keys": 2, "inline": "bob-scratch-bucket"},
    "carol": {"groups": ["admins"], "console": True, "mfa": True, "signed_in_days_ago": 0},
    "dave": {"groups": ["readonly", "billing"], "console": True, "signed_in_days_ago": 95},
    "erin": {"groups": ["developers"], "policies": ["demo-s3-data-read"], "keys": 1},
}


REVIEW_DUE_DAYS = 7


@dataclass
class DemoCompany:
    integration_id: int
    users: list[str] = field(default_factory=lambda: sorted(USERS))
    synced: bool = False
    review: int | None = None  # the access review the demo starts, to be decided in it


def _client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]


def seed_iam() -> tuple[str, str]:
    """Fill the (mocked) account; return RoleUp's own access key pair."""
    iam = _client("iam")
    account = _client("sts").get_caller_identity()["Account"]
    iam.update_account_password_policy(
        MinimumPasswordLength=14,
        RequireSymbols=True,
        RequireNumbers=True,
        RequireUppercaseCharacters=True,
        RequireLowercaseCharacters=True,
    )
    for name, statement in CUSTOMER_POLICIES.items():
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]}
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))
    for group, policies in GROUPS.items():
        iam.create_group(GroupName=group, Path=PATH)
        for arn in policies:
            iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    for name, spec in USERS.items():
        _seed_user(iam, account, name, spec)
    _set_last_sign_ins(account)
    iam.create_user(UserName="roleup-bot", Path="/service/")
    iam.attach_user_policy(UserName="roleup-bot", PolicyArn="arn:aws:iam::aws:policy/IAMFullAccess")
    key = iam.create_access_key(UserName="roleup-bot")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _seed_user(iam: Any, account: str, name: str, spec: dict[str, Any]) -> None:
    iam.create_user(UserName=name, Path=PATH)
    for group in spec.get("groups", []):
        iam.add_user_to_group(GroupName=group, UserName=name)
    for policy in spec.get("policies", []):
        iam.attach_user_policy(UserName=name, PolicyArn=f"arn:aws:iam::{account}:policy/{policy}")
    if spec.get("console"):
        # A throwaway password nobody will use: the demo account is gone when the demo ends.
        iam.create_login_profile(UserName=name, Password=f"Demo-{name}-Pw-2024!")
    for _ in range(spec.get("keys", 0)):
        iam.create_access_key(UserName=name)
    if spec.get("inline"):
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName=name, PolicyName=spec["inline"], PolicyDocument=json.dumps(document)
        )
    if spec.get("mfa"):
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
        iam.enable_mfa_device(
            UserName=name,
            SerialNumber=serial["SerialNumber"],
            AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )


def _set_last_sign_ins(account: str) -> None:
    """IAM's API cannot set PasswordLastUsed; moto's model can, so /accounts has some to show."""
    from moto.iam.models import iam_backends

    users = iam_backends[account]["global"].users
    now = datetime.now(UTC).replace(microsecond=0)
    for name, spec in USERS.items():
        if "signed_in_days_ago" in spec:
            days = spec["signed_in_days_ago"]
            user: Any = users[name]  # moto types this attribute as always None
            user.password_last_used = now - timedelta(days=days, hours=2)


def setup_integration(
    core: Core,
    key: tuple[str, str],
    *,
    managers: list[str],
    approvers: list[str],
    approvals_channel: str,
    links: dict[str, str],
) -> DemoCompany:
    """Add the demo integration as an admin would, sync it, and link Slack people to users."""
    integration_id = _add_integration(core, key, managers, approvers, approvals_channel)
    company = DemoCompany(integration_id)
    company.synced = _first_sync(core, integration_id)
    if company.synced:
        _link(core, integration_id, links)
    return company


def _add_integration(
    core: Core, key: tuple[str, str], managers: list[str], approvers: list[str], channel: str
) -> int:
    from bot.services.integrations import IntegrationSpec, add_integration

    spec = IntegrationSpec(
        name=INTEGRATION,
        access_key_id=key[0],
        secret_access_key=key[1],
        path_prefix=PATH,
        managers=managers,
        approvers=approvers,
        approvals_channel=channel,
    )
    return int(add_integration(core, spec, actor=DEMO_ACTOR).id)


def _first_sync(core: Core, integration_id: int) -> bool:
    """Sync unless adding the integration already did (its first sync runs after the add)."""
    from storage.models import Integration

    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is not None and integration.last_sync_at is not None:
            return True
    try:
        from bot.services.sync import sync_integration
    except ImportError:
        return False
    sync_integration(core, integration_id, actor=DEMO_ACTOR)
    return True


def _link(core: Core, integration_id: int, links: dict[str, str]) -> None:
    try:
        from bot.services.lifecycle import link_slack_user
    except ImportError:
        return
    for user_name, slack_user_id in links.items():
        link_slack_user(core, integration_id, user_name, slack_user_id, actor=DEMO_ACTOR)


def start_review(core: Core, company: DemoCompany, manager: str) -> None:
    """An access review of the demo's accounts, started as the manager would with
    `/roleup review start demo 7`; the manager hears of it like any reviewer (a DM with
    *Review*) and decides its items in the Home tab."""
    from bot.review_notices import announce_start
    from bot.services.review_start import start_campaign

    if not company.synced:
        return
    started = start_campaign(
        core, integration_id=company.integration_id, actor=manager, due_days=REVIEW_DUE_DAYS
    )
    company.review = started.campaign_id
    announce_start(core, started)
