"""The scheduler in one process: claims, reconciling jobs with the integrations table, wiring."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import select

from bot.app import create_app, create_core
from bot.scheduler import (
    ACCOUNTS_JOB,
    GRANTS_JOB,
    HEALTH_JOB,
    HOUSEKEEPING_JOB,
    REVIEWS_JOB,
    ROTATION_JOB,
    JobFunctions,
    JobScheduler,
    housekeep,
)
from bot.services.claims import claim_slot, prune_claims, slot_of, sync_job_id
from bot.services.container import Core
from bot.settings import Settings
from storage.models import Integration, JobClaim
from tests.support import seed
from tests.support.waiting import wait_until


@pytest.fixture
def core(settings: Settings) -> Iterator[Core]:
    core = create_core(replace(settings, sync_interval_unit_seconds=1, reconcile_seconds=1))
    yield core
    core.engine.dispose()


# The running scheduler re-reads the integrations this often (the setting is whole seconds).
RECONCILE_SECONDS = 0.05

# Nobody to approve, no key: only its sync interval matters here.
add_integration = partial(
    seed.add_integration,
    key=None,
    **seed.UNATTENDED,
    sync_interval_minutes=15,
)


class Recorder:
    """JobFunctions that remember what ran, in which slot, in which process."""

    def __init__(self) -> None:
        self.syncs: list[tuple[int, int, str]] = []
        self.lock = threading.Lock()

    def functions(self) -> JobFunctions:
        return JobFunctions(sync=self.sync, health=lambda core: None, housekeeping=housekeep)

    def sync(self, core: Core, integration_id: int, slot: int, instance: str) -> None:
        with self.lock:
            self.syncs.append((integration_id, slot, instance))

    def synced(self, integration_id: int) -> list[tuple[int, int, str]]:
        with self.lock:
            return [s for s in self.syncs if s[0] == integration_id]


# --- claims --------------------------------------------------------------------------------
def test_the_first_claim_of_a_slot_wins_and_the_next_slot_is_free(core):
    assert claim_slot(core, "sync:1", 100, "a") is True
    assert claim_slot(core, "sync:1", 100, "b") is False
    assert claim_slot(core, "sync:2", 100, "b") is True
    assert claim_slot(core, "sync:1", 101, "b") is True
    with core.sessions() as session:
        owners = session.execute(select(JobClaim.job, JobClaim.slot, JobClaim.instance)).all()
    assert sorted(owners) == [("sync:1", 100, "a"), ("sync:1", 101, "b"), ("sync:2", 100, "b")]


def test_concurrent_claims_of_one_slot_have_exactly_one_winner(core):
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def contend(name: str) -> None:
        barrier.wait()
        results.append(claim_slot(core, "health", 7, name))

    threads = [threading.Thread(target=contend, args=(f"p{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_a_winner_prunes_old_claims_of_its_job_only(core):
    for slot in range(10, 15):
        claim_slot(core, "sync:1", slot, "a")
    claim_slot(core, "sync:2", 1, "a")
    with core.sessions() as session:
        kept = session.execute(select(JobClaim.job, JobClaim.slot).order_by(JobClaim.id)).all()
    assert kept == [("sync:1", 12), ("sync:1", 13), ("sync:1", 14), ("sync:2", 1)]


def test_claims_of_removed_integrations_and_stale_claims_are_pruned(core):
    kept_id = add_integration(core, "prod")
    claim_slot(core, sync_job_id(kept_id), 5, "a")
    claim_slot(core, sync_job_id(kept_id + 1000), 5, "a")
    claim_slot(core, HOUSEKEEPING_JOB, 5, "a")
    assert prune_claims(core, older_than=timedelta(days=2)) == 1
    with core.sessions() as session:
        assert set(session.scalars(select(JobClaim.job))) == {
            sync_job_id(kept_id),
            HOUSEKEEPING_JOB,
        }
    assert prune_claims(core, older_than=timedelta(0)) == 2


def test_slots_are_whole_intervals_since_1970():
    tick = datetime.fromtimestamp(300 * 1_000_000, UTC)
    assert slot_of(tick, 300) == 1_000_000
    assert slot_of(tick + timedelta(seconds=299), 300) == 1_000_000
    assert slot_of(tick - timedelta(seconds=1), 300) == 999_999


def test_two_schedulers_run_a_tick_once(core):
    ran: list[str] = []
    first = JobScheduler(core, instance="one")
    second = JobScheduler(core, instance="two")
    assert first.run_claimed("job", 3600, lambda slot: ran.append("one"))
    assert not second.run_claimed("job", 3600, lambda slot: ran.append("two"))
    assert ran == ["one"]


def test_a_failing_job_does_not_escape_the_scheduler(core):
    def boom(slot: int) -> None:
        raise RuntimeError("AWS said no")

    assert JobScheduler(core, instance="one").run_claimed("job", 3600, boom) is True


# --- jobs follow the integrations table -----------------------------------------------------
def test_reconcile_adds_retimes_and_drops_sync_jobs(core):
    scheduler = JobScheduler(core, jobs=Recorder().functions())
    prod = add_integration(core, "prod", sync_interval_minutes=15)
    dev = add_integration(core, "dev", sync_interval_minutes=5)
    scheduler.reconcile()
    assert scheduler.sync_intervals() == {sync_job_id(prod): 15, sync_job_id(dev): 5}

    with core.sessions.begin() as session:
        session.get_one(Integration, prod).sync_interval_minutes = 30
        session.delete(session.get_one(Integration, dev))
    scheduler.reconcile()
    assert scheduler.sync_intervals() == {sync_job_id(prod): 30}


def test_sync_jobs_are_deliberately_configured(core):
    scheduler = JobScheduler(core)
    prod = add_integration(core, "prod", sync_interval_minutes=20)
    scheduler.reconcile()
    job = scheduler.scheduler.get_job(sync_job_id(prod))
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time == 15  # three quarters of the 20 s interval


def test_a_running_scheduler_follows_edits_without_restart(core):
    recorder = Recorder()
    scheduler = JobScheduler(
        core, jobs=recorder.functions(), instance="solo", reconcile_seconds=RECONCILE_SECONDS
    )
    scheduler.start()
    try:
        prod = add_integration(core, "prod", sync_interval_minutes=1)
        wait_until(lambda: len(recorder.synced(prod)) >= 2)

        with core.sessions.begin() as session:
            session.get_one(Integration, prod).sync_interval_minutes = 100_000
        wait_until(lambda: scheduler.sync_intervals() == {sync_job_id(prod): 100_000})
        settled = len(recorder.synced(prod))

        later = add_integration(core, "later", sync_interval_minutes=1)
        wait_until(lambda: len(recorder.synced(later)) >= 2)
        with core.sessions.begin() as session:
            session.delete(session.get_one(Integration, later))
        wait_until(lambda: sync_job_id(later) not in scheduler.sync_intervals())
    finally:
        scheduler.shutdown()
    # Each run was a distinct slot, and prod stopped at the ~28 hour interval (at most the run
    # already under way when the edit landed).
    slots = [slot for _, slot, _ in recorder.synced(prod)]
    assert len(slots) == len(set(slots))
    assert len(recorder.synced(prod)) <= settled + 1
    assert not scheduler.running


def test_fixed_jobs_are_scheduled_once_however_often_start_is_called(core):
    scheduler = JobScheduler(core)
    scheduler.start()
    scheduler.start()
    try:
        ids = sorted(job.id for job in scheduler.scheduler.get_jobs())
        jobs = [ACCOUNTS_JOB, GRANTS_JOB, HEALTH_JOB, HOUSEKEEPING_JOB, REVIEWS_JOB, ROTATION_JOB]
        jobs.append("reconcile")
        assert ids == sorted(jobs)
        health = scheduler.scheduler.get_job(HEALTH_JOB)
        assert health.next_run_time.timetz().replace(tzinfo=None).isoformat() == "00:00:00"
    finally:
        scheduler.shutdown()


# --- wiring ---------------------------------------------------------------------------------
def test_create_app_leaves_the_scheduler_out_when_it_is_off(settings):
    app = create_app(settings)
    try:
        assert app.core.scheduler is None
    finally:
        app.close()


def test_create_app_builds_but_does_not_start_the_scheduler(settings):
    app = create_app(replace(settings, scheduler_enabled=True))
    try:
        scheduler = app.core.scheduler
        assert scheduler is not None
        assert not scheduler.running
        scheduler.start()
        assert scheduler.running
    finally:
        app.close()
    assert not scheduler.running


# --- housekeeping ---------------------------------------------------------------------------
def pending_request(core: Core, *, age: timedelta, expires_in: timedelta) -> str:
    import uuid

    from storage.models import Request

    now = datetime.now(UTC)
    with core.sessions.begin() as session:
        row = Request(
            id=str(uuid.uuid4()),
            integration_id=add_integration(core, f"i{uuid.uuid4().hex[:6]}"),
            kind="offboard",
            payload={"user_name": "bob"},
            requester="UMANAGER",
            created_at=now - age,
            expires_at=now + expires_in,
        )
        session.add(row)
        return row.id


def test_housekeeping_expires_and_reminds_after_the_configured_delay(roleup):
    from storage.models import Request

    core = roleup.core
    core.settings = replace(core.settings, reminder_hours=2.0, request_ttl_hours=24.0)
    expired = pending_request(core, age=timedelta(hours=25), expires_in=timedelta(hours=-1))
    old = pending_request(core, age=timedelta(hours=3), expires_in=timedelta(hours=21))
    young = pending_request(core, age=timedelta(hours=1), expires_in=timedelta(hours=23))
    claim_slot(core, sync_job_id(999_999), 1, "gone")  # the sync of an integration now removed

    housekeep(core)
    housekeep(core)  # a second run reminds nobody again

    with core.sessions() as session:
        rows = {r.id: r for r in session.scalars(select(Request))}
        claims = list(session.scalars(select(JobClaim.job)))
    assert rows[expired].state == "expired"
    assert (rows[old].state, rows[old].reminded_at is not None) == ("pending", True)
    assert (rows[young].state, rows[young].reminded_at) == ("pending", None)
    assert claims == []


def test_housekeeping_forgets_slack_delivery_keys_older_than_a_day(roleup):
    from storage.models import SlackDelivery

    core = roleup.core
    now = datetime.now(UTC)
    with core.sessions.begin() as session:
        session.add(SlackDelivery(key="trigger:old", seen_at=now - timedelta(days=2)))
        session.add(SlackDelivery(key="trigger:recent", seen_at=now - timedelta(minutes=10)))

    housekeep(core)

    with core.sessions() as session:
        keys = set(session.scalars(select(SlackDelivery.key)))
    assert keys == {"trigger:recent"}
