"""Access reviews, the campaign model with an injected clock: start (one credential report, every
account of the prefix frozen and flagged), decisions (once, by the integration's managers, never
on their own account), reminders every 3 days, close with its summary, drift, the export."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.services import (
    approvals,
    review_decisions,
    review_export,
    review_jobs,
    review_start,
    reviews,
)
from bot.services.errors import NotAllowed, RequestConflict
from bot.services.sync import sync_integration
from storage.models import (
    AuditEvent,
    Integration,
    Request,
    ReviewCampaign,
    utcnow,
)
from tests.support.reviews import MANAGER, OTHER, item_id, items
from tests.support.seed import add_integration


def test_a_campaign_freezes_every_account_of_the_prefix_from_one_credential_report(
    core, company, aws_calls
):
    later = utcnow() + timedelta(days=100)  # the key is then older than 90 days
    started = review_start.start_campaign(core, integration_id=company, actor=MANAGER, now=later)

    assert (started.integration, started.items, started.due_at) == (
        "prod",
        3,
        later + timedelta(days=14),
    )
    # One bulk report, no call per user.
    assert aws_calls.names.count("GetCredentialReport") == 1
    assert not {"GetUser", "ListAccessKeys", "GetLoginProfile", "ListMFADevices"} & set(
        aws_calls.names
    )
    frozen = items(core, started.campaign_id)
    assert sorted(frozen) == ["alice", "bob", "carol"]  # robot is outside /people/
    alice, bob, carol = frozen["alice"], frozen["bob"], frozen["carol"]
    assert alice.groups == ["developers"]
    assert alice.evidence["password_enabled"] is True
    assert alice.evidence["mfa_active"] is False
    assert len(alice.evidence["keys"]) == 1
    assert set(alice.flags) == {
        reviews.NEVER_USED,
        reviews.NO_MFA,
        reviews.OLD_KEY,
        reviews.NOT_LINKED,
    }
    assert bob.slack_user_id == MANAGER and bob.flags == [reviews.NEVER_USED]
    assert carol.groups == ["admins", "developers"]
    assert reviews.PRIVILEGED in carol.flags
    with core.sessions() as session:
        campaign = session.get(ReviewCampaign, started.campaign_id)
        assert (campaign.state, campaign.items_total) == ("open", 3)
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "review.started"))
        assert event.detail["items"] == 3 and event.actor == MANAGER


def test_a_second_open_campaign_is_refused_naming_the_first(core, company):
    first = review_start.start_campaign(core, integration_id=company, actor=MANAGER)
    with pytest.raises(RequestConflict, match=f"Access review #{first.campaign_id} of prod"):
        review_start.start_campaign(core, integration_id=company, actor=OTHER)
    review_jobs.close(core, first.campaign_id)
    second = review_start.start_campaign(core, integration_id=company, actor=OTHER)
    assert second.campaign_id != first.campaign_id


def test_decisions_are_made_once_by_managers_never_on_their_own_account(core, company):
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    alice, bob = item_id(core, campaign, "alice"), item_id(core, campaign, "bob")

    kept = review_decisions.keep(core, alice, reviewer=MANAGER, note="still on the team")
    assert kept.text == "Kept alice in prod."
    with pytest.raises(RequestConflict, match="alice was already decided: keep by <@UMANAGER>"):
        review_decisions.keep(core, alice, reviewer=OTHER)
    # bob is linked to the manager: the other manager decides him.
    with pytest.raises(NotAllowed, match="linked to you, so another reviewer decides it"):
        review_decisions.offboard(core, bob, reviewer=MANAGER)
    # Someone who manages another integration only is not a reviewer of this one.
    add_integration(core, name="staging", managers=["USTRANGER"])
    with pytest.raises(NotAllowed, match="Only the managers of integration prod"):
        review_decisions.keep(core, bob, reviewer="USTRANGER")

    page = reviews.open_items_for(core, MANAGER)
    assert [i.user_name for i in page.items] == ["carol"]  # flagged, undecided, not his own
    assert reviews.open_items_for(core, OTHER).total == 2

    with core.sessions() as session:
        refusals = session.scalars(
            select(AuditEvent.actor).where(AuditEvent.action == "review.refused")
        ).all()
    assert sorted(refusals) == [MANAGER, "USTRANGER"]


def test_remove_and_offboard_raise_ordinary_requests_linked_to_the_item(core, company, iam):
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    carol, bob = item_id(core, campaign, "carol"), item_id(core, campaign, "bob")

    removed = review_decisions.remove_from_groups(core, carol, reviewer=MANAGER, groups=["admins"])
    offboarded = review_decisions.offboard(core, bob, reviewer=OTHER)

    assert removed.request_state == "pending"  # a removal waits for an approver
    assert offboarded.request_state == "pending"
    with core.sessions() as session:
        set_groups = session.get(Request, removed.request_id)
        assert (set_groups.kind, set_groups.requester) == ("set_groups", MANAGER)
        assert set_groups.payload["removed"] == ["admins"]
        assert set_groups.payload["added"] == []
        assert set_groups.reason == f"Access review #{campaign}: remove from admins"
        assert session.get(Request, offboarded.request_id).kind == "offboard"
    frozen = items(core, campaign)
    assert frozen["carol"].request_id == removed.request_id
    assert frozen["carol"].removed_groups == ["admins"]
    assert frozen["bob"].request_id == offboarded.request_id
    # Nothing happened in AWS before an approver said yes.
    assert {g["GroupName"] for g in iam.list_groups_for_user(UserName="carol")["Groups"]} == {
        "admins",
        "developers",
    }
    approvals.decide(core, removed.request_id, approver="UAPPROVER", approve=True)
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="carol")["Groups"]] == [
        "developers"
    ]


def test_closing_at_the_due_date_sums_up_and_freezes_every_decision(core, company):
    start = utcnow()
    campaign = review_start.start_campaign(
        core, integration_id=company, actor=MANAGER, due_days=7, now=start
    ).campaign_id
    review_decisions.keep(core, item_id(core, campaign, "alice"), reviewer=MANAGER, now=start)
    review_decisions.offboard(core, item_id(core, campaign, "bob"), reviewer=OTHER)

    assert review_jobs.close_due(core, now=start + timedelta(days=6)) == []
    closed = review_jobs.close_due(core, now=start + timedelta(days=7))
    assert len(closed) == 1
    summary = closed[0]
    assert (summary.total, summary.kept, summary.removed, summary.offboarded) == (3, 1, 0, 1)
    assert summary.undecided == ["carol"]
    assert summary.approvals_channel == "CAPPROVALS"
    assert review_jobs.close_due(core, now=start + timedelta(days=8)) == []  # once

    with pytest.raises(RequestConflict, match="is closed: its decisions can no longer change"):
        review_decisions.keep(core, item_id(core, campaign, "carol"), reviewer=MANAGER)
    assert items(core, campaign)["carol"].decision is None
    assert reviews.open_items_for(core, MANAGER).total == 0


def test_reviewers_are_reminded_every_three_days_until_the_due_date(core, company):
    start = utcnow()
    campaign = review_start.start_campaign(
        core, integration_id=company, actor=MANAGER, due_days=8, now=start
    ).campaign_id
    assert review_jobs.remind_due(core, now=start + timedelta(days=2)) == []
    first = review_jobs.remind_due(core, now=start + timedelta(days=3))
    assert [(r.campaign_id, r.open_items) for r in first] == [(campaign, 3)]
    assert review_jobs.remind_due(core, now=start + timedelta(days=3, hours=1)) == []
    review_decisions.keep(core, item_id(core, campaign, "alice"), reviewer=MANAGER)
    second = review_jobs.remind_due(core, now=start + timedelta(days=6))
    assert [r.open_items for r in second] == [2]
    assert review_jobs.remind_due(core, now=start + timedelta(days=9)) == []  # due at day 8


def test_an_integration_on_a_schedule_starts_its_campaigns_by_itself(core, company):
    with core.sessions.begin() as session:
        row = session.get(Integration, company)
        row.review_every_days = 90
        added = row.created_at
    assert review_jobs.start_scheduled(core, now=added + timedelta(days=89)) == []
    started = review_jobs.start_scheduled(core, now=added + timedelta(days=90))
    assert [s.items for s in started] == [3]
    # Open: not started again; closed: the next one 90 days after this one started.
    assert review_jobs.start_scheduled(core, now=added + timedelta(days=91)) == []
    review_jobs.close(core, started[0].campaign_id)
    assert review_jobs.start_scheduled(core, now=added + timedelta(days=179)) == []
    assert len(review_jobs.start_scheduled(core, now=added + timedelta(days=180))) == 1


def test_an_account_deleted_outside_roleup_shows_so_on_its_item(core, company, iam):
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    iam.remove_user_from_group(GroupName="developers", UserName="alice")
    iam.delete_login_profile(UserName="alice")
    for key in iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName="alice")
    iam.remove_user_from_group(GroupName="admins", UserName="carol")
    sync_integration(core, company, actor="test")
    frozen = items(core, campaign)
    assert frozen["alice"].drift == "gone since the campaign started"
    assert frozen["carol"].drift == "changed outside RoleUp since the campaign started: -admins"
    assert frozen["carol"].groups == ["admins", "developers"]  # the frozen access stays
    assert frozen["bob"].drift is None


def test_the_export_has_one_row_per_item_with_every_decision(core, company):
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    review_decisions.keep(
        core, item_id(core, campaign, "alice"), reviewer=MANAGER, note="=cmd|' /C calc"
    )
    offboarded = review_decisions.offboard(core, item_id(core, campaign, "bob"), reviewer=OTHER)
    approvals.decide(core, offboarded.request_id, approver="UAPPROVER", approve=False)

    out = io.StringIO()
    assert review_export.export(core, campaign, out, "jsonl") == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    by_name = {row["account"]: row for row in lines}
    assert by_name["alice"]["decision"] == "keep"
    assert by_name["alice"]["decided_by"] == MANAGER
    assert by_name["alice"]["note"] == "=cmd|' /C calc"
    assert by_name["bob"]["decision"] == "offboard"
    assert by_name["bob"]["request_id"] == offboarded.request_id
    assert (by_name["bob"]["request_state"], by_name["bob"]["request_outcome"]) == (
        "denied",
        "Denied.",
    )
    assert by_name["carol"]["decision"] is None
    assert by_name["carol"]["groups"] == ["admins", "developers"]

    out = io.StringIO()
    review_export.export(core, campaign, out, "csv")
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["account"] for row in table] == ["alice", "bob", "carol"]
    assert table[0]["note"] == "'=cmd|' /C calc"  # never a formula in a spreadsheet
    assert table[0]["flags"].startswith("never used; console password without MFA")
    assert table[1]["request_state"] == "denied"
    assert table[2]["groups"] == "admins; developers"

    listed = review_export.list_campaigns(core)
    assert [(c.id, c.integration, c.state, c.decided, c.total) for c in listed] == [
        (campaign, "prod", "open", 2, 3)
    ]
