"""The request state machine on both stores: every transition, once, under real concurrency."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select

from bot.app import create_core
from bot.services import approvals
from bot.services.approvals import (
    APPROVED,
    DENIED,
    DONE,
    EXPIRED,
    FAILED,
    PENDING,
    RUNNING,
    TRANSITIONS,
)
from bot.services.errors import NotAllowed, RequestConflict, RequestNotFound, RoleUpError
from storage.models import AuditEvent, Integration, Request, utcnow
from tests.support import seed
from tests.support.concurrency import race
from tests.support.requests import submit_request

APPROVERS = [f"UAPPROVER{i}" for i in range(8)]


@pytest.fixture
def core(settings):
    core = create_core(settings)
    yield core
    core.engine.dispose()


# Without a key.
add_integration = partial(seed.add_integration, key=None, approvers=APPROVERS)


def offboard_request(core, integration_id, user="alice") -> Request:
    return submit_request(
        core,
        kind="offboard",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={
            "target": user,
            "accounts": [
                {"integration_id": integration_id, "integration": "prod", "user_name": user}
            ],
        },
    )


def audit_actions(core, request_id) -> list[str]:
    with core.sessions() as s:
        query = select(AuditEvent.action).where(AuditEvent.request_id == request_id)
        return list(s.scalars(query.order_by(AuditEvent.id)))


def state_of(core, request_id) -> str:
    return approvals.load(core, request_id).state


# --- the transition table -----------------------------------------------------------------
ALL_STATES = sorted(TRANSITIONS)


@pytest.mark.parametrize("source", ALL_STATES)
@pytest.mark.parametrize("target", ALL_STATES)
def test_only_the_documented_transitions_are_possible(core, source, target):
    integration_id = add_integration(core)
    row = offboard_request(core, integration_id)
    with core.sessions.begin() as s:
        s.get(Request, row.id).state = source
    allowed = target in TRANSITIONS[source]
    with core.sessions.begin() as s:
        if allowed:
            assert approvals.move(s, row.id, from_states=[source], to=target) is True
        else:
            with pytest.raises(ValueError, match="cannot go from"):
                approvals.move(s, row.id, from_states=[source], to=target)
    assert state_of(core, row.id) == (target if allowed else source)


def test_the_table_is_the_documented_machine():
    # pending -> failed: its integration turned read-only (never retried: nobody approved it)
    assert TRANSITIONS[PENDING] == {APPROVED, DENIED, EXPIRED, "cancelled", FAILED}
    assert TRANSITIONS[APPROVED] == {RUNNING}
    assert {DONE, FAILED} <= TRANSITIONS[RUNNING]
    assert TRANSITIONS[FAILED] == {RUNNING}
    assert all(not TRANSITIONS[s] for s in (DENIED, EXPIRED, "cancelled", DONE))


def test_a_move_from_the_wrong_state_changes_nothing(core):
    row = offboard_request(core, add_integration(core))
    with core.sessions.begin() as s:
        assert approvals.move(s, row.id, from_states=[APPROVED], to=RUNNING) is False
    assert state_of(core, row.id) == PENDING


# --- submit ---------------------------------------------------------------------------------
def test_an_offboarding_waits_for_approval_and_is_audited(core):
    row = offboard_request(core, add_integration(core))
    assert row.state == PENDING
    assert row.expires_at is not None
    assert row.expires_at - row.created_at == timedelta(hours=24)
    assert audit_actions(core, row.id) == ["request.created"]


def test_nobody_to_approve_is_refused_before_anything_is_stored(core):
    integration_id = add_integration(core, approvers=[], approvals_channel=None)
    with pytest.raises(NotAllowed, match="Nobody can approve"):
        offboard_request(core, integration_id)
    with core.sessions() as s:
        assert s.scalars(select(Request)).all() == []


def test_a_secret_is_stored_only_encrypted(core):
    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="invite_onboard",
        integration_id=integration_id,
        requester="UNEWBIE",
        payload={"username": "newbie", "groups": [], "policies": []},
        secret="Chosen-Passw0rd!",
    )
    assert row.state == PENDING
    with core.engine.connect() as conn:
        dump = "\n".join(str(r) for r in conn.exec_driver_sql("SELECT * FROM requests"))
        dump += "\n".join(str(r) for r in conn.exec_driver_sql("SELECT * FROM audit_events"))
    assert "Chosen-Passw0rd!" not in dump
    assert core.box.decrypt(row.secret_ciphertext, what="t") == "Chosen-Passw0rd!"


def test_removing_an_integration_is_not_tied_to_its_foreign_key(core):
    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="remove_integration",
        integration_id=integration_id,
        requester="UADMIN",
        payload={},
    )
    assert row.integration_id is None
    assert row.payload["integration_id"] == integration_id
    assert row.payload["integration"] == "prod"


# --- decide ---------------------------------------------------------------------------------
def test_the_requester_cannot_approve_their_own_request(core):
    integration_id = add_integration(core, approvers=["UMANAGER", "UAPPROVER0"])
    row = offboard_request(core, integration_id)
    with pytest.raises(NotAllowed, match="someone else"):
        approvals.decide(core, row.id, approver="UMANAGER", approve=True)
    assert state_of(core, row.id) == PENDING
    assert audit_actions(core, row.id)[-1] == "request.decide_refused"


def test_someone_who_is_not_an_approver_cannot_decide(core):
    row = offboard_request(core, add_integration(core))
    with pytest.raises(NotAllowed, match="Only the approvers of integration prod"):
        approvals.decide(core, row.id, approver="USTRANGER", approve=False)
    assert state_of(core, row.id) == PENDING


def test_an_approver_of_another_integration_cannot_decide(core):
    add_integration(core, name="dev", approvers=["UDEVAPPROVER"])
    row = offboard_request(core, add_integration(core))
    with pytest.raises(NotAllowed):
        approvals.decide(core, row.id, approver="UDEVAPPROVER", approve=True)


def test_an_unknown_request_is_not_found(core):
    with pytest.raises(RequestNotFound, match="no longer exists"):
        approvals.decide(core, "0" * 36, approver="UAPPROVER0", approve=True)


def test_deny_erases_the_secret_and_a_second_decision_conflicts(core):
    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="invite_onboard",
        integration_id=integration_id,
        requester="UNEWBIE",
        payload={"username": "newbie", "groups": [], "policies": []},
        secret="Chosen-Passw0rd!",
    )
    denied = approvals.decide(core, row.id, approver="UAPPROVER1", approve=False)
    assert denied.state == DENIED
    assert denied.decided_by == "UAPPROVER1"
    assert denied.secret_ciphertext is None
    with pytest.raises(RequestConflict, match="already denied by <@UAPPROVER1>"):
        approvals.decide(core, row.id, approver="UAPPROVER2", approve=True)
    assert audit_actions(core, row.id) == ["request.created", "request.denied"]


def test_an_expired_request_cannot_be_approved(core):
    row = offboard_request(core, add_integration(core))
    with core.sessions.begin() as s:
        s.get(Request, row.id).expires_at = utcnow() - timedelta(seconds=1)
    with pytest.raises(RequestConflict, match="expired"):
        approvals.decide(core, row.id, approver="UAPPROVER0", approve=True)
    assert state_of(core, row.id) == EXPIRED


# --- concurrency: real threads, one winner ----------------------------------------------


def test_eight_approvers_clicking_at_once_decide_once(core):
    row = offboard_request(core, add_integration(core))

    def click(index: int) -> str:
        return approvals.decide(
            core, row.id, approver=APPROVERS[index], approve=True, execute_now=False
        ).state

    results = race(len(APPROVERS), click)
    winners = [r for r in results if r == APPROVED]
    losers = [r for r in results if isinstance(r, RequestConflict)]
    assert len(winners) == 1, results
    assert len(losers) == len(APPROVERS) - 1, results
    assert audit_actions(core, row.id).count("request.approved") == 1


def test_approve_and_deny_racing_leave_exactly_one_decision(core):
    row = offboard_request(core, add_integration(core))

    def click(index: int) -> str:
        return approvals.decide(
            core, row.id, approver=APPROVERS[index], approve=index % 2 == 0, execute_now=False
        ).state

    results = race(8, click)
    decided = [r for r in results if r in (APPROVED, DENIED)]
    assert len(decided) == 1, results
    assert state_of(core, row.id) == decided[0]
    actions = audit_actions(core, row.id)
    assert actions.count("request.approved") + actions.count("request.denied") == 1


def test_only_one_runner_claims_an_approved_request(core):
    row = offboard_request(core, add_integration(core))
    approvals.decide(core, row.id, approver="UAPPROVER0", approve=True, execute_now=False)

    def claim(_index: int) -> bool:
        with core.sessions.begin() as s:
            return approvals.move(s, row.id, from_states=[APPROVED], to=RUNNING)

    results = race(8, claim)
    assert results.count(True) == 1, results
    assert results.count(False) == 7, results


def test_a_double_click_of_the_same_approver_decides_once(core):
    row = offboard_request(core, add_integration(core))

    def click(_index: int) -> str:
        return approvals.decide(
            core, row.id, approver="UAPPROVER3", approve=True, execute_now=False
        ).state

    results = race(2, click)
    assert results.count(APPROVED) == 1, results
    assert isinstance(next(r for r in results if r != APPROVED), RequestConflict)


# --- expiry, reminders, recovery -----------------------------------------------------------
def test_expire_pending_expires_only_what_is_due_and_erases_secrets(core):
    integration_id = add_integration(core)
    due = submit_request(
        core,
        kind="invite_onboard",
        integration_id=integration_id,
        requester="UNEWBIE",
        payload={"username": "newbie", "groups": [], "policies": []},
        secret="Chosen-Passw0rd!",
    )
    fresh = offboard_request(core, integration_id)
    later = utcnow() + timedelta(hours=24, seconds=1)
    with core.sessions.begin() as s:
        s.get(Request, fresh.id).expires_at = later + timedelta(hours=1)
    assert approvals.expire_pending(core, now=later) == 1
    expired = approvals.load(core, due.id)
    assert expired.state == EXPIRED
    assert expired.secret_ciphertext is None
    assert "nobody decided within 24 hours" in expired.outcome
    assert state_of(core, fresh.id) == PENDING
    assert approvals.expire_pending(core, now=later) == 0


def test_remind_pending_reminds_once_per_period(core):
    row = offboard_request(core, add_integration(core))
    soon = utcnow() + timedelta(minutes=30)
    assert approvals.remind_pending(core, timedelta(hours=4), now=soon) == 0
    later = utcnow() + timedelta(hours=5)
    assert approvals.remind_pending(core, timedelta(hours=4), now=later) == 1
    assert approvals.remind_pending(core, timedelta(hours=4), now=later) == 0
    assert approvals.remind_pending(core, timedelta(hours=4), now=later + timedelta(hours=5)) == 1
    assert audit_actions(core, row.id).count("request.reminded") == 2


def test_concurrent_reminders_remind_once(core):
    offboard_request(core, add_integration(core))
    later = utcnow() + timedelta(hours=5)
    results = race(4, lambda _i: approvals.remind_pending(core, timedelta(hours=4), now=later))
    assert sum(results) == 1, results


def test_an_interrupted_non_offboarding_run_is_marked_failed(core):
    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="set_groups",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={"user_name": "alice", "groups": [], "added": [], "removed": ["admins"]},
    )
    approvals.decide(core, row.id, approver="UAPPROVER0", approve=True, execute_now=False)
    with core.sessions.begin() as s:
        approvals.move(s, row.id, from_states=[APPROVED], to=RUNNING)
    assert approvals.recover_running(core) == 0  # still fresh: maybe another process runs it
    later = utcnow() + timedelta(minutes=10)
    assert approvals.recover_running(core, now=later) == 1
    failed = approvals.load(core, row.id)
    assert failed.state == FAILED
    assert failed.outcome.startswith("Interrupted")
    assert approvals.recover_running(core, now=later) == 0


def test_an_auto_approved_onboarding_that_fails_raises_and_keeps_no_secret(core):
    integration_id = add_integration(core)
    with pytest.raises(RoleUpError) as failure:
        submit_request(
            core,
            kind="onboard",
            integration_id=integration_id,
            requester="UMANAGER",
            payload={"username": "bad name!", "groups": [], "policies": []},
            secret="Typed-Passw0rd!",
        )
    assert "Typed-Passw0rd!" not in str(failure.value)
    with core.sessions() as s:
        (row,) = s.scalars(select(Request)).all()
    assert row.state == FAILED
    assert row.decided_by == approvals.AUTO_APPROVER
    assert row.secret_ciphertext is None
    assert row.outcome == failure.value.user_message


def test_a_failed_request_forgets_its_password_after_the_ttl(core):
    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="invite_onboard",
        integration_id=integration_id,
        requester="UNEWBIE",
        payload={"username": "newbie", "groups": [], "policies": []},
        secret="Chosen-Passw0rd!",
    )
    with core.sessions.begin() as s:
        stored = s.get(Request, row.id)
        stored.state = FAILED
        stored.updated_at = utcnow()
    approvals.expire_pending(core, now=utcnow() + timedelta(hours=1))
    assert approvals.load(core, row.id).secret_ciphertext is not None  # Retry still works
    approvals.expire_pending(core, now=utcnow() + timedelta(hours=25))
    assert approvals.load(core, row.id).secret_ciphertext is None


def test_a_late_click_on_a_done_integration_removal_says_it_was_approved(core):
    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="remove_integration",
        integration_id=integration_id,
        requester="UADMIN",
        payload={},
    )
    approvals.decide(core, row.id, approver="UAPPROVER0", approve=True)
    assert approvals.load(core, row.id).state == DONE
    with pytest.raises(RequestConflict, match="already approved by <@UAPPROVER0>"):
        approvals.decide(core, row.id, approver="UAPPROVER1", approve=True)


# --- leases ----------------------------------------------------------------------------------
def stuck_running(core, *, lease_owner, lease_expires_at, updated_at):
    """A set_groups request left running by another process, as the store would show it."""
    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="set_groups",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={"user_name": "alice", "added": [], "removed": ["admins"]},
    )
    approvals.decide(core, row.id, approver="UAPPROVER0", approve=True, execute_now=False)
    with core.sessions.begin() as s:
        approvals.move(s, row.id, from_states=[APPROVED], to=RUNNING, lease_owner=lease_owner)
        stored = s.get(Request, row.id)
        stored.lease_expires_at = lease_expires_at
        stored.updated_at = updated_at
    return row


def test_a_live_lease_is_never_taken_over_however_long_the_run_is_quiet(core):
    now = utcnow()
    row = stuck_running(
        core,
        lease_owner="slow-process",
        lease_expires_at=now + timedelta(minutes=1),
        updated_at=now - timedelta(hours=2),  # a slow IAM call: no step recorded for ages
    )
    assert approvals.recover_running(core, now=now) == 0
    assert state_of(core, row.id) == RUNNING
    assert approvals.recover_running(core, now=now + timedelta(minutes=2)) == 1
    assert state_of(core, row.id) == FAILED


def test_a_lease_outlives_the_slowest_aws_call():
    from bot.services.aws import WORST_CALL_SECONDS

    assert approvals.LEASE.total_seconds() > WORST_CALL_SECONDS
    assert approvals.LEASE.total_seconds() > approvals.RENEW_EVERY_SECONDS * 3


def test_two_processes_recovering_the_same_stale_request_take_it_over_once(core, settings):
    now = utcnow()
    row = stuck_running(
        core,
        lease_owner="dead-process",
        lease_expires_at=now - timedelta(seconds=1),
        updated_at=now - timedelta(minutes=1),
    )
    cores = [create_core(settings) for _ in range(2)]  # two processes: two engines, two pools
    try:
        results = race(2, lambda i: approvals.recover_running(cores[i], now=now))
    finally:
        for other in cores:
            other.engine.dispose()
    assert sorted(results) == [0, 1], results
    assert audit_actions(core, row.id).count("request.recovered") == 1


def test_a_late_outcome_from_a_runner_whose_lease_was_taken_over_is_dropped(core):
    now = utcnow()
    row = stuck_running(
        core,
        lease_owner="old-owner",
        lease_expires_at=now - timedelta(seconds=1),
        updated_at=now - timedelta(minutes=1),
    )
    assert approvals.recover_running(core, now=now) == 1
    taken = approvals.load(core, row.id)
    assert taken.state == FAILED and taken.outcome.startswith("Interrupted")
    # The old runner wakes up and tries to say it succeeded: its lease is gone.
    late = approvals._finish(core, taken, "old-owner", actor="UAPPROVER0", ok=True, outcome="ok")
    assert late.state == FAILED and late.outcome.startswith("Interrupted")


def test_a_failed_request_is_retried_only_within_the_window(core):
    integration_id = add_integration(core)
    row = offboard_request(core, integration_id)
    approvals.decide(core, row.id, approver="UAPPROVER0", approve=True, execute_now=False)
    with core.sessions.begin() as s:
        approvals.move(s, row.id, from_states=[APPROVED], to=RUNNING)
        approvals.move(s, row.id, from_states=[RUNNING], to=FAILED, outcome="AWS said no.")
        s.get(Request, row.id).updated_at = utcnow() - timedelta(hours=25)
    with pytest.raises(RequestConflict, match="make a new request"):
        approvals.retry(core, row.id, approver="UAPPROVER0")
    assert state_of(core, row.id) == FAILED
    assert "request.retried" not in audit_actions(core, row.id)


def test_a_group_turned_privileged_since_the_invite_takes_the_managers_say_away(core):
    from storage.models import AttachedPolicy, Group

    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="invite_onboard",
        integration_id=integration_id,
        requester="UNEWBIE",
        payload={"username": "newbie", "groups": ["ops"], "created_by": "UINVITER"},
        secret="Chosen-Passw0rd!",
    )
    assert row.state == PENDING
    with core.sessions.begin() as s:  # the next sync sees AdministratorAccess on ops
        group = Group(integration_id=integration_id, name="ops", path="/")
        s.add(group)
        s.flush()
        s.add(
            AttachedPolicy(
                integration_id=integration_id,
                group_id=group.id,
                policy_arn="arn:aws:iam::aws:policy/AdministratorAccess",
                policy_name="AdministratorAccess",
            )
        )
    with pytest.raises(NotAllowed, match="Only the approvers"):
        approvals.decide(core, row.id, approver="UMANAGER", approve=True, execute_now=False)
    with pytest.raises(NotAllowed, match="created this invite"):
        approvals.decide(core, row.id, approver="UINVITER", approve=True, execute_now=False)
    assert state_of(core, row.id) == PENDING
    decided = approvals.decide(core, row.id, approver="UAPPROVER0", approve=True, execute_now=False)
    assert decided.state == APPROVED


def test_an_integration_is_not_removed_under_a_request_that_is_running(core):
    integration_id = add_integration(core)
    running = offboard_request(core, integration_id)
    approvals.decide(core, running.id, approver="UAPPROVER0", approve=True, execute_now=False)
    with core.sessions.begin() as s:
        approvals.move(s, running.id, from_states=[APPROVED], to=RUNNING, lease_owner="busy")
    removal = submit_request(
        core,
        kind="remove_integration",
        integration_id=integration_id,
        requester="UADMIN",
        payload={},
    )
    failed = approvals.decide(core, removal.id, approver="UAPPROVER0", approve=True)
    assert failed.state == FAILED
    assert "has 1 request(s) running: remove it once they are done" in failed.outcome
    with core.sessions() as s:
        assert s.get(Integration, integration_id) is not None
    assert state_of(core, running.id) == RUNNING
