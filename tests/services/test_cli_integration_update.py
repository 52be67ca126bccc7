"""`roleup integrations update NAME`, as an operator runs it: only what is given changes, every
change is audited as `field: old → new`, new credentials are checked with AWS before saving."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import create_core
from bot.services import approvals, integrations
from bot.settings import Settings
from storage.models import AccountExpiry, AuditEvent, Grant, utcnow
from tests.support.cli_integrations import SECRET, add_key, rows_containing_secret
from tests.support.config import TEST_KEY
from tests.support.requests import submit_request

ROLE = "arn:aws:iam::123456789012:role/RoleUp"


def opened(database_url: str):
    return create_core(Settings(database_url=database_url, encryption_keys=(TEST_KEY,)))


def stored(database_url: str, name: str = "prod"):
    core = opened(database_url)
    try:
        with core.sessions() as s:
            return integrations.get_integration(s, name)
    finally:
        core.engine.dispose()


def stored_pair(database_url: str, name: str = "prod") -> dict[str, str]:
    core = opened(database_url)
    try:
        return core.aws.credentials_for(stored(database_url, name), core.require_box())
    finally:
        core.engine.dispose()


def update_events(database_url: str) -> list[dict]:
    core = opened(database_url)
    try:
        with core.sessions() as s:
            rows = s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "integration.updated")
                .order_by(AuditEvent.id)
            )
            return [{"actor": e.actor, **e.detail} for e in rows]
    finally:
        core.engine.dispose()


def test_only_what_is_given_changes_and_each_change_is_audited_old_to_new(cli, database_url):
    add = add_key(
        cli, "prod", "--path-prefix", "/eng/", "--managers", "U1", "--approvers", "U3",
        "--approvals-channel", "C9", "--approve-onboarding",
    )  # fmt: skip
    assert add.code == 0, add.err
    result = cli(
        "integrations", "update", "prod", "--managers", "U1,S2", "--approvers", "",
        "--approvals-channel", "", "--no-approve-onboarding", "--approve-group-grants",
        "--require-reason", "--approvals-required", "2", "--sync-interval", "60",
        "--privileged-policies", "AdministratorAccess,arn:aws:iam::aws:policy/ReadOnlyAccess",
        "--privileged-groups", "admins", "--breakglass", "U5", "--clear-path-prefix",
        "--rotate-every", "90", "--no-validate",
    )  # fmt: skip
    assert result.code == 0, result.err
    integration = stored(database_url)
    assert integration.managers == ["U1", "S2"] and integration.approvers == []
    assert integration.approvals_channel is None and integration.path_prefix == "/"
    assert not integration.approve_onboarding and integration.approve_group_grants
    assert integration.require_reason and integration.approvals_required == 2
    assert integration.sync_interval_minutes == 60 and integration.breakglass == ["U5"]
    assert integration.privileged_policies == [
        "AdministratorAccess",
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
    ]
    assert integration.privileged_groups == ["admins"] and integration.rotate_every_days == 90
    # Untouched: the key and the mode.
    assert integration.access_key_hint == "AKIA…MPLE" and not integration.read_only
    assert stored_pair(database_url)["aws_secret_access_key"] == SECRET
    lines = result.out.splitlines()
    assert lines[0] == "updated integration prod:"
    assert "  managers: U1 → U1, S2" in lines
    assert "  approvers: U3 → none" in lines
    assert "  approve onboarding: yes → no" in lines
    assert "  path prefix: /eng/ → /" in lines
    (event,) = update_events(database_url)
    assert event["actor"].startswith("cli:")
    assert event["changes"] == [line.strip() for line in lines[1:]]
    # Given again, nothing changes and nothing is audited.
    again = cli("integrations", "update", "prod", "--managers", "U1,S2", "--no-validate")
    assert (again.code, again.out) == (0, "integration prod: nothing to change\n")
    assert len(update_events(database_url)) == 1
    listed = json.loads(cli("integrations", "list", "--json").out)
    assert listed["privileged_groups"] == ["admins"] and listed["rotate_every_days"] == 90


def test_a_new_key_is_checked_with_aws_saved_sealed_and_audited_as_replaced(
    cli, database_url, iam, caplog
):
    iam.create_user(UserName="roleup")
    old = iam.create_access_key(UserName="roleup")["AccessKey"]
    new = iam.create_access_key(UserName="roleup")["AccessKey"]
    assert add_key(cli, "prod", "--no-validate").code == 0  # the fixture's key, never used
    result = cli(
        "integrations", "update", "prod", "--access-key-id", new["AccessKeyId"],
        stdin=new["SecretAccessKey"] + "\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    pair = stored_pair(database_url)
    assert pair == {
        "aws_access_key_id": new["AccessKeyId"],
        "aws_secret_access_key": new["SecretAccessKey"],
    }
    integration = stored(database_url)
    assert integration.principal_arn == "arn:aws:iam::123456789012:user/roleup"
    (event,) = update_events(database_url)
    hint = f"{new['AccessKeyId'][:4]}…{new['AccessKeyId'][-4:]}"
    assert event["changes"] == [
        f"credentials: key AKIA…MPLE → key {hint}",
        "secret access key: replaced",
    ]
    everything = result.out + result.err + caplog.text + json.dumps(event)
    assert new["SecretAccessKey"] not in everything and old["SecretAccessKey"] not in everything
    core = opened(database_url)
    try:
        from tests.support.secrets import rows_containing

        assert rows_containing(core.engine, new["SecretAccessKey"]) == []
    finally:
        core.engine.dispose()
    assert rows_containing_secret(database_url) == []  # the old secret is gone


def test_a_replacement_that_fails_validation_saves_nothing_and_the_old_key_stays_in_use(
    cli, database_url, iam, monkeypatch
):
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin

    iam.create_user(UserName="roleup")
    iam.put_user_policy(
        UserName="roleup",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    old = iam.create_access_key(UserName="roleup")["AccessKey"]
    added = cli(
        "integrations", "add", "prod", "--access-key-id", old["AccessKeyId"],
        stdin=old["SecretAccessKey"] + "\n",
    )  # fmt: skip
    assert added.code == 0, added.err
    before = stored(database_url)
    # From now on moto checks signatures as AWS does: a wrong secret is refused.
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    wrong = "x" * 40
    result = cli(
        "integrations", "update", "prod", "--access-key-id", "AKIAIOSFODNN7WRONG00",
        "--managers", "U9", stdin=wrong + "\n",
    )  # fmt: skip
    assert result.code == 1
    last = result.err.strip().splitlines()[-1]  # after the INFO lines the CLI logs
    assert last.startswith("roleup: ") and "rejected the integration's credentials" in last
    assert wrong not in result.err
    after = stored(database_url)
    assert after.credentials_ciphertext == before.credentials_ciphertext
    assert after.managers == before.managers == []
    assert update_events(database_url) == []
    # The old key is still the one used: a sync signed with it succeeds.
    synced = cli("sync", "--integration", "prod")
    assert synced.code == 0, synced.err
    assert stored_pair(database_url)["aws_access_key_id"] == old["AccessKeyId"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--managers", "alice"], "Slack user"),
        (["--approvers", "<!channel>"], "Slack user"),
        (["--breakglass", "U" + "A" * 10_000], "Slack user"),
        (["--path-prefix", "eng"], "start and end"),
        (["--path-prefix", "/" + "a" * 600 + "/"], "at most 512"),
        (["--sync-interval", "0"], "1 to 1440"),
        (["--approvals-required", "4"], "1 to 3"),
        (["--approvals-channel", "#general"], "channel id"),
        (["--privileged-policies", "Admin Access"], "Privileged policies must be IAM names"),
        (["--privileged-groups", "a\u202egroup"], "Privileged groups must be IAM names"),
        (["--privileged-groups", ",".join(f"g{i}" for i in range(101))], "At most 100"),
        (["--rotate-every", "-1"], "1 to 365"),
        (["--rotate-every", "366"], "1 to 365"),
        (["--role-arn", "arn:aws:iam::1:role/x"], "role ARN must look like"),
        (["--external-id", "x1"], "with --role-arn"),
    ],
)
def test_bad_or_hostile_values_exit_1_with_one_line_and_change_nothing(
    cli, database_url, argv, words
):
    assert add_key(cli, "prod", "--managers", "U1").code == 0
    before = stored(database_url)
    result = cli("integrations", "update", "prod", *argv, "--no-validate")
    assert result.code == 1
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert result.err.startswith("roleup: ") and words in result.err
    assert len(result.err) < 400  # an oversized value is not echoed back whole
    after = stored(database_url)
    assert after.managers == ["U1"] and after.path_prefix == before.path_prefix
    assert update_events(database_url) == []


def test_an_unknown_integration_and_rotation_of_a_role_are_refused(cli, database_url):
    missing = cli("integrations", "update", "nope", "--managers", "U1", "--no-validate")
    assert missing.code == 1 and "There is no integration named nope" in missing.err
    assert cli("integrations", "add", "staging", "--role-arn", ROLE, "--no-validate").code == 0
    role = cli("integrations", "update", "staging", "--rotate-every", "30", "--no-validate")
    assert role.code == 1 and "a role has nothing to rotate" in role.err


def test_switching_to_a_role_drops_the_key_and_its_schedule(cli, database_url):
    assert add_key(cli, "prod", "--rotate-every", "30").code == 0
    result = cli(
        "integrations", "update", "prod", "--role-arn", ROLE, "--external-id", "ext-1",
        "--no-validate",
    )  # fmt: skip
    assert result.code == 0, result.err
    integration = stored(database_url)
    assert integration.role_arn == ROLE and integration.credentials_ciphertext is None
    assert integration.access_key_hint is None and integration.rotate_every_days is None
    assert integration.external_id_ciphertext and "ext-1" not in integration.external_id_ciphertext
    (event,) = update_events(database_url)
    assert event["changes"] == [
        "rotate every days: 30 → none",
        f"credentials: key AKIA…MPLE → role {ROLE}",
        "external id: replaced",
    ]
    assert rows_containing_secret(database_url) == []


def test_turning_read_only_fails_the_pending_requests_it_would_refuse(cli, database_url):
    assert add_key(cli, "prod", "--approvers", "U3").code == 0
    core = opened(database_url)
    try:
        integration_id = stored(database_url).id
        offboarding = submit_request(
            core,
            kind="offboard",
            integration_id=integration_id,
            requester="UMANAGER",
            payload={
                "target": "alice",
                "accounts": [{"integration_id": integration_id, "user_name": "alice"}],
            },
        )
        removal = submit_request(
            core,
            kind="remove_integration",
            integration_id=integration_id,
            requester="UMANAGER",
            payload={},
        )
        result = cli("integrations", "update", "prod", "--read-only", "--no-validate")
        assert result.code == 0, result.err
        assert "  read only: no → yes" in result.out.splitlines()
        assert f"failed 1 pending request that would now be refused: {offboarding.id}" in (
            result.out
        )
        failed = approvals.load(core, offboarding.id)
        assert failed.state == approvals.FAILED
        assert failed.outcome.startswith("Integration prod was made read-only")
        assert approvals.load(core, removal.id).state == approvals.PENDING
        # Never approved, so never retried: a Retry would run what nobody approved.
        with pytest.raises(approvals.RequestConflict, match="failed before it was approved"):
            approvals.retry(core, offboarding.id, approver="U3")
    finally:
        core.engine.dispose()


def test_read_only_is_refused_while_a_grant_runs_or_an_account_is_set_to_expire_on_it(
    cli, database_url
):
    """A read-only integration could not remove the membership when the grant ends: it would
    stay forever. The grant ends first; then the integration turns read-only."""
    assert add_key(cli, "prod").code == 0
    core = opened(database_url)
    try:
        now = utcnow()
        with core.sessions.begin() as s:
            grant = Grant(
                integration_id=stored(database_url).id,
                user_name="alice",
                group_name="admins",
                requester="UMANAGER",
                starts_at=now,
                ends_at=now + timedelta(hours=4),
                state="active",
            )
            s.add(grant)
            s.flush()
            grant_id = grant.id
        refused = cli("integrations", "update", "prod", "--read-only", "--no-validate")
        assert refused.code == 1
        assert f"1 time-bound grant(s) still running (#{grant_id})" in refused.err
        assert "roleup grants end" in refused.err
        assert stored(database_url).read_only is False
        assert update_events(database_url) == []

        # An account set to expire could not be offboarded at its date either.
        with core.sessions.begin() as s:
            s.get_one(Grant, grant_id).state = "ended"
            expiry = AccountExpiry(
                integration_id=stored(database_url).id,
                user_name="carol",
                requester="UMANAGER",
                expires_at=now + timedelta(days=30),
                state="scheduled",
            )
            s.add(expiry)
            s.flush()
            expiry_id = expiry.id
        refused = cli("integrations", "update", "prod", "--read-only", "--no-validate")
        assert refused.code == 1
        assert "1 account(s) set to expire (carol)" in refused.err
        assert stored(database_url).read_only is False

        with core.sessions.begin() as s:
            s.get_one(AccountExpiry, expiry_id).state = "ended"
        done = cli("integrations", "update", "prod", "--read-only", "--no-validate")
        assert done.code == 0, done.err
        assert stored(database_url).read_only is True
    finally:
        core.engine.dispose()
