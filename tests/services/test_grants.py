"""Time-bound grants with an injected clock: made through /groups' service, ended when due
(once), early, outside RoleUp, with the group or user gone, and retried when AWS fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.services import approvals, expiry, grants, requesting
from bot.services.errors import (
    InvalidInput,
    NotAllowed,
    Refused,
    RequestConflict,
    RoleUpError,
)
from bot.services.grants import Term
from bot.services.reasons import Justification
from bot.services.sync import sync_integration
from storage.models import Account, AuditEvent, Grant, Integration, Request, utcnow

FOUR_HOURS = Term(seconds=4 * 3600)


@pytest.fixture
def prod(core, make_integration, iam):
    integration = make_integration()
    with core.sessions.begin() as s:
        row = s.merge(integration)
        row.managers = ["UMANAGER"]
        row.approvers = ["UAPPROVER"]
        row.approvals_channel = "CAPPROVALS"
    iam.create_user(UserName="alice")
    for group in ("devs", "ops"):
        iam.create_group(GroupName=group)
    sync_integration(core, integration.id, actor="test")
    return integration


def groups_in_iam(iam, user="alice") -> list[str]:
    return sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"])


def grant_rows(core) -> list[Grant]:
    with core.sessions() as s:
        return list(s.scalars(select(Grant).order_by(Grant.id)))


def grant_devs(core, prod, term=FOUR_HOURS, actor="UMANAGER"):
    return requesting.request_set_groups(
        core,
        actor=actor,
        integration_id=prod.id,
        user_name="alice",
        wanted=["devs"],
        term=term,
    )


# --- terms ------------------------------------------------------------------------------------
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("choice", "until", "words"),
    [
        ("until", None, "Pick the date and time"),
        ("until", int((NOW + timedelta(seconds=30)).timestamp()), "at least one minute"),
        ("until", int((NOW - timedelta(days=1)).timestamp()), "at least one minute"),
        ("until", int((NOW + timedelta(days=91)).timestamp()), "within 90 days"),
        ("until", "tomorrow", "not a date and time"),
        ("until", 10**20, "not a date and time"),
        ("forever", None, "from the list"),
    ],
)
def test_a_bad_term_says_what_is_wrong(choice, until, words):
    with pytest.raises(InvalidInput, match=words):
        grants.term_of(choice, until, NOW)


def test_terms_read_as_people_say_them():
    assert grants.term_of(None, None, NOW).permanent
    assert grants.term_of("4h", None, NOW).describe() == "for 4 hours"
    until = grants.term_of("until", int((NOW + timedelta(days=2, minutes=3)).timestamp()), NOW)
    assert until.describe() == "until 2026-12-03 12:03 UTC"
    assert Term.load(**{"for_seconds": None, "until": until.dump()["until"]}) == until


# --- granting ---------------------------------------------------------------------------------
def test_a_temporary_grant_adds_the_group_and_records_its_end(core, prod, iam):
    before = utcnow()
    request = grant_devs(core, prod)
    assert request is not None and request.state == "done"
    assert "until" in (request.outcome or "")
    assert groups_in_iam(iam) == ["devs"]
    (grant,) = grant_rows(core)
    assert (grant.user_name, grant.group_name, grant.state) == ("alice", "devs", "active")
    assert grant.request_id == request.id and grant.requester == "UMANAGER"
    assert before + timedelta(hours=4) <= grant.ends_at <= utcnow() + timedelta(hours=4)
    with core.sessions() as s:
        ends = grants.ends_of(s, [prod.id])
    assert ends == {(prod.id, "alice", "devs"): grant.ends_at}
    shown = grants.with_ends(["devs", "ops"], {"devs": grant.ends_at})
    assert shown == [f"devs (until {grants.shown(grant.ends_at)})", "ops"]


def test_a_permanent_grant_records_nothing(core, prod, iam):
    grant_devs(core, prod, term=Term())
    assert groups_in_iam(iam) == ["devs"]
    assert grant_rows(core) == []


def test_a_group_the_user_already_has_is_left_as_it_was(core, prod, iam):
    iam.add_user_to_group(UserName="alice", GroupName="devs")
    sync_integration(core, prod.id, actor="test")
    # Asking for devs+ops for 4 hours when devs is already there: only ops is temporary.
    requesting.request_set_groups(
        core,
        actor="UMANAGER",
        integration_id=prod.id,
        user_name="alice",
        wanted=["devs", "ops"],
        term=FOUR_HOURS,
    )
    assert [(g.group_name, g.state) for g in grant_rows(core)] == [("ops", "active")]


def test_a_grant_whose_change_fails_is_ended_and_nothing_stays(core, prod, iam, aws_calls):
    aws_calls.fail("AddUserToGroup", "ServiceFailure", times=5)
    with pytest.raises(RoleUpError, match=r"(?i)add"):
        grant_devs(core, prod)
    assert groups_in_iam(iam) == []
    (grant,) = grant_rows(core)
    assert (grant.state, grant.end_reason) == ("ended", grants.NOT_GRANTED)


def test_an_until_that_passed_before_the_change_ran_is_refused_before_iam(core, prod, iam):
    term = Term(until=utcnow() - timedelta(minutes=1))
    with pytest.raises(InvalidInput, match="has passed"):
        grant_devs(core, prod, term=term)
    assert groups_in_iam(iam) == []


# --- ending when due --------------------------------------------------------------------------
def test_a_due_grant_is_removed_once_and_audited(core, prod, iam, aws_calls):
    grant_devs(core, prod)
    (grant,) = grant_rows(core)
    assert expiry.expire_due(core, now=grant.ends_at - timedelta(seconds=1)) == []
    aws_calls.made.clear()

    first = expiry.expire_due(core, now=grant.ends_at + timedelta(seconds=1), instance="a")
    second = expiry.expire_due(core, now=grant.ends_at + timedelta(seconds=2), instance="b")

    assert [r.ended for r in first] == [True] and second == []
    assert groups_in_iam(iam) == []
    assert aws_calls.names.count("RemoveUserFromGroup") == 1
    (ended,) = grant_rows(core)
    assert (ended.state, ended.end_reason) == ("ended", "expired")
    with core.sessions() as s:
        request = s.get(Request, ended.end_request_id)
        actions = list(
            s.scalars(select(AuditEvent.action).where(AuditEvent.request_id == request.id))
        )
    assert (request.kind, request.state, request.decided_by) == ("end_grant", "done", "policy")
    assert "request.done" in actions and "iam.set_groups" in actions


def test_only_that_membership_is_removed(core, prod, iam):
    grant_devs(core, prod)
    iam.add_user_to_group(UserName="alice", GroupName="ops")  # given outside RoleUp meanwhile
    (grant,) = grant_rows(core)
    expiry.expire_due(core, now=grant.ends_at)
    assert groups_in_iam(iam) == ["ops"]


def test_a_membership_removed_outside_roleup_ends_the_grant_at_sync(core, prod, iam):
    grant_devs(core, prod)
    iam.remove_user_from_group(UserName="alice", GroupName="devs")
    sync_integration(core, prod.id, actor="test")
    (grant,) = grant_rows(core)
    assert (grant.state, grant.end_reason) == ("ended", grants.REMOVED_OUTSIDE)
    assert expiry.expire_due(core, now=grant.ends_at) == []


def test_a_deleted_group_ends_the_grant_as_group_gone(core, prod, iam):
    grant_devs(core, prod)
    iam.remove_user_from_group(UserName="alice", GroupName="devs")
    iam.delete_group(GroupName="devs")
    (grant,) = grant_rows(core)
    (result,) = expiry.expire_due(core, now=grant.ends_at)
    assert result.ended
    assert grant_rows(core)[0].end_reason == grants.GROUP_GONE


def test_a_replaced_user_is_not_touched_and_the_grant_ends_as_user_gone(core, prod, iam):
    grant_devs(core, prod)
    iam.remove_user_from_group(UserName="alice", GroupName="devs")
    iam.delete_user(UserName="alice")
    iam.create_user(UserName="alice")
    iam.add_user_to_group(UserName="alice", GroupName="devs")  # another alice, another grant
    (grant,) = grant_rows(core)
    expiry.expire_due(core, now=grant.ends_at)
    assert groups_in_iam(iam) == ["devs"]
    assert grant_rows(core)[0].end_reason == grants.USER_GONE


def test_a_failed_removal_is_retried_with_backoff_and_reported_on_the_third(
    core, prod, iam, aws_calls
):
    grant_devs(core, prod)
    (grant,) = grant_rows(core)
    aws_calls.fail("RemoveUserFromGroup", "ServiceFailure", times=3)
    now = grant.ends_at
    alerts = []
    for attempt in range(3):
        (result,) = expiry.expire_due(core, now=now)
        assert not result.ended and result.error
        alerts.append(result.alert)
        row = grant_rows(core)[0]
        assert (row.state, row.failures) == ("active", attempt + 1)
        assert expiry.expire_due(core, now=now) == []  # waits for its delay
        now = row.next_attempt_at
    assert alerts == [False, False, True]
    (result,) = expiry.expire_due(core, now=now)
    assert result.ended and groups_in_iam(iam) == []


def test_a_claim_left_by_a_dead_process_is_taken_over(core, prod, iam):
    grant_devs(core, prod)
    (grant,) = grant_rows(core)
    with core.sessions.begin() as s:
        row = s.get(Grant, grant.id)
        row.state, row.claimed_until = "ending", grant.ends_at  # claimed, then the process died
    assert expiry.expire_due(core, now=grant.ends_at) == []
    (result,) = expiry.expire_due(core, now=grant.ends_at + expiry.CLAIM + timedelta(seconds=1))
    assert result.ended and groups_in_iam(iam) == []


# --- ending early -----------------------------------------------------------------------------
def test_end_now_by_the_requester_removes_it_at_once(core, prod, iam):
    grant_devs(core, prod)
    (grant,) = grant_rows(core)
    result = expiry.end_now(core, grant.id, actor="UMANAGER")
    assert result.ended and groups_in_iam(iam) == []
    assert grant_rows(core)[0].end_reason == "ended early by UMANAGER"
    with pytest.raises(RequestConflict, match="already ended"):
        expiry.end_now(core, grant.id, actor="UMANAGER")


def test_end_now_by_a_stranger_is_refused(core, prod, iam):
    grant_devs(core, prod)
    (grant,) = grant_rows(core)
    with pytest.raises(Refused):
        expiry.end_now(core, grant.id, actor="USTRANGER")
    assert groups_in_iam(iam) == ["devs"]


def test_removing_the_group_through_roleup_ends_its_grant(core, prod, iam):
    grant_devs(core, prod)
    removal = requesting.request_set_groups(
        core, actor="UMANAGER", integration_id=prod.id, user_name="alice", wanted=[]
    )
    assert removal is not None and removal.state == "pending"  # a removal needs an approver
    approvals.decide(core, removal.id, approver="UAPPROVER", approve=True)
    (grant,) = grant_rows(core)
    assert grant.state == "ended" and grant.end_reason.startswith("removed through RoleUp")


def test_listing_filters_by_integration_and_ending_window(core, prod, iam):
    grant_devs(core, prod)
    with core.sessions() as s:
        assert [g.group for g in grants.list_grants(s, integration="prod")] == ["devs"]
        assert grants.list_grants(s, integration="other") == []
        assert grants.list_grants(s, ending_within=timedelta(hours=1)) == []
        assert len(grants.list_grants(s, ending_within=timedelta(hours=5))) == 1


# --- reminders --------------------------------------------------------------------------------
def test_reminders_come_once_each_and_only_those_that_fit(core, prod, iam):
    grant_devs(core, prod, term=Term(seconds=30 * 3600))
    (grant,) = grant_rows(core)
    end = grant.ends_at
    assert expiry.remind_due(core, now=end - timedelta(hours=25)) == []
    (day,) = expiry.remind_due(core, now=end - timedelta(hours=23))
    assert (day.before, day.grant.group) == ("24h", "devs")
    assert expiry.remind_due(core, now=end - timedelta(hours=22)) == []
    (hour,) = expiry.remind_due(core, now=end - timedelta(minutes=50))
    assert hour.before == "1h"
    assert expiry.remind_due(core, now=end - timedelta(minutes=10)) == []


def test_a_short_grant_gets_only_the_hour_reminder(core, prod, iam):
    grant_devs(core, prod)  # four hours
    (grant,) = grant_rows(core)
    end = grant.ends_at
    assert expiry.remind_due(core, now=end - timedelta(hours=2)) == []
    assert [r.before for r in expiry.remind_due(core, now=end - timedelta(minutes=30))] == ["1h"]


def test_a_late_reminder_is_the_nearer_one_only(core, prod, iam):
    grant_devs(core, prod, term=Term(seconds=30 * 3600))
    (grant,) = grant_rows(core)
    late = grant.ends_at - timedelta(minutes=30)  # the scheduler was down for a day
    assert [r.before for r in expiry.remind_due(core, now=late)] == ["1h"]
    assert expiry.remind_due(core, now=late + timedelta(minutes=1)) == []


# --- extending --------------------------------------------------------------------------------
def link(core, prod, person="UALICE01"):
    with core.sessions.begin() as s:
        s.execute(update(Account).values(slack_user_id=person))


def test_the_requester_extends_a_plain_grant_at_once_and_reminders_start_again(core, prod, iam):
    grant_devs(core, prod)
    (grant,) = grant_rows(core)
    expiry.remind_due(core, now=grant.ends_at - timedelta(minutes=30))
    request = requesting.request_extend_grant(
        core, actor="UMANAGER", grant_id=grant.id, term=Term(seconds=24 * 3600)
    )
    assert request.state == "done"
    (extended,) = grant_rows(core)
    assert extended.ends_at > grant.ends_at + timedelta(hours=19)
    assert extended.reminded_1h_at is None and extended.state == "active"


def test_the_holder_extending_their_own_access_needs_an_approver(core, prod, iam):
    link(core, prod)
    grant_devs(core, prod)
    (grant,) = grant_rows(core)
    assert grant.slack_user_id == "UALICE01"
    request = requesting.request_extend_grant(
        core, actor="UALICE01", grant_id=grant.id, term=Term(seconds=24 * 3600)
    )
    assert request.state == "pending"
    assert request.payload["why"] == "a person extending their own access needs an approver"
    with pytest.raises(NotAllowed):  # never their own approver
        approvals.decide(core, request.id, approver="UALICE01", approve=True)
    assert grant_rows(core)[0].ends_at == grant.ends_at
    approvals.decide(core, request.id, approver="UAPPROVER", approve=True)
    assert grant_rows(core)[0].ends_at > grant.ends_at


def test_extending_is_refused_to_strangers_to_earlier_ends_and_to_ended_grants(core, prod, iam):
    grant_devs(core, prod, term=Term(seconds=7 * 24 * 3600))
    (grant,) = grant_rows(core)
    with pytest.raises(Refused):
        requesting.request_extend_grant(
            core, actor="USTRANGER", grant_id=grant.id, term=Term(seconds=30 * 24 * 3600)
        )
    with pytest.raises(InvalidInput, match="ends before the grant already does"):
        requesting.request_extend_grant(
            core, actor="UMANAGER", grant_id=grant.id, term=Term(seconds=3600)
        )
    with pytest.raises(InvalidInput, match="how long"):
        requesting.request_extend_grant(core, actor="UMANAGER", grant_id=grant.id, term=Term())
    expiry.end_now(core, grant.id, actor="UMANAGER")
    with pytest.raises(RequestConflict, match="has ended"):
        requesting.request_extend_grant(
            core, actor="UMANAGER", grant_id=grant.id, term=Term(seconds=30 * 24 * 3600)
        )


def test_an_extension_approved_after_the_grant_ended_fails_plainly(core, prod, iam):
    link(core, prod)
    grant_devs(core, prod)
    (grant,) = grant_rows(core)
    request = requesting.request_extend_grant(
        core, actor="UALICE01", grant_id=grant.id, term=Term(seconds=24 * 3600)
    )
    expiry.expire_due(core, now=grant.ends_at)
    failed = approvals.decide(core, request.id, approver="UAPPROVER", approve=True)
    assert failed.state == "failed" and "has ended" in (failed.outcome or "")
    assert groups_in_iam(iam) == []


def test_a_manager_extending_their_own_grant_still_needs_an_approver(core, prod, iam):
    # Attack: the holder is also a manager of the integration, so "may change groups" made
    # their own Extend self-service-free and it ran at once, with nobody looking.
    link(core, prod, person="UMANAGER")
    with core.sessions.begin() as s:
        s.get(Integration, prod.id).managers = ["UMANAGER", "UOTHERMGR"]
    grant_devs(core, prod, actor="UOTHERMGR")
    (grant,) = grant_rows(core)
    assert grant.slack_user_id == "UMANAGER"
    request = requesting.request_extend_grant(
        core, actor="UMANAGER", grant_id=grant.id, term=Term(seconds=24 * 3600)
    )
    assert request.state == "pending"
    assert request.payload["why"] == "a person extending their own access needs an approver"
    assert grant_rows(core)[0].ends_at == grant.ends_at


def test_a_grant_ends_when_due_on_an_integration_that_requires_a_reason(core, prod, iam):
    # Attack: on an integration added with --require-reason the expiry's own end_grant
    # request (no reason: nobody asks it) was refused, so the grant was put back to active and
    # retried forever: time-bound access that never ended. End now was refused the same way.
    with core.sessions.begin() as s:
        s.get(Integration, prod.id).require_reason = True
    requesting.request_set_groups(
        core,
        actor="UMANAGER",
        integration_id=prod.id,
        user_name="alice",
        wanted=["devs", "ops"],
        term=FOUR_HOURS,
        why=Justification(reason="incident 42"),
    )
    devs, ops = grant_rows(core)
    assert expiry.end_now(core, ops.id, actor="UMANAGER").ended
    (ended,) = expiry.expire_due(core, now=devs.ends_at)
    assert ended.ended, ended.error
    assert groups_in_iam(iam) == []
    assert [g.state for g in grant_rows(core)] == ["ended", "ended"]
