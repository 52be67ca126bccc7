"""Job claims: the row in the store that lets exactly one process run a scheduled job per slot.

Every process schedules every job in memory (APScheduler 3 cannot share a job store between
processes), so at each tick several processes wake up for the same job. Each first tries to
insert the unique (job, slot) row; the one whose insert lands runs the job, the others skip it.
On PostgreSQL the attempt runs under a transaction-scoped advisory lock on the job, so the
claims (and the pruning of old claims) of one job are decided one process at a time and the
lock can never outlive a crashed process.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Insert, Result, String, cast, delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.services.container import Core
from storage.models import Integration, JobClaim, utcnow

SYNC_JOB_PREFIX = "sync:"
# A run that finished without an error leaves a second row, under the job's name with this
# prefix and the same slot, so that /readyz can tell when each job last worked, whichever process
# ran it. Pruned like the claims themselves.
DONE_PREFIX = "done:"

# Claims older than this many slots of their job are pruned by the next winner of that job.
# One is enough for correctness (a late process can only still try the current slot); two
# leave the previous run visible when someone looks at the table.
KEEP_SLOTS = 2


def slot_of(moment: datetime, interval_seconds: int) -> int:
    """The tick a run belongs to: ticks fall on whole multiples of the interval since 1970.

    Every process schedules its ticks on those multiples, so a run at tick k + lateness gives
    k in every process as long as it is less than one interval late (the misfire grace time
    makes sure of that).
    """
    return math.floor(moment.timestamp() / interval_seconds)


def lock_key(job: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock (Python's hash() is salted)."""
    digest = hashlib.blake2b(job.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def claim_slot(core: Core, job: str, slot: int, instance: str) -> bool:
    """True if this process won (job, slot) and must run it; False if another already has."""
    with core.sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(lock_key(job))))
        won = session.execute(_insert_claim(session, job, slot, instance)).first() is not None
        if won:
            session.execute(
                delete(JobClaim).where(JobClaim.job == job, JobClaim.slot < slot - KEEP_SLOTS)
            )
    return won


def store_now(session: Session) -> datetime:
    """The store's clock, which every process shares: claims are stamped with it and /readyz
    compares with it, so a process whose own clock is off (a worker on another machine) is
    neither taken for stopped nor kept for alive past its last tick."""
    if session.get_bind().dialect.name == "postgresql":
        moment = session.scalar(select(func.clock_timestamp()))
    else:  # SQLite is a file on this machine: its clock is the C library's, not Python's patch
        raw = session.scalar(select(func.strftime("%Y-%m-%d %H:%M:%f", "now")))
        moment = datetime.fromisoformat(str(raw))
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _insert_claim(session: Session, job: str, slot: int, instance: str) -> Insert:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(JobClaim)
        .values(job=job, slot=slot, instance=instance[:128], claimed_at=store_now(session))
        .on_conflict_do_nothing(index_elements=["job", "slot"])
        # A row comes back only when this insert landed (both dialects support RETURNING).
        .returning(JobClaim.id)
    )


def record_success(core: Core, job: str, slot: int, instance: str) -> None:
    """Note that (job, slot) finished without an error (see DONE_PREFIX)."""
    done = DONE_PREFIX + job
    with core.sessions.begin() as session:
        session.execute(_insert_claim(session, done, slot, instance))
        session.execute(
            delete(JobClaim).where(JobClaim.job == done, JobClaim.slot < slot - KEEP_SLOTS)
        )


@dataclass(frozen=True)
class JobRuns:
    """When a job was last claimed (a tick ran somewhere) and when a run last finished well."""

    last_tick: datetime | None = None
    last_success: datetime | None = None


def job_runs(session: Session) -> dict[str, JobRuns]:
    """Every job's last tick and last success, across all processes, from the claims kept."""
    latest = session.execute(
        select(JobClaim.job, func.max(JobClaim.claimed_at)).group_by(JobClaim.job)
    )
    ticks: dict[str, datetime] = {}
    successes: dict[str, datetime] = {}
    for job, at in latest:
        if job.startswith(DONE_PREFIX):
            successes[job.removeprefix(DONE_PREFIX)] = at
        else:
            ticks[job] = at
    return {
        job: JobRuns(ticks.get(job), successes.get(job))
        for job in sorted(ticks.keys() | successes.keys())
    }


def sync_job_id(integration_id: int) -> str:
    return f"{SYNC_JOB_PREFIX}{integration_id}"


def prune_claims(core: Core, *, older_than: timedelta) -> int:
    """Drop stale claims and those of removed integrations' syncs (nothing of theirs stays)."""
    live_syncs = select(literal(SYNC_JOB_PREFIX) + cast(Integration.id, String))
    with core.sessions.begin() as session:
        # One statement each, so an integration added meanwhile is either seen or not claimed.
        orphaned = session.execute(
            delete(JobClaim).where(
                JobClaim.job.startswith(SYNC_JOB_PREFIX), JobClaim.job.not_in(live_syncs)
            )
        )
        done_syncs = DONE_PREFIX + SYNC_JOB_PREFIX
        live_done = select(literal(done_syncs) + cast(Integration.id, String))
        orphaned_done = session.execute(
            delete(JobClaim).where(
                JobClaim.job.startswith(done_syncs), JobClaim.job.not_in(live_done)
            )
        )
        stale = session.execute(delete(JobClaim).where(JobClaim.claimed_at < utcnow() - older_than))
        return _count(orphaned) + _count(orphaned_done) + _count(stale)


def _count(result: Result[Any]) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
