"""`roleup serve`: the Flask app under gunicorn, one app (and scheduler) per worker."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from bot.metrics import MULTIPROC_ENV
from bot.settings import Settings
from bot.slack.acked_work import TELL_SECONDS, exit_cutting_off

if TYPE_CHECKING:
    from bot.app import RoleUp

# How long gunicorn's master waits for a stopping worker before it kills it (graceful_timeout).
GRACEFUL_TIMEOUT = 20
# The part of it, counted from the SIGTERM, that a stopping worker's acked work gets to end
# (bot.slack.acked_work): the rest is for telling people what was not run or was cut off, with
# a second spare.
STOP_GRACE_SECONDS = GRACEFUL_TIMEOUT - TELL_SECONDS - 1
# The files prometheus_client writes per process (counter_123.db, gauge_livesum_123.db, ...).
METRIC_FILES = ("counter_*.db", "histogram_*.db", "gauge_*.db", "summary_*.db")


class RoleUpServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        self.roleup: RoleUp | None = None
        self.stop_asked: float | None = None  # time.monotonic() of the worker's SIGTERM
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Built in each worker after the fork: no engine, pool or thread crosses a fork.
        from bot.app import create_app

        roleup = create_app(self.settings)
        if roleup.core.scheduler is not None:
            roleup.core.scheduler.start()
        self.roleup = roleup  # this worker's, closed by _worker_exit
        return roleup.web


def serve(settings: Settings, *, workers: int, threads: int, bind: str | None = None) -> None:
    prepare_metrics_dir()
    options = {
        "bind": bind or f"0.0.0.0:{settings.port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "child_exit": _child_exit,
        "post_worker_init": _note_the_stop_signal,
        "worker_exit": _worker_exit,
        "logger_class": RoleUpGunicornLogger,
    }
    RoleUpServer(settings, options).run()


def prepare_metrics_dir() -> str:
    """Give the workers one directory for their metrics, empty of an earlier run's values.

    PROMETHEUS_MULTIPROC_DIR if the operator set it (only the metric files in it are removed),
    else a fresh temporary directory that the master removes as it exits. Set in the environment
    before any worker imports prometheus_client (bot.metrics).
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for pattern in METRIC_FILES:
            for stale in path.glob(pattern):
                stale.unlink(missing_ok=True)
        return str(path)
    made = tempfile.mkdtemp(prefix="roleup-metrics-")
    os.environ[MULTIPROC_ENV] = made
    master = os.getpid()

    def remove() -> None:
        # Workers inherit atexit handlers through the fork: only the master removes it.
        if os.getpid() == master:
            shutil.rmtree(made, ignore_errors=True)

    atexit.register(remove)
    return made


def _child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (its counters stay summed, as Prometheus wants)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _note_the_stop_signal(worker: Any) -> None:
    """Note when the worker is asked to stop: the master kills it GRACEFUL_TIMEOUT after, so
    the grace of its acked work counts from then, not from when its last request ended."""
    server = worker.app
    handle = signal.getsignal(signal.SIGTERM)
    if not callable(handle):
        return

    def noted(signum: int, frame: FrameType | None) -> None:
        if server.stop_asked is None:
            server.stop_asked = time.monotonic()
        handle(signum, frame)

    signal.signal(signal.SIGTERM, noted)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn set it: requests go on


def _worker_exit(server: Any, worker: Any) -> None:
    """A worker is stopping (its last requests answered): the work it acked gets what is left
    of its grace; if some was left unfinished, its people are told and the worker exits at
    once (status 1). Called in the worker; the master calls it too, for a worker it reaped,
    with no app built."""
    app = worker.app
    roleup = getattr(app, "roleup", None)
    if roleup is None:
        return
    asked = app.stop_asked if app.stop_asked is not None else time.monotonic()
    if not roleup.close(grace=max(0.0, asked + STOP_GRACE_SECONDS - time.monotonic())):
        exit_cutting_off()  # before the master's kill at GRACEFUL_TIMEOUT


class RoleUpGunicornLogger(GunicornLogger):
    """gunicorn's own lines (workers booting, exiting) in the format of the bot's lines."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        from bot.logging_setup import formatter_for
        from bot.settings import log_format

        if log_format() != "json":
            return
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter_for("json"))
