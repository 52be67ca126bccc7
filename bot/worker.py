"""`roleup worker`: the scheduled jobs in a process of their own, beside web processes started
with `roleup serve --no-jobs`, so that a long sync never competes with acknowledgements.

Every run first claims its (job, slot) row in the store as in any other process (bot.scheduler),
so any number of workers and web processes still run each tick once. It listens on no port,
unless `--metrics-port` asks it to serve its own `GET /metrics` there.

SIGTERM or SIGINT stops it: no new tick starts, the runs under way get STOP_GRACE_SECONDS to end,
and it exits 0. A run still going then is abandoned (exit 1), as a crash would: each job is
written to be taken over (one transaction a sync, leases on ending grants and accounts, and
requests left running are recovered by housekeeping). The handler goes in before anything slow
(bot.cli_entry installs it before importing the CLI), so a stop in the first instants of the
process is a clean stop as well.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from bot.scheduler import JobScheduler
    from bot.services.container import Core
    from bot.settings import Settings

logger = logging.getLogger(__name__)

# As long as gunicorn's graceful_timeout under `roleup serve`, and within the 30 seconds that
# Heroku and Kubernetes leave between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 20.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOPPED_BEFORE_START = "worker stopped before it started its jobs"


class StopRequest:
    """The SIGTERM and SIGINT handler: it only records that a stop was asked."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()  # no logging here: the handler may interrupt a log call holding its lock


def catch_stop_signals() -> tuple[threading.Event, Callable[[], None]]:
    """Let SIGTERM and SIGINT set the returned event (the one installed earlier by
    bot.cli_entry, if any, so a stop that came during the imports is kept); also returns what
    puts the previous handlers back. Signals can only be handled in the main thread: elsewhere
    (tests) only the event stops the worker."""
    if threading.current_thread() is not threading.main_thread():
        return threading.Event(), lambda: None
    current = signal.getsignal(signal.SIGTERM)
    handler = current if isinstance(current, StopRequest) else StopRequest()
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)

    return handler.event, restore


def run_worker(settings: Settings, metrics_port: int | None = None) -> int:
    """`roleup worker`: run the jobs until SIGTERM or SIGINT; the exit status."""
    stop, restore = catch_stop_signals()
    try:
        if stop.is_set():
            logger.info(STOPPED_BEFORE_START)
            return 0
        from bot.metrics import MULTIPROC_ENV

        # The worker is one process: its values stay in it (PROMETHEUS_MULTIPROC_DIR is for
        # serve's workers, and serve empties that directory as it starts).
        os.environ.pop(MULTIPROC_ENV, None)
        from bot.app import create_worker

        scheduler = create_worker(settings)
        with serving_metrics(scheduler.core, metrics_port):
            return work_until_stopped(scheduler, stop)
    finally:
        restore()


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
    try:
        check_store(core.engine)
        check_schema(core.engine)
        if stop.is_set():  # asked before the jobs started: none does (a run under way still ends)
            logger.info(STOPPED_BEFORE_START)
        else:
            scheduler.start()
            logger.info("worker %s runs the scheduled jobs", scheduler.instance)
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
        core.engine.dispose()


@contextmanager
def serving_metrics(core: Core, port: int | None) -> Iterator[ThreadingHTTPServer | None]:
    """`GET /metrics` of this process on `port` (all interfaces) while the block runs, with the
    same text and the same ROLEUP_METRICS_TOKEN rule as `roleup serve`; nothing when None."""
    if port is None:
        yield None
        return
    from http.server import ThreadingHTTPServer

    from bot.cli_common import CliError

    try:
        server = ThreadingHTTPServer(("0.0.0.0", port), _metrics_handler(core))  # noqa: S104
    except OSError as exc:
        raise CliError(f"cannot listen on port {port} for /metrics: {exc.strerror}") from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="roleup-metrics", daemon=True)
    thread.start()
    logger.info("worker serves GET /metrics on port %d", port)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _metrics_handler(core: Core) -> type:
    from http.server import BaseHTTPRequestHandler

    from bot.metrics import CONTENT_TYPE, bearer_matches

    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, b'{"error": "not found"}', "application/json")
                return
            token = core.settings.metrics_token
            if token is not None and not bearer_matches(self.headers.get("Authorization"), token):
                body = b'{"error": "a bearer token is required"}'
                self._answer(401, body, "application/json", 'Bearer realm="metrics"')
                return
            self._answer(200, core.metrics.render(), CONTENT_TYPE)

        def _answer(self, status: int, body: bytes, kind: str, challenge: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if challenge:
                self.send_header("WWW-Authenticate", challenge)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """No access log: serve keeps none either."""

    return MetricsHandler
