"""Walking around time-bound access as a hostile user: a slow end overtaken by a
second instance, approvers deciding their own access, stale holders and requests. Each test is
an attack; it passes only while the promise it names holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.services import account_ending, expiry, grants, requesting
from bot.services.policy import END_GRANT, EXPIRE_ACCOUNT
from bot.services.sync import sync_integration
from storage.models import AccountExpiry, Grant, Request, utcnow
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.seed import add_integration

PERSON = "UALICE01"


def midnight(days: int) -> datetime:
    today = utcnow().astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=days), datetime.min.time(), tzinfo=UTC)


@pytest.fixture
def prod(roleup, iam):
    return add_integration(roleup.core)


@pytest.fixture
def alice(roleup, prod, iam):
    """alice (linked to PERSON) in prod, which has the groups devs and admins."""
    iam.create_user(UserName="alice")
    for group in ("devs", "admins"):
        iam.create_group(GroupName=group)
    sync_integration(roleup.core, prod, actor="test")
    return "alice"


def grant(core, integration_id, group="devs", *, actor="UMANAGER", hours=4):
    return requesting.request_set_groups(
        core,
        actor=actor,
        integration_id=integration_id,
        user_name="alice",
        wanted=[group],
        term=grants.Term(seconds=hours * 3600),
    )


def grant_rows(core) -> list[Grant]:
    with core.sessions() as session:
        return list(session.scalars(select(Grant).order_by(Grant.id)))


def groups_in_iam(iam, user="alice") -> list[str]:
    return sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"])


def expiring_alice(core, integration_id: int) -> AccountExpiry:
    request = requesting.request_onboard(
        core,
        actor="UMANAGER",
        integration_id=integration_id,
        ask=requesting.OnboardAsk(
            username="alice",
            password=GOOD_PASSWORD,
            slack_user_id=PERSON,
            account_expires=midnight(30),
        ),
    )
    assert request.state == "done"
    with core.sessions() as session:
        return session.scalars(select(AccountExpiry)).one()


# --- an end that outlives its claim -----------------------------------------------------------
def test_an_expiring_account_whose_offboarding_outlasts_the_claim_is_offboarded_once(
    roleup, prod, iam, monkeypatch
):
    """AWS slow enough (each call may take minutes) that the offboarding at the date is still
    running when its five-minute claim runs out: the next tick of the accounts job on another
    instance must not start a second offboarding of the same account."""
    core = roleup.core
    expiring_alice(core, prod)
    at = utcnow()
    with core.sessions.begin() as session:  # its date has just come (leases run on real time)
        session.execute(update(AccountExpiry).values(expires_at=at - timedelta(seconds=1)))
    real = account_ending.lifecycle.offboard_steps.offboard_user
    overtaken: list[list[account_ending.Expired]] = []
    calls: list[str] = []

    def slow(*args, **kwargs):
        calls.append("offboard")
        if len(calls) == 1:  # another instance's tick, just past the claim of this one
            later = at + account_ending.CLAIM + timedelta(seconds=1)
            overtaken.append(account_ending.expire_due(core, now=later, instance="b"))
        return real(*args, **kwargs)

    monkeypatch.setattr("bot.services.offboard_steps.offboard_user", slow)
    (first,) = account_ending.expire_due(core, now=at, instance="a")
    assert first.ended
    assert overtaken == [[]]
    assert calls == ["offboard"]
    with core.sessions() as session:
        runs = session.scalars(select(Request).where(Request.kind == EXPIRE_ACCOUNT)).all()
        expiry = session.scalars(select(AccountExpiry)).one()
    assert [(r.state, r.requester) for r in runs] == [("done", "roleup")]
    assert (expiry.state, expiry.end_reason) == ("ended", "expired")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName="alice")


def test_a_grant_whose_removal_outlasts_the_claim_is_ended_once(
    roleup, prod, alice, iam, monkeypatch
):
    """The same for a time-bound grant: a removal still running when its claim runs out is not
    started again by the grants job of another instance (two end_grant requests, two DMs)."""
    core = roleup.core
    assert grant(core, prod).state == "done"
    at = utcnow()
    with core.sessions.begin() as session:
        session.execute(update(Grant).values(ends_at=at - timedelta(seconds=1)))
    real = expiry.grants.lifecycle.apply_group_change
    overtaken: list[list[expiry.Ended]] = []
    calls: list[str] = []

    def slow(*args, **kwargs):
        calls.append("remove")
        if len(calls) == 1:  # another instance's tick, just past the claim of this one
            later = at + expiry.CLAIM + timedelta(seconds=1)
            overtaken.append(expiry.expire_due(core, now=later, instance="b"))
        return real(*args, **kwargs)

    monkeypatch.setattr("bot.services.lifecycle.apply_group_change", slow)
    (first,) = expiry.expire_due(core, now=at, instance="a")
    assert first.ended
    assert overtaken == [[]]
    assert calls == ["remove"]
    with core.sessions() as session:
        runs = session.scalars(select(Request).where(Request.kind == END_GRANT)).all()
    assert [r.state for r in runs] == ["done"]
    assert [(g.state, g.end_reason) for g in grant_rows(core)] == [("ended", "expired")]
    assert groups_in_iam(iam) == []


def test_an_account_being_offboarded_by_offboard_is_not_offboarded_again_at_its_date(
    roleup, prod, iam, monkeypatch
):
    """The account's date comes while /offboard (approved) is taking it apart: the accounts
    job must not start a second offboarding of it beside the first."""
    from bot.services import approvals
    from bot.services.request_kinds import OffboardAccount, OffboardPayload

    core = roleup.core
    expiring_alice(core, prod)
    with core.sessions.begin() as session:
        session.execute(update(AccountExpiry).values(expires_at=utcnow() - timedelta(seconds=1)))
    real = account_ending.lifecycle.offboard_steps.offboard_user
    at_the_date: list[list[account_ending.Expired]] = []
    calls: list[str] = []

    def offboarding(*args, **kwargs):
        calls.append("offboard")
        if len(calls) == 1:  # the accounts job ticks while /offboard runs
            at_the_date.append(account_ending.expire_due(core, instance="b"))
        return real(*args, **kwargs)

    monkeypatch.setattr("bot.services.offboard_steps.offboard_user", offboarding)
    payload = OffboardPayload(target="alice", accounts=[OffboardAccount(prod, "prod", "alice")])
    request = approvals.submit(core, payload, requester="UMANAGER")
    done = approvals.decide(core, request.id, approver="UAPPROVER", approve=True)
    assert done.state == "done"
    assert at_the_date == [[]]
    assert calls == ["offboard"]
    assert account_ending.expire_due(core, instance="b") == []
    with core.sessions() as session:
        runs = session.scalars(select(Request).where(Request.kind == EXPIRE_ACCOUNT)).all()
        expiry_row = session.scalars(select(AccountExpiry)).one()
    assert runs == []
    assert (expiry_row.state, expiry_row.end_reason) == ("ended", "offboarded through RoleUp")


# --- approving one's own access ------------------------------------------------------------
def link(core, integration_id: int, person: str, user: str = "alice") -> None:
    from bot.services import lifecycle

    lifecycle.link_slack_user(core, integration_id, user, person, actor="UMANAGER")


@pytest.fixture
def two_approvers(roleup, prod):
    """prod lists two approvers and counts admins as privileged."""
    from storage.models import Integration

    with roleup.core.sessions.begin() as session:
        row = session.get(Integration, prod)
        row.approvers = ["UAPPROVER", "UAPRIL"]
        row.privileged_groups = ["admins"]
    return prod


def test_an_approver_cannot_approve_privileged_access_for_their_own_account(
    roleup, two_approvers, alice, iam
):
    """A manager asks for admins on the account linked to an approver: that approver may not
    be the one who approves it (alone, or as one of a two-person quorum)."""
    from bot.services import approvals
    from bot.services.errors import NotAllowed

    core = roleup.core
    link(core, two_approvers, "UAPPROVER")
    request = grant(core, two_approvers, "admins", hours=1)
    assert request.state == "pending"
    with pytest.raises(NotAllowed, match="your own account"):
        approvals.decide(core, request.id, approver="UAPPROVER", approve=True)
    assert groups_in_iam(iam) == []
    assert [r.id for r in approvals.waiting_for(core, "UAPPROVER")] == []
    done = approvals.decide(core, request.id, approver="UAPRIL", approve=True)
    assert done.state == "done" and done.decided_by == "UAPRIL"
    assert groups_in_iam(iam) == ["admins"]


def test_the_holder_cannot_approve_an_extension_a_manager_asked_for_them(
    roleup, two_approvers, alice, iam
):
    """UAPPROVER holds admins for an hour; the manager asks to extend it: UAPPROVER may not be
    the one who keeps their own privileged access going."""
    from bot.services import approvals
    from bot.services.errors import NotAllowed

    core = roleup.core
    link(core, two_approvers, "UAPPROVER")
    first = grant(core, two_approvers, "admins", hours=1)
    approvals.decide(core, first.id, approver="UAPRIL", approve=True)
    (held,) = grant_rows(core)
    asked = requesting.request_extend_grant(
        core, actor="UMANAGER", grant_id=held.id, term=grants.Term(seconds=4 * 3600)
    )
    assert asked.state == "pending"
    with pytest.raises(NotAllowed, match="your own account"):
        approvals.decide(core, asked.id, approver="UAPPROVER", approve=True)
    assert grant_rows(core)[0].ends_at == held.ends_at
    approvals.decide(core, asked.id, approver="UAPRIL", approve=True)
    assert grant_rows(core)[0].ends_at > held.ends_at


def test_a_manager_linked_to_the_account_after_the_grant_still_needs_an_approver_to_extend(
    roleup, prod, alice, iam
):
    """The grant was made while alice was linked to nobody; the manager then links alice to
    themselves and extends it: it is their own access now, so an approver decides."""
    core = roleup.core
    assert grant(core, prod).state == "done"
    link(core, prod, "UMANAGER")
    (held,) = grant_rows(core)
    asked = requesting.request_extend_grant(
        core, actor="UMANAGER", grant_id=held.id, term=grants.Term(seconds=8 * 3600)
    )
    assert asked.state == "pending"
    assert grant_rows(core)[0].ends_at == held.ends_at


# --- a request that became privileged while it waited -----------------------------------------
def test_a_grant_whose_group_turned_privileged_while_it_waited_needs_the_two_person_quorum(
    roleup, two_approvers, alice, iam
):
    """devs is harmless when the manager asks for it (one approver, the integration approves
    grants); before anyone approves, AdministratorAccess is attached to devs. One approval
    must no longer be enough on an integration that wants two for privileged grants."""
    from bot.services import approvals
    from storage.models import Integration

    core = roleup.core
    with core.sessions.begin() as session:
        row = session.get(Integration, two_approvers)
        row.approve_group_grants, row.approvals_required = True, 2
    request = grant(core, two_approvers, "devs", hours=1)
    assert (request.state, request.approvals_required) == ("pending", 1)
    everything = iam.create_policy(
        PolicyName="AdministratorAccess",
        PolicyDocument='{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
    )["Policy"]["Arn"]
    iam.attach_group_policy(GroupName="devs", PolicyArn=everything)
    sync_integration(core, two_approvers, actor="test")
    first = approvals.decide(core, request.id, approver="UAPPROVER", approve=True)
    assert (first.state, first.approvals_required) == ("pending", 2)
    assert groups_in_iam(iam) == []
    done = approvals.decide(core, request.id, approver="UAPRIL", approve=True)
    assert done.state == "done"
    assert groups_in_iam(iam) == ["devs"]
