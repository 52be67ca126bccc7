"""Sync with IAM as untrusted input: link tags RoleUp did not write, values past the store's
columns, and a store that refuses the snapshot."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.services import iam_data, lifecycle
from bot.services.aws import AwsClients
from bot.services.errors import StoreRefused
from bot.services.offboard_requests import targets_of_slack_user
from bot.services.sync import sync_integration
from storage.models import Account, AuditEvent, Integration
from tests.support.synced_accounts import stored

LINK = "roleup:slack-user"


def link_of(core: Any, integration_id: int, user_name: str) -> str | None:
    with core.sessions() as session:
        return session.scalar(
            select(Account.slack_user_id).where(
                Account.integration_id == integration_id, Account.user_name == user_name
            )
        )


def whats(problems: list[Any]) -> list[tuple[str, str, str]]:
    return [(p.subject, p.what, p.value) for p in problems]


@pytest.fixture
def gaad(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Edits applied to every GetAccountAuthorizationDetails answer the sync reads, as if
    AWS (or whoever answers in its place) had sent them."""
    edits: list[Any] = []
    original = AwsClients._client

    def editing(self: AwsClients, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)

        def edit(parsed: dict[str, Any], **_: Any) -> None:
            for change in edits:
                change(parsed)

        # Once: the clients core.aws makes may share one botocore client.
        client.meta.events.register(
            "after-call.iam.GetAccountAuthorizationDetails", edit, unique_id=f"edit-{id(edits)}"
        )
        return client

    monkeypatch.setattr(AwsClients, "_client", editing)
    return edits


# --- link tags ---------------------------------------------------------------------------------
@pytest.mark.usefixtures("account")
def test_a_link_tag_changed_outside_roleup_is_reported_once_and_never_adopted(
    core, make_integration, iam
):
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)  # the first sync reads alice's tag: U0ALICE
    iam.tag_user(UserName="alice", Tags=[{"Key": LINK, "Value": "U0MALLORY"}])

    report = sync_integration(core, integration.id)
    assert link_of(core, integration.id, "alice") == "U0ALICE"
    assert whats(report.new_problems) == [
        ("alice", "conflicting link tag ignored: RoleUp linked it to U0ALICE", "U0MALLORY")
    ]
    assert lifecycle.accounts_of_slack_user(core, "U0MALLORY") == []
    again = sync_integration(core, integration.id)
    assert again.new_problems == [] and len(again.problems) == 1  # told once, still audited


@pytest.mark.usefixtures("account")
def test_a_link_tag_removed_outside_roleup_keeps_the_link_and_is_reported(
    core, make_integration, iam
):
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)
    iam.untag_user(UserName="alice", TagKeys=[LINK])
    report = sync_integration(core, integration.id)
    assert lifecycle.accounts_of_slack_user(core, "U0ALICE") == [(integration.id, "alice")]
    assert whats(report.new_problems) == [
        ("alice", "link tag removed outside RoleUp: still linked to U0ALICE", "")
    ]


@pytest.mark.usefixtures("account")
def test_a_link_tag_on_a_user_made_outside_roleup_after_the_first_sync_is_not_adopted(
    core, make_integration, iam
):
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)
    iam.create_user(UserName="dave", Path="/staff/", Tags=[{"Key": LINK, "Value": "U0ALICE"}])
    report = sync_integration(core, integration.id)
    assert link_of(core, integration.id, "dave") is None
    assert lifecycle.accounts_of_slack_user(core, "U0ALICE") == [(integration.id, "alice")]
    assert ("dave", "U0ALICE") in {(p.subject, p.value) for p in report.new_problems}
    # RoleUp's own link is taken, and is no longer reported.
    lifecycle.link_slack_user(core, integration.id, "dave", "U0DAVE", actor="UADMIN")
    after = sync_integration(core, integration.id)
    assert link_of(core, integration.id, "dave") == "U0DAVE"
    assert after.problems == []


@pytest.mark.parametrize(
    "value",
    ["U" + "A" * 40, "<!channel>", "<@U0ALICE>", "\u202eU0ALICE", "u0alice", "", "x" * 256],
)
def test_an_unreadable_link_tag_is_ignored_and_reported_and_the_sync_succeeds(
    core, make_integration, iam, value
):
    # "U" + 40 letters used to stop every sync on PostgreSQL (StringDataRightTruncation).
    iam.create_user(UserName="erin", Tags=[{"Key": LINK, "Value": value}])
    integration = make_integration()
    report = sync_integration(core, integration.id)
    assert link_of(core, integration.id, "erin") is None
    assert whats(report.new_problems) == [
        ("erin", "unreadable link tag ignored", iam_data.shown(value))
    ]
    with core.sessions() as session:
        assert session.get(Integration, integration.id).last_sync_status == "ok"


@pytest.mark.usefixtures("account")
def test_offboarding_a_person_names_the_accounts_only_a_tag_links_to_them(
    core, make_integration, iam
):
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)  # alice linked by her tag, read at the first sync
    lifecycle.link_slack_user(core, integration.id, "bob", "U0ALICE", actor="UADMIN")
    found = {t.user_name: t.tag_link for t in targets_of_slack_user(core, "U0ALICE")}
    assert found == {"alice": True, "bob": False}
    # RoleUp's own link confirms the tag's.
    lifecycle.link_slack_user(core, integration.id, "alice", "U0ALICE", actor="UADMIN")
    found = {t.user_name: t.tag_link for t in targets_of_slack_user(core, "U0ALICE")}
    assert found == {"alice": False, "bob": False}


# --- values past the columns, and a store that refuses -----------------------------------------
def hostile_user(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "UserName": name,
        "UserId": "AIDAHOSTILE0000000001",
        "Arn": f"arn:aws:iam::123456789012:user/{name}",
        "Path": "/",
        "Tags": [],
        "GroupList": [],
        "AttachedManagedPolicies": [],
        "UserPolicyList": [],
        **fields,
    }


@pytest.mark.usefixtures("account")
def test_a_bad_row_is_skipped_and_reported_and_the_rest_land(core, make_integration, gaad):
    def add(parsed: dict[str, Any]) -> None:
        parsed["UserDetailList"] += [
            hostile_user("x" * 65),
            hostile_user("mallory", Path="/" + "p" * 600 + "/"),
            hostile_user("trudy", GroupList=["g" * 129, "developers"]),
            hostile_user("zed", Tags=[{"Key": "note", "Value": "<!channel>\x00" * 40}]),
        ]
        parsed["GroupDetailList"].append({"GroupName": "<!here>", "GroupId": "X", "Arn": "arn:x"})

    gaad.append(add)
    integration = make_integration()
    report = sync_integration(core, integration.id)
    accounts, memberships = stored(core, integration.id)
    assert sorted(accounts) == ["alice", "bob", "carol", "trudy", "zed"]
    assert ("trudy", "developers") in memberships
    assert len(accounts["zed"].tags["note"]) == 256
    assert [(p.subject, p.what) for p in report.problems] == [
        ("x" * 65, "user skipped: its name is not one IAM allows"),
        ("mallory", "user skipped: its path is not one IAM allows"),
        ("trudy", "group ignored: not a name IAM allows"),
        ("zed", "tag value cut to 256 characters"),
        ("<!here>", "group skipped: its name is not one IAM allows"),
    ]
    with core.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "sync")).one()
        assert event.detail["problem_count"] == 5


@pytest.mark.usefixtures("account")
def test_a_store_error_fails_the_sync_plainly_audited_and_keeps_the_previous_snapshot(
    core, make_integration, iam, gaad, monkeypatch, caplog
):
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)
    iam.create_user(UserName="dave", Path="/staff/")
    # A group with no name gets past a validation told to let everything through: the store's
    # NOT NULL constraint refuses it.
    monkeypatch.setattr(iam_data, "check_identity", lambda *args: True)
    gaad.append(lambda parsed: parsed["GroupDetailList"].append({"GroupName": None}))

    with pytest.raises(StoreRefused) as refused:
        sync_integration(core, integration.id, actor="UADMIN")
    reason = str(refused.value)
    assert reason == (
        "The store could not save the sync of prod (a row it refused, or another sync at the "
        "same time); the previous snapshot is kept."
    )
    accounts, _ = stored(core, integration.id)
    assert sorted(accounts) == ["alice", "bob"]
    with core.sessions() as session:
        row = session.get(Integration, integration.id)
        assert (row.last_sync_status, row.last_sync_error) == ("failed", reason)
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "sync").order_by(AuditEvent.id.desc())
        ).first()
        assert (event.actor, event.outcome, event.detail) == (
            "UADMIN",
            "failed",
            {"error": reason},
        )
    assert "insert" not in caplog.text.lower()  # the statement is not logged either
