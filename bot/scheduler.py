"""Scheduled jobs: per-integration syncs, the daily health check and housekeeping.

APScheduler 3 keeps its jobs in memory here, one scheduler per process: its FAQ warns that a
job store shared by several processes gives duplicate or missed runs. The jobs are derived from
the integrations table (a cheap reconcile job re-reads it every few seconds, so added, edited
and removed integrations take effect without a restart) and every run first claims its
(job, slot) row in the store (bot.services.claims), so that across any number of processes each
tick runs once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from bot.notices import Drift, Problem
from bot.services.claims import (
    SYNC_JOB_PREFIX,
    claim_slot,
    prune_claims,
    record_success,
    slot_of,
    sync_job_id,
)
from bot.services.container import Core
from storage.models import Integration, utcnow

logger = logging.getLogger(__name__)

RECONCILE_JOB = "reconcile"
HOUSEKEEPING_JOB = "housekeeping"
HEALTH_JOB = "health"
GRANTS_JOB = "grants"
ROTATION_JOB = "key-rotation"
# Keys are rotated in days; an hourly look finds a due one (or an unfinished rotation) soon.
ROTATION_SECONDS = 60 * 60
REVIEWS_JOB = "reviews"
REVIEWS_SECONDS = 60
ACCOUNTS_JOB = "account_expiries"
HOUSEKEEPING_SECONDS = 60
# A grant ends within this long after its end (well within the minute promised).
GRANTS_SECONDS = 20
# An expiring account is offboarded within this long after 00:00 UTC of its date.
ACCOUNTS_SECONDS = 20
HEALTH_SECONDS = 24 * 60 * 60
# Ticks are whole multiples of the interval since this instant, the same in every process, so
# that the processes' ticks coincide and compute the same slot (the daily check runs at 00:00 UTC).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Claims are kept long enough to outlive the longest interval's previous slot.
CLAIM_RETENTION = timedelta(seconds=2 * HEALTH_SECONDS)
# Slack retries a delivery within minutes; a day of keys is ample to recognise every retry.
DELIVERY_RETENTION = timedelta(days=1)
DRIFT_AUDIT_ITEMS = 500  # changes itemised in the drift audit event; the count is always whole

Work = Callable[[int], None]


class JobFailed(Exception):
    """A job that logged its own failure (without a stack) and must not count as a success."""


def job_kind(job_id: str) -> str:
    """The job's name without its integration: a bounded metric label."""
    return job_id.split(":", 1)[0]


@dataclass
class JobFunctions:
    """What the jobs do; tests swap in their own to exercise the scheduling alone."""

    sync: Callable[[Core, int, int, str], None]
    health: Callable[[Core], None]
    housekeeping: Callable[[Core], None]
    grants: Callable[[Core, str], None] = field(default=lambda core, instance: None)
    rotation: Callable[[Core], None] = field(default=lambda core: None)
    reviews: Callable[[Core], None] = field(default=lambda core: None)
    accounts: Callable[[Core, str], None] = field(default=lambda core, instance: None)


def default_jobs() -> JobFunctions:
    return JobFunctions(
        sync=run_scheduled_sync,
        health=run_health_check,
        housekeeping=housekeep,
        grants=tend_grants,
        rotation=rotate_due_keys,
        reviews=tend_reviews,
        accounts=tend_account_expiries,
    )


@dataclass
class JobScheduler:
    """One process's scheduler: built by create_app, started once by serve/socket."""

    core: Core
    jobs: JobFunctions = field(default_factory=default_jobs)
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    #: Seconds between two reads of the integrations table; None takes
    #: ROLEUP_RECONCILE_SECONDS. A fraction of a second lets a test see an edit followed at once.
    reconcile_seconds: float | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._started = False
        # Claimed runs under way in this process, so that a stopping `roleup worker` lets them end.
        self._busy = threading.Condition()
        self._running_jobs = 0
        self._stopped = False  # set by shutdown: a tick the executor still had queued is dropped
        #: When this process started its scheduler (/readyz's grace before the first tick).
        self.started_at: datetime | None = None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            # Syncs of different integrations may run side by side; a few threads are plenty
            # since each sync mostly waits on AWS.
            executors={"default": ThreadPoolExecutor(max_workers=4)},
        )

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start once per process; later calls do nothing."""
        with self._lock:
            if self._started:
                return
            self._started = True
            with self._busy:
                self._stopped = False
            self.started_at = utcnow()
            self._add(HOUSEKEEPING_JOB, HOUSEKEEPING_SECONDS, self._housekeeping)
            self._add(HEALTH_JOB, HEALTH_SECONDS, self._health)
            self._add(GRANTS_JOB, GRANTS_SECONDS, self._grants)
            self._add(ROTATION_JOB, ROTATION_SECONDS, self._rotation)
            self._add(REVIEWS_JOB, REVIEWS_SECONDS, self._reviews)
            self._add(ACCOUNTS_JOB, ACCOUNTS_SECONDS, self._accounts)
            self.scheduler.add_job(
                self.reconcile,
                IntervalTrigger(seconds=self._reconcile_seconds(), timezone=UTC),
                id=RECONCILE_JOB,
                # Local only (it edits this process's jobs), so no claim; a late reconcile is
                # as good as an on-time one and two queued ones are no better than one.
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
            self.reconcile()
            self.scheduler.start()
            logger.info("scheduler started as %s", self.instance)

    def _reconcile_seconds(self) -> float:
        if self.reconcile_seconds is None:
            return self.core.settings.reconcile_seconds
        return self.reconcile_seconds

    def shutdown(self) -> None:
        with self._lock:
            if self._started and self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            self._started = False
            with self._busy:
                self._stopped = True

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the runs under way here to end (after shutdown no new
        one starts); True when none is left."""
        with self._busy:
            return self._busy.wait_for(lambda: self._running_jobs == 0, timeout)

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    # --- jobs derived from the integrations table ---------------------------------------
    def reconcile(self) -> None:
        """Make the sync jobs match the integrations table: add, re-time and drop them."""
        try:
            wanted = self.wanted_syncs()
        except Exception:  # the store is down: keep the jobs we have and try again next time
            logger.warning("could not read the integrations to schedule their syncs", exc_info=True)
            return
        current = self.sync_intervals()
        for job_id in current.keys() - wanted.keys():
            self.scheduler.remove_job(job_id)
            logger.info("unscheduled %s", job_id)
        for job_id, interval in wanted.items():
            if current.get(job_id) != interval:
                integration_id = int(job_id.removeprefix(SYNC_JOB_PREFIX))
                self._add(job_id, interval, self._sync_work(integration_id))
                logger.info("scheduled %s every %ss", job_id, interval)

    def wanted_syncs(self) -> dict[str, int]:
        unit = self.core.settings.sync_interval_unit_seconds
        with self.core.sessions() as session:
            rows = session.execute(select(Integration.id, Integration.sync_interval_minutes))
            return {sync_job_id(id_): max(1, every or 15) * unit for id_, every in rows}

    def sync_intervals(self) -> dict[str, int]:
        """The sync jobs this process has now, with their intervals in seconds."""
        return {
            job.id: int(job.trigger.interval_length)
            for job in self.scheduler.get_jobs()
            if job.id.startswith(SYNC_JOB_PREFIX)
        }

    def _add(self, job_id: str, interval: int, work: Work) -> None:
        self.scheduler.add_job(
            self.run_claimed,
            IntervalTrigger(seconds=interval, start_date=EPOCH, timezone=UTC),
            args=(job_id, interval, work),
            id=job_id,
            name=job_id,
            replace_existing=True,
            # A process that was stalled (GC, a slow store, a suspended VM) runs a job once for
            # all the ticks it missed, not back to back: one sync brings the store up to date.
            coalesce=True,
            # A sync slower than its interval is not started again on top of itself here.
            max_instances=1,
            # Late by most of an interval is still the same tick (the slot is computed from the
            # clock at run time); later than that it is skipped, since the next tick is close
            # and would otherwise fall into the same slot as the late run.
            misfire_grace_time=max(1, interval * 3 // 4),
        )

    # --- running ------------------------------------------------------------------------
    def run_claimed(self, job_id: str, interval: int, work: Work) -> bool:
        """Run `work` for the current tick if this process claims it first; True if it ran."""
        with self._busy:
            # After shutdown the executor still runs the ticks it had queued: none may start.
            # A run is under way (drain waits for it) from before its claim, which can wait on
            # the store for as long as another claimant holds the lock.
            if self._stopped:
                return False
            self._running_jobs += 1
        try:
            slot = slot_of(utcnow(), interval)
            try:
                won = claim_slot(self.core, job_id, slot, self.instance)
            except Exception:  # the store is down: nobody can claim, the next tick will try again
                logger.warning("could not claim %s for slot %s", job_id, slot, exc_info=True)
                return False
            if not won:
                logger.debug("%s slot %s is another process's", job_id, slot)
                return False
            self._run_won(job_id, slot, work)
        finally:
            with self._busy:
                self._running_jobs -= 1
                self._busy.notify_all()
        return True

    def _run_won(self, job_id: str, slot: int, work: Work) -> None:
        ok = False
        try:
            work(slot)
            ok = True
        except JobFailed:  # the job said why already
            pass
        except Exception:  # a failing job must not stop the scheduler; the next tick retries
            logger.exception("scheduled job %s failed", job_id)
        self.core.metrics.job_ran(job_kind(job_id), ok)
        if ok:
            try:
                record_success(self.core, job_id, slot, self.instance)
            except Exception:  # the store blinked: /readyz shows an older success meanwhile
                logger.warning("could not record the success of %s", job_id, exc_info=True)

    def _sync_work(self, integration_id: int) -> Work:
        def work(slot: int) -> None:
            self.jobs.sync(self.core, integration_id, slot, self.instance)

        return work

    def _health(self, slot: int) -> None:
        self.jobs.health(self.core)

    def _housekeeping(self, slot: int) -> None:
        self.jobs.housekeeping(self.core)

    def _grants(self, slot: int) -> None:
        self.jobs.grants(self.core, self.instance)

    def _rotation(self, slot: int) -> None:
        self.jobs.rotation(self.core)

    def _reviews(self, slot: int) -> None:
        self.jobs.reviews(self.core)

    def _accounts(self, slot: int) -> None:
        self.jobs.accounts(self.core, self.instance)


def build_scheduler(core: Core) -> JobScheduler | None:
    """The scheduler create_app hands to serve/socket, or None when ROLEUP_SCHEDULER=off."""
    if not core.settings.scheduler_enabled:
        return None
    return JobScheduler(core)


# --- the real jobs ------------------------------------------------------------------------
def run_scheduled_sync(core: Core, integration_id: int, slot: int, instance: str) -> None:
    """Sync one integration on its schedule, then post the drift made outside RoleUp."""
    from bot.services.errors import RoleUpError
    from bot.services.sync import sync_integration

    name = _note_scheduled_sync(core, integration_id, slot, instance)
    if name is None:  # removed since this process last reconciled
        return
    try:
        report = sync_integration(core, integration_id, actor="scheduler")
    except RoleUpError as err:  # already recorded by the sync; the health check alerts
        logger.warning("scheduled sync of %s failed: %s", name, err)
        raise JobFailed(name) from None
    report_drift(core, integration_id, report.outside_changes(), report.new_problems)


def _note_scheduled_sync(core: Core, integration_id: int, slot: int, instance: str) -> str | None:
    """Audit which process ran which tick (how exactly-once is checked); None if it is gone."""
    from bot.services import audit

    with core.sessions.begin() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            return None
        audit.record_integration(
            session,
            integration.name,
            actor="scheduler",
            action="sync.scheduled",
            detail={"slot": slot, "instance": instance},
        )
        return integration.name


def report_drift(
    core: Core,
    integration_id: int,
    changes: Sequence[Drift],
    problems: Sequence[Problem] = (),
) -> bool:
    """Post one digest of outside changes and of values from IAM not stored as read to the
    approvals channel and audit it; nothing when there is neither. True if one was posted."""
    from bot.notices import drift_digest, post
    from bot.services import audit

    if not changes and not problems:
        return False
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            return False
        name, channel = integration.name, integration.approvals_channel
    text, blocks = drift_digest(name, changes, problems)
    posted = post(core, channel, text, blocks)
    with core.sessions.begin() as session:
        audit.record_integration(
            session,
            name,
            actor="scheduler",
            action="sync.drift",
            outcome="ok" if posted else "not_posted",
            detail={
                "count": len(changes),
                "channel": channel,
                "changes": [_drift_detail(change) for change in changes[:DRIFT_AUDIT_ITEMS]],
                "problems": [
                    {"subject": p.subject, "what": p.what, "value": p.value}
                    for p in problems[:DRIFT_AUDIT_ITEMS]
                ],
            },
        )
    return posted


def _drift_detail(change: Drift) -> dict[str, object]:
    return {
        "user_name": change.user_name,
        "kind": change.kind,
        "groups_added": list(change.groups_added),
        "groups_removed": list(change.groups_removed),
        "policies_added": list(change.policies_added),
        "policies_removed": list(change.policies_removed),
    }


def tend_grants(core: Core, instance: str) -> None:
    """Remind people of grants ending soon; remove the memberships whose time-bound grant has
    come to its end, and tell them; announce again the break-glass grants nobody has
    acknowledged for 4 hours (or whose announcement could not be posted)."""
    from bot.notices import announce_breakglass, post_grant_failure, remind_grant, tell_grant_ended
    from bot.services.breakglass import announce_due
    from bot.services.expiry import expire_due, remind_due

    for reminder in remind_due(core):
        remind_grant(core, reminder)
    for result in expire_due(core, instance=instance):
        if result.ended:
            tell_grant_ended(core, result)
        elif result.alert:
            post_grant_failure(core, result)
    for announcement in announce_due(core):
        announce_breakglass(core, announcement)


def rotate_due_keys(core: Core) -> None:
    """Rotate the access keys whose `--rotate-every` has come (and finish any rotation left
    unfinished); the approvals channel hears of a failure (the key in use still works)."""
    from bot.notices import post
    from bot.services.key_rotation import rotate_due
    from bot.slack import blocks as bk
    from bot.slack.mrkdwn import escape

    for name, error in rotate_due(core):
        with core.sessions() as session:
            row = session.scalar(select(Integration).where(Integration.name == name))
            channel = row.approvals_channel if row is not None else None
        text = (
            f":warning: The scheduled rotation of *{escape(name)}*'s access key failed: "
            f"{escape(error)} The key in use still works; it is tried again within an hour."
        )
        post(core, channel, text, [bk.section(text)])


def tend_reviews(core: Core) -> None:
    """Access reviews: close the campaigns whose due date has come (summary to the approvals
    channel, undecided items to the admins), remind reviewers every 3 days, and start the
    campaigns an integration's schedule asks for. Each move is guarded in the store."""
    from bot.review_notices import announce_close, announce_start, remind
    from bot.services.review_jobs import close_due, remind_due, start_scheduled

    for closed in close_due(core):
        announce_close(core, closed)
    for reminder in remind_due(core):
        remind(core, reminder)
    for started in start_scheduled(core):
        announce_start(core, started)


def tend_account_expiries(core: Core, instance: str) -> None:
    """Remind requesters of accounts expiring in 7 days and in 1 day; offboard the accounts
    whose date has come (announced with the checklist in the approvals channel), and report
    the third failure in a row there."""
    from bot.notices import post_account_expiry_failure, remind_account, tell_account_expired
    from bot.services.account_ending import expire_due, remind_due

    for reminder in remind_due(core):
        remind_account(core, reminder)
    for result in expire_due(core, instance=instance):
        if result.ended and not result.quiet:
            tell_account_expired(core, result)
        elif result.alert:
            post_account_expiry_failure(core, result)


def run_health_check(core: Core) -> None:
    """The daily credential check; the approvals channel hears of an integration turning bad."""
    from bot.notices import post_health_alert
    from bot.services.health import check_all

    for change in check_all(core):
        logger.info("integration %s is now %s", change.integration, change.after.status)
        if change.turned_bad:
            post_health_alert(core, change)


def housekeep(core: Core) -> None:
    """Minute-by-minute chores, each on its own so one failing does not stop the others:
    expire requests nobody decided, remind approvers of old ones, take over requests a dead
    process left running, and prune claims and Slack delivery keys nobody needs any more.

    Invites need no job: an invite past its expiry is refused where it is opened and answered
    (bot.services.invites), and the request an answered invite makes expires here like any other.
    """
    from bot.services import approvals
    from bot.slack import retry_guard

    reminder_delay = timedelta(hours=core.settings.reminder_hours)
    chores: list[tuple[str, Callable[[], object]]] = [
        ("expire pending requests", lambda: approvals.expire_pending(core)),
        ("remind approvers", lambda: approvals.remind_pending(core, reminder_delay)),
        ("recover interrupted requests", lambda: approvals.recover_running(core)),
        ("prune job claims", lambda: prune_claims(core, older_than=CLAIM_RETENTION)),
        ("prune Slack delivery keys", lambda: retry_guard.prune(core.sessions, DELIVERY_RETENTION)),
    ]
    for what, chore in chores:
        try:
            done = chore()
        except Exception:  # logged; the next minute tries again
            logger.exception("housekeeping could not %s", what)
            continue
        if done:
            logger.info("housekeeping: %s: %s", what, done)
