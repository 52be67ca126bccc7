"""Groups as a diff, grantable groups and policies from the store, Slack links, pagination."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from sqlalchemy import select

from bot.services import iam as iam_service
from bot.services import lifecycle
from bot.services.errors import GroupNotFound, InvalidGroupName, InvalidUsername
from storage.models import Account, AuditEvent, Group, ManagedPolicy, Membership


@pytest.fixture
def bob(iam):
    for group in ("developers", "readers", "admins"):
        iam.create_group(GroupName=group)
    iam.create_user(UserName="bob", Path="/")
    iam.add_user_to_group(UserName="bob", GroupName="developers")
    iam.add_user_to_group(UserName="bob", GroupName="readers")
    return "bob"


def groups_in_aws(iam, user="bob"):
    return sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"])


def test_current_groups_come_from_aws(core, make_integration, bob, aws_calls):
    integration = make_integration()
    assert lifecycle.current_groups(core, integration.id, "bob", actor="UREQ") == [
        "developers",
        "readers",
    ]
    assert aws_calls.writes == []


def test_set_groups_calls_aws_only_for_the_difference(core, make_integration, iam, bob, aws_calls):
    integration = make_integration()
    with core.sessions.begin() as session:
        session.add(Account(integration_id=integration.id, user_name="bob", path="/"))
    change = lifecycle.set_groups(
        core, integration.id, "bob", ["readers", "admins"], actor="UMGR", request_id="r1"
    )
    assert (change.added, change.removed) == (["admins"], ["developers"])
    assert aws_calls.writes == ["AddUserToGroup", "RemoveUserFromGroup"]
    assert groups_in_aws(iam) == ["admins", "readers"]
    with core.sessions() as session:
        account = session.scalars(select(Account)).one()
        names = session.scalars(
            select(Group.name).join(Membership).where(Membership.account_id == account.id)
        )
        assert sorted(names) == ["admins", "readers"]
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "iam.set_groups")
        ).one()
        assert event.detail == {"added": ["admins"], "removed": ["developers"]}


def test_setting_the_same_groups_writes_nothing(core, make_integration, bob, aws_calls):
    integration = make_integration()
    change = lifecycle.set_groups(
        core, integration.id, "bob", ["developers", "readers"], actor="U1"
    )
    assert (change.added, change.removed) == ([], [])
    assert aws_calls.writes == []


def test_an_unknown_group_undoes_the_part_already_applied(
    core, make_integration, iam, bob, aws_calls
):
    integration = make_integration()
    with pytest.raises(GroupNotFound) as caught:
        lifecycle.set_groups(core, integration.id, "bob", ["admins", "nope"], actor="U1")
    assert "nope" in str(caught.value)
    assert groups_in_aws(iam) == ["developers", "readers"]


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "a/b"])
def test_bad_group_names_are_refused_before_any_aws_call(
    core, make_integration, mocked_aws, aws_calls, bad
):
    integration = make_integration()
    with pytest.raises(InvalidGroupName):
        lifecycle.set_groups(core, integration.id, "bob", [bad], actor="U1")
    assert aws_calls.names == []


def test_grantable_groups_and_policy_search_read_the_store(core, make_integration, mocked_aws):
    integration = make_integration()
    other = make_integration("other")
    with core.sessions.begin() as session:
        session.add_all(
            [
                Group(integration_id=integration.id, name="readers"),
                Group(integration_id=integration.id, name="admins"),
                Group(integration_id=other.id, name="elsewhere"),
                ManagedPolicy(
                    integration_id=integration.id,
                    arn="arn:aws:iam::aws:policy/ReadOnlyAccess",
                    name="ReadOnlyAccess",
                    aws_managed=True,
                ),
                ManagedPolicy(
                    integration_id=integration.id,
                    arn="arn:aws:iam::123456789012:policy/team-readonly",
                    name="team-readonly",
                ),
                ManagedPolicy(
                    integration_id=integration.id,
                    arn="arn:aws:iam::123456789012:policy/100%_odd",
                    name="100%_odd",
                ),
            ]
        )
    assert lifecycle.grantable_groups(core, integration.id) == ["admins", "readers"]
    found = lifecycle.search_policies(core, integration.id, "READONLY")
    # The account's own policies first, then AWS managed ones.
    assert [p.name for p in found] == ["team-readonly", "ReadOnlyAccess"]
    assert [p.name for p in lifecycle.search_policies(core, integration.id, "%")] == ["100%_odd"]
    assert len(lifecycle.search_policies(core, integration.id, "", limit=2)) == 2
    assert lifecycle.search_policies(core, other.id, "read") == []


def test_link_tags_the_user_and_records_the_link(core, make_integration, iam, bob, aws_calls):
    integration = make_integration()
    other = make_integration("other")
    lifecycle.link_slack_user(core, integration.id, "bob", "U0BOB", actor="UADMIN")
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="bob")["Tags"]}
    assert tags == {"roleup:slack-user": "U0BOB"}
    lifecycle.link_slack_user(core, other.id, "bob", "U0BOB", actor="UADMIN")
    assert lifecycle.accounts_of_slack_user(core, "U0BOB") == [
        (integration.id, "bob"),
        (other.id, "bob"),
    ]
    assert lifecycle.accounts_of_slack_user(core, "U0NOBODY") == []


def test_link_refuses_a_malformed_slack_user(core, make_integration, mocked_aws, aws_calls):
    integration = make_integration()
    with pytest.raises(InvalidUsername) as caught:
        lifecycle.link_slack_user(core, integration.id, "bob", "<@U1>", actor="U1")
    assert caught.value.field == "slack_user"
    assert aws_calls.names == []


def test_lists_follow_every_page():
    """moto answers in one page; AWS pages at 100. Stubber feeds three pages."""
    client = boto3.client("iam", region_name="us-east-1")
    with Stubber(client) as stubber:
        pages = [["g1", "g2"], ["g3"], ["g4"]]
        for index, names in enumerate(pages):
            expected = {"UserName": "bob"}
            if index:
                expected["Marker"] = f"m{index}"
            response = {
                "Groups": [
                    {
                        "Path": "/",
                        "GroupName": n,
                        "GroupId": n.upper() * 8,
                        "Arn": f"arn:aws:iam::123456789012:group/{n}",
                        "CreateDate": "2024-01-01T00:00:00Z",
                    }
                    for n in names
                ],
                "IsTruncated": index < len(pages) - 1,
            }
            if index < len(pages) - 1:
                response["Marker"] = f"m{index + 1}"
            stubber.add_response("list_groups_for_user", response, expected)
        assert iam_service.groups_of(client, "bob") == ["g1", "g2", "g3", "g4"]
        stubber.assert_no_pending_responses()


def test_groups_end_to_end_against_a_moto_server(server_core, make_integration, moto_url):
    client = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")
    for group in ("developers", "admins"):
        client.create_group(GroupName=group)
    client.create_user(UserName="bob")
    integration = make_integration()
    lifecycle.set_groups(server_core, integration.id, "bob", ["admins"], actor="U1")
    assert lifecycle.current_groups(server_core, integration.id, "bob", actor="UREQ") == ["admins"]
    lifecycle.link_slack_user(server_core, integration.id, "bob", "U0BOB", actor="U1")
    assert lifecycle.accounts_of_slack_user(server_core, "U0BOB") == [(integration.id, "bob")]
