"""Sync: the snapshot within the prefix, in one transaction, with drift told apart by origin."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import boto3
import pytest
from sqlalchemy import select

from bot.cli import main as cli_main
from bot.cli_sync import ProgressLine
from bot.services import lifecycle
from bot.services.errors import AwsUnavailable
from bot.services.lifecycle import OnboardSpec
from bot.services.sync import fetch_snapshot, sync_integration
from storage.models import (
    AttachedPolicy,
    AuditEvent,
    Integration,
    ManagedPolicy,
)
from tests.support.config import TEST_KEY
from tests.support.synced_accounts import stored


def test_first_sync_stores_users_within_the_prefix_with_everything(
    core, make_integration, account, aws_calls
):
    integration = make_integration(path_prefix="/staff/")
    report = sync_integration(core, integration.id, actor="UADMIN")

    assert report.first_sync is True
    assert report.summary() == "prod: 2 accounts, 2 groups (first sync)."
    accounts, memberships = stored(core, integration.id)
    assert sorted(accounts) == ["alice", "bob"]  # carol is outside /staff/
    alice = accounts["alice"]
    assert alice.path == "/staff/"
    assert alice.slack_user_id == "U0ALICE"
    assert alice.tags == {"roleup:slack-user": "U0ALICE"}
    assert alice.inline_policies == ["extra"]
    assert alice.created_at is not None
    assert alice.arn.endswith(":user/staff/alice")
    assert memberships == {("alice", "developers"), ("bob", "readers")}
    with core.sessions() as session:
        attached = session.execute(
            select(AttachedPolicy.policy_name, AttachedPolicy.account_id, AttachedPolicy.group_id)
        ).all()
        assert {(name, acc is not None, grp is not None) for name, acc, grp in attached} == {
            ("s3-read", True, False),
            ("s3-read", False, True),
        }
        catalogue = session.scalars(select(ManagedPolicy.name)).all()
        assert "s3-read" in catalogue
        row = session.get(Integration, integration.id)
        assert row.last_sync_status == "ok"
        assert row.last_sync_at is not None
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "sync")).one()
        assert (event.actor, event.outcome, event.detail["accounts"]) == ("UADMIN", "ok", 2)
    assert aws_calls.writes == []
    assert aws_calls.names.count("GetAccountAuthorizationDetails") == 1
    assert lifecycle.accounts_of_slack_user(core, "U0ALICE") == [(integration.id, "alice")]


def test_drift_tells_outside_changes_from_this_apps(core, make_integration, iam, account):
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)

    # Outside RoleUp: a user created, one deleted, one regrouped.
    iam.create_user(UserName="dave", Path="/staff/")
    iam.remove_user_from_group(UserName="bob", GroupName="readers")
    iam.delete_user(UserName="bob")
    iam.add_user_to_group(UserName="alice", GroupName="readers")
    # Through RoleUp: one onboarded.
    lifecycle.onboard(
        core,
        integration.id,
        OnboardSpec(username="erin", password="Tr0ub4dor&3-horse", created_by="UMGR"),
        actor="UMGR",
    )

    report = sync_integration(core, integration.id)
    assert [(d.user_name, d.by_app) for d in report.added] == [("dave", False), ("erin", True)]
    assert [(d.user_name, d.by_app) for d in report.removed] == [("bob", False)]
    (changed,) = report.changed
    assert (changed.user_name, changed.by_app) == ("alice", False)
    assert changed.groups_added == ["readers"]
    assert [d.user_name for d in report.outside_changes()] == ["dave", "bob", "alice"]
    assert report.summary() == (
        "prod: 3 accounts, 2 groups; drift: 2 added, 1 removed, 1 changed (3 outside RoleUp)."
    )
    again = sync_integration(core, integration.id)
    assert again.summary() == "prod: 3 accounts, 2 groups; no drift."


def test_group_changes_and_offboarding_by_the_app_are_marked_as_such(
    core, make_integration, account
):
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)
    lifecycle.set_groups(core, integration.id, "alice", ["readers"], actor="UMGR")
    lifecycle.offboard(core, integration.id, "bob", actor="UMGR")
    report = sync_integration(core, integration.id)
    assert [(d.user_name, d.kind, d.by_app) for d in report.changed + report.removed] == [
        ("alice", "changed", True),
        ("bob", "removed", True),
    ]
    assert report.outside_changes() == []


def test_a_failed_sync_leaves_the_previous_snapshot_intact(
    core, make_integration, iam, account, aws_calls
):
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)
    iam.create_user(UserName="dave", Path="/staff/")
    aws_calls.fail("ListPolicies", "ServiceUnavailable")
    with pytest.raises(AwsUnavailable):
        sync_integration(core, integration.id)
    accounts, _ = stored(core, integration.id)
    assert sorted(accounts) == ["alice", "bob"]
    with core.sessions() as session:
        row = session.get(Integration, integration.id)
        assert row.last_sync_status == "failed"
        assert "unavailable" in row.last_sync_error
        outcomes = session.scalars(
            select(AuditEvent.outcome).where(AuditEvent.action == "sync").order_by(AuditEvent.id)
        ).all()
        assert outcomes == ["ok", "failed"]


def test_a_re_added_integration_recovers_its_links_from_tags(core, make_integration, account):
    first = make_integration("first", path_prefix="/staff/")
    lifecycle.link_slack_user(core, first.id, "bob", "U0BOB", actor="UADMIN")
    with core.sessions.begin() as session:
        session.delete(session.get(Integration, first.id))
    again = make_integration("again", path_prefix="/staff/")
    sync_integration(core, again.id)
    assert lifecycle.accounts_of_slack_user(core, "U0BOB") == [(again.id, "bob")]
    assert lifecycle.accounts_of_slack_user(core, "U0ALICE") == [(again.id, "alice")]


def test_read_only_integrations_sync_without_a_single_write(
    core, make_integration, account, aws_calls
):
    integration = make_integration(read_only=True)
    report = sync_integration(core, integration.id)
    assert report.accounts == 3
    assert aws_calls.writes == []


def page_user(name: str, path: str = "/") -> dict:
    return {
        "Path": path,
        "UserName": name,
        "UserId": f"AIDA{name.upper():0<17}"[:21],
        "Arn": f"arn:aws:iam::123456789012:user{path}{name}",
        "CreateDate": datetime(2024, 1, 1, tzinfo=UTC),
        "GroupList": ["g"],
        "AttachedManagedPolicies": [],
        "UserPolicyList": [],
        "Tags": [],
    }


class PagedIam:
    """AWS-style pages with Markers (moto answers in one page), queued per operation: the three
    lists run concurrently, so only the order within one list is fixed. Checks each call's
    parameters, as Stubber would."""

    def __init__(self) -> None:
        self.pages: dict[str, list[tuple[dict, dict]]] = {}

    def add(self, operation: str, response: dict, expected: dict) -> None:
        self.pages.setdefault(operation, []).append((expected, response))

    def __getattr__(self, operation: str):
        def answer(**params):
            expected, response = self.pages[operation].pop(0)
            assert params == expected, operation
            return response

        return answer


def test_every_page_of_every_list_is_read():
    client = PagedIam()
    integration = Integration(name="prod", path_prefix="/staff/", read_only=False)
    used = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    gaad = [
        [page_user("u1", "/staff/"), page_user("out", "/other/")],
        [page_user("u2", "/staff/")],
        [page_user("u3", "/staff/x/")],
    ]
    for index, users in enumerate(gaad):
        expected = {"Filter": ["User", "Group"], "MaxItems": 1000}
        if index:
            expected["Marker"] = f"g{index}"
        response = {
            "UserDetailList": users,
            "GroupDetailList": [] if index else [{"GroupName": "g", "GroupId": "AGPA" * 5}],
            "IsTruncated": index < 2,
        }
        if index < 2:
            response["Marker"] = f"g{index + 1}"
        client.add("get_account_authorization_details", response, expected)
    client.add(
        "list_users",
        {
            "Users": [{**_bare(page_user("u1", "/staff/")), "PasswordLastUsed": used}],
            "IsTruncated": True,
            "Marker": "l1",
        },
        {"PathPrefix": "/staff/", "MaxItems": 1000},
    )
    client.add(
        "list_users",
        {"Users": [_bare(page_user("u2", "/staff/"))], "IsTruncated": False},
        {"PathPrefix": "/staff/", "MaxItems": 1000, "Marker": "l1"},
    )
    client.add(
        "list_policies",
        {"Policies": [{"PolicyName": "ReadOnlyAccess", "Arn": _aws_policy}]},
        {"Scope": "All", "MaxItems": 1000},
    )
    seen: list[tuple[str, int]] = []
    snapshot = fetch_snapshot(client, integration, lambda s, n: seen.append((s, n)))
    assert all(not pages for pages in client.pages.values())  # every page was asked for
    assert sorted(snapshot.users) == ["u1", "u2", "u3"]
    assert snapshot.users["u1"].password_last_used == used
    assert snapshot.users["u2"].password_last_used is None
    assert snapshot.calls == 6
    assert seen == [("pages", n) for n in range(1, 7)]  # told as they come, only growing
    assert snapshot.policies == [(_aws_policy, "ReadOnlyAccess", True)]


_aws_policy = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def _bare(user: dict) -> dict:
    return {k: user[k] for k in ("Path", "UserName", "UserId", "Arn", "CreateDate")}


def test_sync_end_to_end_against_a_moto_server(server_core, make_integration, moto_url):
    client = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")
    client.create_group(GroupName="developers")
    client.create_user(UserName="alice", Path="/staff/")
    client.add_user_to_group(UserName="alice", GroupName="developers")
    integration = make_integration(path_prefix="/staff/")
    report = sync_integration(server_core, integration.id)
    assert report.accounts == 1
    assert lifecycle.grantable_groups(server_core, integration.id) == ["developers"]


@pytest.fixture
def cli_env(monkeypatch, database_url, moto_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ROLEUP_ENCRYPTION_KEYS", TEST_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url


def test_roleup_sync_prints_one_summary_line_per_integration(cli_env, make_integration, capsys):
    client = boto3.client("iam", endpoint_url=cli_env, region_name="us-east-1")
    client.create_user(UserName="alice", Path="/")
    make_integration("prod")
    make_integration("staging")
    assert cli_main(["sync"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "prod: 1 accounts, 0 groups (first sync).",
        "staging: 1 accounts, 0 groups (first sync).",
    ]
    client.create_user(UserName="bob", Path="/")
    assert cli_main(["sync", "--integration", "prod"]) == 0
    assert capsys.readouterr().out.strip() == (
        "prod: 2 accounts, 0 groups; drift: 1 added (1 outside RoleUp)."
    )


def test_roleup_sync_of_an_unknown_integration_is_one_line(cli_env, make_integration, capsys):
    make_integration("prod")
    assert cli_main(["sync", "--integration", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["roleup: There is no integration named nope."]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_counts_pages_and_accounts_on_a_terminal_only():
    terminal = Terminal()
    meter = ProgressLine("prod", terminal)
    meter.update("pages", 1)
    meter.update("pages", 2)
    meter.update("accounts", 2500)
    meter.clear()
    frames = terminal.getvalue().split("\r")
    assert frames[1:4] == [
        "prod: 1 pages fetched, 0 accounts written",
        "prod: 2 pages fetched, 0 accounts written",
        "prod: 2 pages fetched, 2500 accounts written",
    ]
    piped = io.StringIO()
    quiet = ProgressLine("prod", piped)
    quiet.update("pages", 1)
    quiet.clear()
    assert piped.getvalue() == ""
