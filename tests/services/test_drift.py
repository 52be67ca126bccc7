"""Drift digests: after a scheduled sync, changes made outside RoleUp reach the approvals
channel as one message, are audited, and nothing is posted when nothing changed."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from sqlalchemy import select

from bot.notices import drift_digest
from bot.scheduler import JobFailed, run_scheduled_sync
from bot.services.aws import key_hint, seal_key_pair
from bot.services.container import Core
from bot.services.lifecycle import OnboardSpec, onboard
from bot.services.sync import AccountDrift, sync_integration
from storage.models import AuditEvent, Integration


@pytest.fixture
def core(roleup: Any, mocked_aws: None) -> Core:
    return roleup.core


@pytest.fixture
def admin(mocked_aws: None) -> Any:
    return boto3.client("iam", region_name="us-east-1")


@pytest.fixture
def prod(core: Core, admin: Any) -> int:
    """An integration over moto's account with bob and carol, synced once already."""
    admin.create_user(UserName="roleup")
    key = admin.create_access_key(UserName="roleup")["AccessKey"]
    admin.create_group(GroupName="admins")
    admin.create_group(GroupName="dev")
    for user in ("bob", "carol"):
        admin.create_user(UserName=user)
        admin.add_user_to_group(UserName=user, GroupName="dev")
    with core.sessions.begin() as session:
        row = Integration(
            name="prod",
            created_by="UADMIN",
            approvals_channel="CAPPROVALS",
            access_key_hint=key_hint(key["AccessKeyId"]),
            credentials_ciphertext=seal_key_pair(
                core.require_box(), key["AccessKeyId"], key["SecretAccessKey"]
            ),
        )
        session.add(row)
        session.flush()
        integration_id = row.id
    sync_integration(core, integration_id, actor="test")
    return integration_id


def digests(slack_api: Any) -> list[Any]:
    return slack_api.calls_to("chat.postMessage")


def shown(call: Any) -> str:
    return "\n".join(block["text"]["text"] for block in call.params["blocks"])


def drift_events(core: Core) -> list[AuditEvent]:
    with core.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "sync.drift")))


def test_outside_changes_are_posted_once_as_one_digest(core, admin, prod, slack_api):
    admin.create_user(UserName="mallory")
    admin.remove_user_from_group(UserName="bob", GroupName="dev")
    admin.delete_user(UserName="bob")
    admin.add_user_to_group(UserName="carol", GroupName="admins")
    allow = {"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [allow]})
    arn = admin.create_policy(PolicyName="ReadS3", PolicyDocument=document)["Policy"]["Arn"]
    admin.attach_user_policy(UserName="carol", PolicyArn=arn)

    run_scheduled_sync(core, prod, 1, "test")
    run_scheduled_sync(core, prod, 2, "test")  # nothing changed since: no second message

    [digest] = digests(slack_api)
    assert digest.params["channel"] == "CAPPROVALS"
    assert digest.params["text"] == "3 changes made outside RoleUp in AWS integration prod"
    text = shown(digest)
    assert "`mallory`: account created" in text
    assert "`bob`: account deleted" in text
    assert "`carol`: groups +admins; policies +ReadS3" in text
    [event] = drift_events(core)
    assert event.integration == "prod"
    assert event.detail["count"] == 3
    assert {c["user_name"]: c["kind"] for c in event.detail["changes"]} == {
        "mallory": "added",
        "bob": "removed",
        "carol": "changed",
    }


def test_no_message_when_nothing_changed(core, prod, slack_api):
    run_scheduled_sync(core, prod, 1, "test")
    assert digests(slack_api) == []
    assert drift_events(core) == []


def test_changes_made_through_roleup_are_not_drift(core, admin, prod, slack_api):
    spec = OnboardSpec(username="dave", password="Correct-horse-42!", groups=["dev"])
    onboard(core, prod, spec, actor="UMANAGER")
    admin.create_user(UserName="eve")

    run_scheduled_sync(core, prod, 1, "test")

    [digest] = digests(slack_api)
    assert "`eve`: account created" in shown(digest)
    assert "dave" not in shown(digest)
    assert "Correct-horse-42!" not in slack_api.all_text()


def test_a_failed_sync_posts_no_digest(core, admin, prod, slack_api):
    with core.sessions.begin() as session:
        row = session.get_one(Integration, prod)
        row.credentials_ciphertext = seal_key_pair(
            core.require_box(), "AKIAGONEGONEGONE1234", "x" * 40
        )
    admin.create_user(UserName="mallory")
    from moto.core.authorization import enable_iam_authentication

    with enable_iam_authentication(), pytest.raises(JobFailed):  # the job counts as failed
        run_scheduled_sync(core, prod, 1, "test")
    assert digests(slack_api) == []
    with core.sessions() as session:
        assert session.get_one(Integration, prod).last_sync_status == "failed"


def test_link_tags_roleup_did_not_write_are_told_once_escaped_and_never_adopted(
    core, admin, prod, slack_api
):
    admin.tag_user(UserName="bob", Tags=[{"Key": "roleup:slack-user", "Value": "<!channel>"}])
    admin.tag_user(UserName="carol", Tags=[{"Key": "roleup:slack-user", "Value": "U0MALLORY"}])

    run_scheduled_sync(core, prod, 1, "test")
    run_scheduled_sync(core, prod, 2, "test")  # the same tags again: not told twice

    [digest] = digests(slack_api)
    assert digest.params["text"] == "2 values from IAM not stored as read in AWS integration prod"
    text = shown(digest)
    assert "`bob`: unreadable link tag ignored `&lt;!channel&gt;`" in text
    assert (
        "`carol`: link tag not written by RoleUp ignored (link with `/roleup link`) `U0MALLORY`"
    ) in text
    assert "<!channel>" not in json.dumps(digest.params) and "<@" not in json.dumps(digest.params)
    [event] = drift_events(core)
    assert [p["subject"] for p in event.detail["problems"]] == ["bob", "carol"]


def test_the_digest_escapes_names_and_stays_one_readable_message():
    many = [AccountDrift(f"user{i}", "added", False) for i in range(100)]
    odd = AccountDrift("<!here>&", "changed", False, groups_added=["<@U1>"])
    text, blocks = drift_digest("<prod>", [odd, *many])
    body = json.dumps(blocks, ensure_ascii=False)
    assert "<!here>" not in body and "<@U1>" not in body and "<prod>" not in body
    assert "&lt;!here&gt;&amp;" in body
    assert "…and 61 more" in body
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks)
    assert text == "101 changes made outside RoleUp in AWS integration <prod>"
