"""Access reviews attacked by a hostile reviewer or a hostile world, on the service layer over
moto and both stores: an account deleted and re-created under its name during the campaign is
not what *Offboard* or *Remove* ask about; deciding what is not yours (an admin who is not a
manager, an account linked to you after the start or unlinked since, a group the account never
had); an account already offboarded; two starts at once; a campaign of a removed integration;
an export that a line-splitting reader would cut."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, text, update

from bot.services import (
    integrations,
    lifecycle,
    review_decisions,
    review_export,
    review_jobs,
    review_start,
)
from bot.services.errors import InvalidInput, NotAllowed, NotFound, RequestConflict, TargetReplaced
from bot.services.review_start import ReviewStartFailed
from bot.services.sync import sync_integration
from storage.models import (
    Account,
    AuditEvent,
    Integration,
    Request,
    ReviewCampaign,
    ReviewItem,
    utcnow,
)
from tests.support.reviews import MANAGER, OTHER, item_id, items
from tests.support.waiting import wait_until


def recreate(iam, name: str, *, groups: tuple[str, ...] = ()) -> str:
    """Delete the IAM user outside RoleUp and create another under the same name."""
    old = iam.get_user(UserName=name)["User"]
    for group in iam.list_groups_for_user(UserName=name)["Groups"]:
        iam.remove_user_from_group(GroupName=group["GroupName"], UserName=name)
    for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.delete_login_profile(UserName=name)
    iam.delete_user(UserName=name)
    new = iam.create_user(UserName=name, Path=old["Path"])["User"]
    for group in groups:
        iam.add_user_to_group(GroupName=group, UserName=name)
    assert new["UserId"] != old["UserId"]
    return str(new["UserId"])


def request_count(core) -> int:
    with core.sessions() as session:
        return int(session.scalar(select(func.count(Request.id))) or 0)


@pytest.mark.parametrize("synced", [False, True], ids=["before-sync", "after-sync"])
def test_an_account_re_created_under_its_name_is_not_what_offboard_or_remove_asks_about(
    core,
    company,
    iam,
    synced,
):
    """What the reviewer saw was alice and carol as they were at the start; a new user of the
    same name is someone else: neither Offboard nor Remove raise a request against it."""
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    recreate(iam, "alice")
    recreate(iam, "carol", groups=("admins", "developers"))
    if synced:
        sync_integration(core, company, actor="test")

    with pytest.raises(TargetReplaced, match="alice was deleted and re-created since the access"):
        review_decisions.offboard(core, item_id(core, campaign, "alice"), reviewer=OTHER)
    with pytest.raises(TargetReplaced, match="carol was deleted and re-created since the access"):
        review_decisions.remove_from_groups(
            core, item_id(core, campaign, "carol"), reviewer=OTHER, groups=["admins"]
        )

    assert request_count(core) == 0
    frozen = items(core, campaign)
    assert frozen["alice"].decision is None and frozen["carol"].decision is None
    # The new users are untouched, and the items can still be decided (Keep, with a note).
    assert iam.get_user(UserName="alice")["User"]["UserName"] == "alice"
    assert {g["GroupName"] for g in iam.list_groups_for_user(UserName="carol")["Groups"]} == {
        "admins",
        "developers",
    }
    review_decisions.keep(
        core, item_id(core, campaign, "alice"), reviewer=OTHER, note="gone; the new one is Bo"
    )


def test_an_admin_who_is_no_manager_starts_a_review_but_decides_nothing(
    core,
    company,
):
    core.settings = dataclasses.replace(core.settings, admins=frozenset({"UADMIN"}))
    campaign = review_start.request_start(core, actor="UADMIN", integration_name="prod").campaign_id

    for decide in (
        lambda i: review_decisions.keep(core, i, reviewer="UADMIN", note="fine"),
        lambda i: review_decisions.offboard(core, i, reviewer="UADMIN"),
        lambda i: review_decisions.remove_from_groups(
            core, i, reviewer="UADMIN", groups=["developers"]
        ),
    ):
        with pytest.raises(NotAllowed, match="Only the managers of integration prod review"):
            decide(item_id(core, campaign, "carol"))
    assert items(core, campaign)["carol"].decision is None
    assert request_count(core) == 0


def test_an_account_linked_to_the_reviewer_after_the_start_or_before_it_is_not_theirs(
    core,
    company,
):
    """bob was linked to MANAGER at the start and is unlinked now; alice is linked to OTHER
    only since the start: neither may decide their own, either way round."""
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    with core.sessions.begin() as session:
        session.execute(
            update(Account).where(Account.user_name == "bob").values(slack_user_id=None)
        )
        session.execute(
            update(Account).where(Account.user_name == "alice").values(slack_user_id=OTHER)
        )

    with pytest.raises(NotAllowed, match="linked to you"):
        review_decisions.keep(core, item_id(core, campaign, "bob"), reviewer=MANAGER)
    with pytest.raises(NotAllowed, match="linked to you"):
        review_decisions.keep(core, item_id(core, campaign, "alice"), reviewer=OTHER)
    assert "alice" not in {i.user_name for i in reviews_open(core, OTHER)}
    # Each is the other manager's to decide.
    review_decisions.keep(core, item_id(core, campaign, "bob"), reviewer=OTHER)
    review_decisions.keep(core, item_id(core, campaign, "alice"), reviewer=MANAGER)


def reviews_open(core, reviewer):
    from bot.services import reviews

    return reviews.open_items_for(core, reviewer, limit=50).items


@pytest.mark.parametrize(
    "groups, why",
    [
        (["admins"], "admins is not one of the groups this account had"),  # carol's, not alice's
        (["ghost"], "ghost is not one of the groups this account had"),
        ([], "Choose at least one group to remove."),
    ],
)
def test_remove_from_a_group_the_account_never_had_is_refused_before_anything(
    core,
    company,
    iam,
    groups,
    why,
):
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    with pytest.raises(InvalidInput, match=why):
        review_decisions.remove_from_groups(
            core, item_id(core, campaign, "alice"), reviewer=MANAGER, groups=groups
        )
    assert items(core, campaign)["alice"].decision is None
    assert request_count(core) == 0
    assert {g["GroupName"] for g in iam.list_groups_for_user(UserName="carol")["Groups"]} == {
        "admins",
        "developers",
    }


def test_offboard_of_an_account_already_gone_records_the_decision_and_asks_nothing(
    core,
    company,
):
    """alice was offboarded through RoleUp (another request) after the start: the reviewer's
    Offboard is what happened; nothing is asked of an approver for a user that is not there."""
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    lifecycle.offboard(core, company, "alice", actor="UAPPROVER")

    decided = review_decisions.offboard(core, item_id(core, campaign, "alice"), reviewer=OTHER)

    assert decided.text == "alice is already gone from prod: nothing to offboard."
    assert decided.request_id is None
    frozen = items(core, campaign)["alice"]
    assert (frozen.decision, frozen.decided_by, frozen.request_id) == ("offboard", OTHER, None)
    assert request_count(core) == 0
    with pytest.raises(RequestConflict, match="alice was already decided: offboard"):
        review_decisions.offboard(core, item_id(core, campaign, "alice"), reviewer=MANAGER)


def test_a_start_while_another_is_still_starting_is_refused_and_the_schedule_waits(
    core,
    company,
):
    """Two starts at once (Slack and the CLI, or the schedule and a manager): while the first
    reads the credential report, the second is refused naming it, and the schedule skips."""
    from bot.services import credential_report

    seen = []

    def slow_fetch(client):
        with pytest.raises(RequestConflict, match="Access review #1 of prod is still starting"):
            review_start.start_campaign(core, integration_id=company, actor=OTHER)
        with core.sessions.begin() as session:
            session.execute(
                update(Integration).where(Integration.id == company).values(review_every_days=7)
            )
        seen.extend(review_jobs.start_scheduled(core, now=utcnow() + timedelta(days=30)))
        return credential_report.fetch(client)

    started = review_start.start_campaign(
        core, integration_id=company, actor=MANAGER, fetch=slow_fetch
    )
    assert (started.campaign_id, started.items, seen) == (1, 3, [])
    with core.sessions() as session:
        states = session.execute(select(ReviewCampaign.state)).scalars().all()
    assert states == ["open"]


def test_an_integration_removed_mid_campaign_takes_its_campaign_and_stale_buttons_say_so(
    core,
    company,
):
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    alice = item_id(core, campaign, "alice")
    integrations.remove_integration(core, "prod", actor="UADMIN")

    with pytest.raises(NotFound, match="That review item no longer exists"):
        review_decisions.keep(core, alice, reviewer=MANAGER)
    with pytest.raises(NotFound, match=f"There is no access review #{campaign}"):
        review_export.export(core, campaign, io.StringIO(), "csv")
    assert review_jobs.close_due(core, now=utcnow() + timedelta(days=30)) == []
    assert reviews_open(core, MANAGER) == []


def test_an_integration_removed_while_its_review_starts_fails_the_start_cleanly(
    core,
    company,
):
    from bot.services import credential_report

    def removed_meanwhile(client):
        report = credential_report.fetch(client)
        integrations.remove_integration(core, "prod", actor="UADMIN")
        return report

    with pytest.raises(ReviewStartFailed, match="could not start: That integration no longer"):
        review_start.start_campaign(
            core, integration_id=company, actor=MANAGER, fetch=removed_meanwhile
        )
    with core.sessions() as session:
        assert session.scalar(select(func.count(ReviewItem.id))) == 0
        assert session.scalar(select(func.count(ReviewCampaign.id))) == 0


def test_the_jsonl_export_is_one_line_an_item_whatever_the_note(
    core,
    company,
):
    """A note may hold line breaks and Unicode's line and paragraph separators (a reader
    splitting lines on them, as Python's str.splitlines does, would cut a record in two)."""
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    note = "line one\nline two\u2028=cmd|' /C calc'\u2029\"}{"
    review_decisions.keep(core, item_id(core, campaign, "alice"), reviewer=MANAGER, note=note)

    out = io.StringIO()
    assert review_export.export(core, campaign, out, "jsonl") == 3
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["note"] == note.strip()


def test_a_decision_racing_the_close_is_counted_in_the_summary(
    core,
    company,
):
    """The close lands between a Keep's guarded UPDATE and its commit (two processes): the
    summary posted and audited must not call alice undecided while the export says kept."""
    campaign = review_start.start_campaign(core, integration_id=company, actor=MANAGER).campaign_id
    closed: list = []
    closers: list[threading.Thread] = []
    closing = threading.Event()  # the close sent its UPDATE of the campaign
    decision = re.compile(r"^\s*UPDATE review_items SET decision", re.IGNORECASE)
    close_update = re.compile(r"^\s*UPDATE review_campaigns SET", re.IGNORECASE)

    def close_sent(conn, cursor, statement, *args):
        if closers and threading.current_thread() is closers[0] and close_update.search(statement):
            closing.set()

    def close_meanwhile(conn, cursor, statement, *args):
        if closers or not decision.search(statement):
            return
        closer = threading.Thread(target=lambda: closed.append(review_jobs.close(core, campaign)))
        closers.append(closer)
        closer.start()
        # Until the close is done or waits on this decision's lock (it may not finish before
        # this decision commits). SQLite has one writer: its UPDATE sent is an UPDATE waiting.
        wait_until(lambda: not closer.is_alive() or (closing.is_set() and waits_on_lock()))

    def waits_on_lock() -> bool:
        if core.engine.dialect.name == "sqlite":
            return True
        with core.engine.connect() as other:
            waiting = other.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            )
        return bool(waiting)

    event.listen(core.engine, "before_cursor_execute", close_sent)
    event.listen(core.engine, "after_cursor_execute", close_meanwhile)
    try:
        review_decisions.keep(core, item_id(core, campaign, "alice"), reviewer=MANAGER)
    finally:
        event.remove(core.engine, "after_cursor_execute", close_meanwhile)
        event.remove(core.engine, "before_cursor_execute", close_sent)
    closers[0].join()

    (summary,) = closed
    assert items(core, campaign)["alice"].decision == "keep"
    assert (summary.kept, summary.undecided) == (1, ["bob", "carol"])
    with core.sessions() as session:
        event_detail = session.scalar(
            select(AuditEvent.detail).where(AuditEvent.action == "review.closed")
        )
    assert event_detail["kept"] == 1
