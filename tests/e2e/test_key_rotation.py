"""`roleup integrations rotate-credentials` end to end: the CLI against a moto server over HTTP,
behind a proxy that refuses one AWS call at each step. Whatever fails, the saved key works, and
running the command again finishes the rotation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.app import create_core
from bot.services import integrations
from bot.settings import Settings
from tests.support.config import TEST_KEY


@pytest.fixture
def prod(cli, aws, wire, monkeypatch) -> dict[str, str]:
    """Integration prod holding the only key of IAM user roleup, added through the CLI."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", wire.url)
    aws.create_user(UserName="roleup")
    key = aws.create_access_key(UserName="roleup")["AccessKey"]
    added = cli(
        "integrations", "add", "prod", "--access-key-id", key["AccessKeyId"], "--no-validate",
        stdin=key["SecretAccessKey"] + "\n",
    )  # fmt: skip
    assert added.code == 0, added.err
    return key


def saved_key(database_url: str) -> str:
    core = create_core(Settings(database_url=database_url, encryption_keys=(TEST_KEY,)))
    try:
        with core.sessions() as session:
            row = integrations.get_integration(session, "prod")
        return core.aws.credentials_for(row, core.require_box())["aws_access_key_id"]
    finally:
        core.engine.dispose()


def keys(aws: Any) -> dict[str, str]:
    listed = aws.list_access_keys(UserName="roleup")["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in listed}


STEPS: dict[str, Any] = {
    "who RoleUp is": lambda call, old: call.action == "GetCallerIdentity" and call.key_id == old,
    "listing its keys": lambda call, old: call.action == "ListAccessKeys",
    "creating the new key": lambda call, old: call.action == "CreateAccessKey",
    "validating the new key": lambda call, old: call.action == "ListUsers" and call.key_id != old,
    "deactivating the old key": lambda call, old: call.action == "UpdateAccessKey",
    "deleting the old key": lambda call, old: call.action == "DeleteAccessKey",
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_fault_at_each_step_leaves_a_working_saved_key_and_a_rerun_finishes(
    cli, database_url, prod, aws, wire, step
):
    old = prod["AccessKeyId"]
    refuse = STEPS[step]
    wire.refuse(lambda call: refuse(call, old), "AccessDenied")
    failed = cli("integrations", "rotate-credentials", "prod")
    assert failed.code == 1
    last = failed.err.strip().splitlines()[-1]
    assert last.startswith("roleup: ") and "denied" in last
    # The saved key is active, and a sync signed with it works.
    assert keys(aws)[saved_key(database_url)] == "Active"
    wire._refusals.clear()
    synced = cli("sync", "--integration", "prod")
    assert synced.code == 0, synced.err
    assert {c.key_id for c in wire.of("GetAccountAuthorizationDetails")} == {
        saved_key(database_url)
    }
    done = cli("integrations", "rotate-credentials", "prod")
    assert done.code == 0, done.err
    new = saved_key(database_url)
    assert new != old and keys(aws) == {new: "Active"}
    assert done.out.startswith("rotated the access key of prod:")
    everything = failed.out + failed.err + done.out + done.err
    assert prod["SecretAccessKey"] not in everything


def test_a_rotation_end_to_end_with_the_audit_and_no_secret_anywhere(
    cli, database_url, prod, aws, wire
):
    result = cli("integrations", "rotate-credentials", "prod")
    assert result.code == 0, result.err
    new = saved_key(database_url)
    assert keys(aws) == {new: "Active"}
    # Deactivated with the new key, then deleted with it.
    (deactivate,) = wire.of("UpdateAccessKey")
    assert deactivate.params["AccessKeyId"] == prod["AccessKeyId"]
    assert deactivate.key_id == new and wire.of("DeleteAccessKey")[0].key_id == new
    exported = cli("audit", "export").out
    events = [json.loads(line) for line in exported.splitlines()]
    actions = [e["action"] for e in events if e["action"].startswith("integration.key")]
    assert actions == ["integration.key_switched", "integration.key_rotated"]
    assert prod["SecretAccessKey"] not in exported + result.out + result.err


def test_a_role_integration_and_a_user_with_two_keys_are_refused(cli, database_url, prod, aws):
    aws.create_access_key(UserName="roleup")
    two = cli("integrations", "rotate-credentials", "prod")
    assert two.code == 1 and "already has two access keys" in two.err
    assert len(keys(aws)) == 2
    role = "arn:aws:iam::123456789012:role/RoleUp"
    assert cli("integrations", "add", "staging", "--role-arn", role, "--no-validate").code == 0
    refused = cli("integrations", "rotate-credentials", "staging")
    assert refused.code == 1 and "nothing to rotate" in refused.err
