"""GET /readyz: is this instance fit to take traffic, and are the scheduled jobs running?

Ready means the store answers and the scheduler is up. Several instances share the scheduled
work (each tick runs in whichever process claims it first), so "the scheduler" is judged from
the claims every process writes, not from this process alone: it is up when any instance claimed
a job tick within ROLEUP_SCHEDULER_STALE_SECONDS (the grants job ticks every 20 seconds and
housekeeping every minute, so a live deployment claims several ticks a minute). An instance that
started its own scheduler less than that long ago is "starting" and still ready, so that a fresh
deployment is not refused before its first tick. A web process started with `--no-jobs` (or
ROLEUP_SCHEDULER=off) is therefore ready while a `roleup worker` ticks; with no worker ticking
nobody runs the jobs, and /readyz says so.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.services.claims import SYNC_JOB_PREFIX, JobRuns, job_runs, store_now
from bot.services.container import Core
from storage.db import check_store
from storage.models import Integration

logger = logging.getLogger(__name__)


def readiness(core: Core, *, detail: bool) -> tuple[bool, dict[str, Any]]:
    """(ready, the JSON body); `detail` adds each job and integration."""
    this_instance = _this_instance(core)
    try:
        check_store(core.engine)
        with core.sessions() as session:
            now = store_now(session)  # the clock the claims were stamped with
            runs = job_runs(session)
            integrations = session.execute(
                select(
                    Integration.id,
                    Integration.name,
                    Integration.last_sync_at,
                    Integration.last_sync_status,
                    Integration.health_status,
                ).order_by(Integration.name)
            ).all()
    except Exception:  # StoreUnavailable or whatever the driver raised: the store is not there
        logger.warning("readyz: the store did not answer", exc_info=True)
        return False, {
            "status": "unavailable",
            "store": "unreachable",
            "scheduler": {"status": "unknown", "this_instance": this_instance},
        }
    scheduler = _scheduler_status(core, runs, now, this_instance)
    ready = scheduler["status"] != "down"
    body: dict[str, Any] = {
        "status": "ok" if ready else "unavailable",
        "store": "ok",
        "scheduler": scheduler,
    }
    if detail:
        names = {
            f"{SYNC_JOB_PREFIX}{id_}": f"{SYNC_JOB_PREFIX}{name}" for id_, name, *_ in integrations
        }
        scheduler["jobs"] = {
            names.get(job, job): {
                "last_tick": _iso(run.last_tick),
                "last_success": _iso(run.last_success),
            }
            for job, run in runs.items()
            if not job.startswith(SYNC_JOB_PREFIX) or job in names
        }
        body["integrations"] = [
            {
                "name": name,
                "last_sync": _iso(last_sync),
                "last_sync_status": status or "never",
                "health": health or "unknown",
            }
            for _, name, last_sync, status, health in integrations
        ]
    return ready, body


def _scheduler_status(
    core: Core, runs: dict[str, JobRuns], now: datetime, this_instance: str
) -> dict[str, Any]:
    stale = timedelta(seconds=core.settings.scheduler_stale_seconds)
    last_tick = max((r.last_tick for r in runs.values() if r.last_tick is not None), default=None)
    started_at = core.scheduler.started_at if core.scheduler is not None else None
    if last_tick is not None and now - last_tick <= stale:
        status = "ok"
    elif this_instance == "running" and started_at is not None and now - started_at <= stale:
        status = "starting"
    else:
        status = "down"
    return {
        "status": status,
        "last_tick": _iso(last_tick),
        "stale_after_seconds": core.settings.scheduler_stale_seconds,
        "this_instance": this_instance,
    }


def _this_instance(core: Core) -> str:
    scheduler = core.scheduler
    if scheduler is None:
        return "off"
    return "running" if scheduler.running else "stopped"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None
