"""The daily credential health check against moto with IAM authentication switched on."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto.core.authorization import enable_iam_authentication
from sqlalchemy import select

from bot.scheduler import run_health_check
from bot.services.aws import key_hint, seal_key_pair
from bot.services.container import Core
from bot.services.health import FAILING, OK, WARNING, check_all
from storage.models import AuditEvent, Integration, utcnow

EVERYTHING_READ = ["sts:GetCallerIdentity", "iam:List*", "iam:Get*", "iam:SimulatePrincipalPolicy"]


def key_user(name: str, actions: list[str]) -> dict[str, str]:
    """An IAM user allowed `actions`, and a fresh access key of its own."""
    admin = boto3.client("iam", region_name="us-east-1")
    admin.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    admin.put_user_policy(UserName=name, PolicyName="roleup", PolicyDocument=json.dumps(policy))
    key = admin.create_access_key(UserName=name)["AccessKey"]
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def add_key_integration(
    core: Core, name: str, key: dict[str, str], *, read_only: bool = False
) -> int:
    with core.sessions.begin() as session:
        row = Integration(
            name=name,
            read_only=read_only,
            created_by="UADMIN",
            approvals_channel="CAPPROVALS",
            access_key_hint=key_hint(key["id"]),
            credentials_ciphertext=seal_key_pair(core.require_box(), key["id"], key["secret"]),
        )
        session.add(row)
        session.flush()
        return row.id


def health_of(core: Core, name: str) -> tuple[str | None, str | None]:
    with core.sessions() as session:
        row = session.scalars(select(Integration).where(Integration.name == name)).one()
        return row.health_status, row.health_detail


@pytest.fixture
def core(roleup: Any, mocked_aws: None) -> Core:
    return roleup.core


def alerts(slack_api: Any) -> list[str]:
    return [json.dumps(c.params) for c in slack_api.calls_to("chat.postMessage")]


def test_a_working_key_is_ok_and_nobody_is_alerted(core, slack_api):
    add_key_integration(core, "prod", key_user("roleup", EVERYTHING_READ))
    with enable_iam_authentication():
        run_health_check(core)
    status, detail = health_of(core, "prod")
    assert status == OK
    assert detail == "The credentials work. The key is 0 days old."
    assert alerts(slack_api) == []


def test_an_old_key_warns_the_approvals_channel_once(core, slack_api):
    add_key_integration(core, "prod", key_user("roleup", EVERYTHING_READ))
    with enable_iam_authentication():
        check_all(core)
        later = utcnow() + timedelta(days=120)
        changes = check_all(core, now=later)
    assert [c.after.status for c in changes] == [WARNING]
    assert "120 days old" in health_of(core, "prod")[1]

    with enable_iam_authentication():
        from bot.notices import post_health_alert

        for change in changes:
            post_health_alert(core, change)
        # The next day's check finds the same state: no new change, so no second alert.
        assert check_all(core, now=later + timedelta(days=1)) == []
    [posted] = slack_api.calls_to("chat.postMessage")
    assert posted.params["channel"] == "CAPPROVALS"
    assert "prod needs attention" in posted.params["text"]
    assert "120 days old" in posted.params["text"]


def test_a_key_that_stopped_working_fails_and_alerts(core, slack_api):
    key = key_user("roleup", EVERYTHING_READ)
    add_key_integration(core, "prod", {"id": "AKIAGONEGONEGONE1234", "secret": key["secret"]})
    with enable_iam_authentication():
        run_health_check(core)
    status, detail = health_of(core, "prod")
    assert status == FAILING
    assert "rejected the integration's credentials" in detail
    [posted] = slack_api.calls_to("chat.postMessage")
    assert "prod is failing" in posted.params["text"]
    assert key["secret"] not in slack_api.all_text()
    with core.sessions() as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "integration.health")
        ).all()
    assert (event.outcome, event.detail["after"]) == (FAILING, FAILING)


def test_a_key_that_cannot_read_iam_fails(core, slack_api):
    add_key_integration(core, "prod", key_user("roleup", ["sts:GetCallerIdentity"]))
    with enable_iam_authentication():
        run_health_check(core)
    status, detail = health_of(core, "prod")
    assert status == FAILING
    assert "AWS denied iam:ListUsers" in detail
    assert len(slack_api.calls_to("chat.postMessage")) == 1


def test_a_write_permission_lost_fails_a_read_write_integration_only(
    core,
    slack_api,
    moto_gaps,
):
    moto_gaps.denied = {"iam:CreateUser", "iam:DeleteUser"}
    add_key_integration(core, "prod", key_user("roleup", EVERYTHING_READ))
    add_key_integration(core, "audit", key_user("auditor", EVERYTHING_READ), read_only=True)
    with enable_iam_authentication():
        run_health_check(core)
    status, detail = health_of(core, "prod")
    assert status == FAILING
    assert detail.endswith("read/write integration: iam:CreateUser, iam:DeleteUser.")
    assert health_of(core, "audit")[0] == OK
    [posted] = slack_api.calls_to("chat.postMessage")
    assert "prod is failing" in posted.params["text"]


def test_names_from_the_store_are_escaped_in_alerts(core, slack_api):
    add_key_integration(core, "<!channel>", {"id": "AKIAGONEGONEGONE1234", "secret": "x" * 40})
    with enable_iam_authentication():
        run_health_check(core)
    [posted] = slack_api.calls_to("chat.postMessage")
    block_text = posted.params["blocks"][0]["text"]["text"]
    assert "<!channel>" not in block_text
    assert "&lt;!channel&gt;" in block_text
