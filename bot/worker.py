"""`roleup worker`: the scheduled jobs in a process of their own, beside web processes started
with `roleup serve --no-jobs`, so that a long sync never competes with acknowledgements.

It listens on no port. Every run first claims its (job, slot) row in the store as in any other
process (bot.scheduler), so any number of workers and web processes still run each tick once.
SIGTERM or SIGINT stops it: no new tick starts, the runs under way get STOP_GRACE_SECONDS to end,
and it exits 0. A run still going then is abandoned (exit 1), as a crash would: each job is
written to be taken over (one transaction a sync, leases on ending grants and accounts, and
requests left running are recovered by housekeeping).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.scheduler import JobScheduler

logger = logging.getLogger(__name__)

# As long as gunicorn's graceful_timeout under `roleup serve`, and within the 30 seconds that
# Heroku and Kubernetes leave between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 20.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_worker(settings: Settings) -> int:
    """`roleup worker`: run the jobs until SIGTERM or SIGINT; the exit status."""
    from bot.app import create_worker

    return work_until_stopped(create_worker(settings), threading.Event())


def work_until_stopped(
    scheduler: JobScheduler,
    stop: threading.Event,
    *,
    grace: float = STOP_GRACE_SECONDS,
    abandon: Callable[[int], object] = os._exit,
) -> int:
    """Run the jobs until `stop` is set (also by SIGTERM or SIGINT in the main thread); 0 once
    every run under way has ended, else `abandon(1)`, which exits the process at once."""
    from storage.db import check_store
    from storage.migrate import check_schema

    core = scheduler.core
    restore = _stop_on_signals(stop)
    try:
        check_store(core.engine)
        check_schema(core.engine)
        scheduler.start()
        logger.info("worker %s runs the scheduled jobs; no HTTP listener", scheduler.instance)
        stop.wait()
        logger.info("worker stopping: no new runs; up to %gs for those under way", grace)
        scheduler.shutdown()
        if not scheduler.drain(grace):
            logger.warning("worker stopped with runs under way; another process takes them over")
            logging.shutdown()
            # A normal exit would wait for those threads (the executor joins them at exit).
            abandon(1)
            return 1
        logger.info("worker stopped")
        return 0
    finally:
        restore()
        core.engine.dispose()


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Let SIGTERM and SIGINT set `stop`; returns what puts the previous handlers back. Signals
    can only be handled in the main thread: elsewhere (tests) only `stop` stops the worker."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()  # no logging here: the handler may interrupt a log call holding its lock

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
