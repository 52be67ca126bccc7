"""`roleup worker` stopping on both stores: a run under way when the stop comes is let end (and
its success recorded) before the worker returns 0; one that outlasts the grace is abandoned
with status 1 for another process to take over. And what the command refuses to start with."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from bot.app import create_worker
from bot.readiness import readiness
from bot.scheduler import HOUSEKEEPING_JOB, JobScheduler
from bot.services import claims
from bot.services.claims import claim_slot, job_runs, slot_of
from bot.settings import Settings
from bot.worker import STOP_SIGNALS, StopRequest, work_until_stopped
from storage.models import JobClaim, utcnow
from tests.support.cli import UNREACHABLE_DB, Result, assert_one_line_failure
from tests.support.config import BOT_TOKEN, TEST_KEY

GIVE_UP = 30.0  # only so that a broken worker fails the test instead of hanging it


@dataclass
class Stopping:
    """A worker in a thread with one claimed run held open until `release` is set."""

    scheduler: JobScheduler
    grace: float
    stop: threading.Event = field(default_factory=threading.Event)
    began: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    status: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)

    def start(self) -> Stopping:
        self.worker = threading.Thread(target=self._work)
        self.run = threading.Thread(
            target=self.scheduler.run_claimed, args=(HOUSEKEEPING_JOB, 60, self._held)
        )
        self.worker.start()
        self.run.start()
        assert self.began.wait(GIVE_UP)
        self.stop.set()
        return self

    def _work(self) -> None:
        status = work_until_stopped(
            self.scheduler, self.stop, grace=self.grace, abandon=self.abandoned.append
        )
        self.status.append(status)

    def _held(self, slot: int) -> None:
        self.began.set()
        assert self.release.wait(GIVE_UP)

    def finish(self) -> None:
        self.release.set()
        self.run.join(GIVE_UP)
        self.worker.join(GIVE_UP)


@pytest.fixture
def worker(settings: Settings) -> Iterator[JobScheduler]:
    scheduler = create_worker(settings)
    yield scheduler
    scheduler.shutdown()
    scheduler.core.engine.dispose()


def test_a_stop_lets_the_run_under_way_end_then_returns_0(worker):
    stopping = Stopping(worker, grace=GIVE_UP).start()
    stopping.worker.join(0.5)
    assert stopping.worker.is_alive() and stopping.status == []  # still waiting for the run
    stopping.finish()
    assert stopping.status == [0] and stopping.abandoned == []
    assert not worker.running
    with worker.core.sessions() as session:
        assert job_runs(session)[HOUSEKEEPING_JOB].last_success is not None


def test_a_run_outlasting_the_grace_is_abandoned_with_status_1(worker):
    stopping = Stopping(worker, grace=0.1).start()
    stopping.worker.join(GIVE_UP)
    try:
        assert stopping.abandoned == [1] and stopping.status == [1]
    finally:
        stopping.finish()


def test_a_tick_still_queued_when_the_worker_stops_never_starts(worker):
    # shutdown(wait=False) leaves the ticks the executor had queued (four threads, and more
    # jobs than that fall due at :00) to run afterwards: each must be dropped unclaimed.
    worker.start()
    worker.shutdown()
    ran: list[int] = []
    assert worker.run_claimed(HOUSEKEEPING_JOB, 60, ran.append) is False
    assert ran == []
    with worker.core.sessions() as session:
        assert HOUSEKEEPING_JOB not in job_runs(session)


def test_a_claim_waiting_on_the_store_when_the_stop_comes_is_a_run_under_way(worker):
    # Another claimant's insert of the same (job, slot), not yet committed, makes this claim
    # wait (a row lock on PostgreSQL, the write lock on SQLite), as a slow store would.
    interval = 10**9  # one slot for the whole test
    slot = slot_of(utcnow(), interval)
    other = worker.core.engine.connect()
    other_claim = other.begin()
    other.execute(insert(JobClaim).values(job=HOUSEKEEPING_JOB, slot=slot, instance="other"))
    ran: list[int] = []
    run = threading.Thread(target=worker.run_claimed, args=(HOUSEKEEPING_JOB, interval, ran.append))
    stop = threading.Event()
    status: list[int] = []
    stopping = threading.Thread(
        target=lambda: status.append(work_until_stopped(worker, stop, grace=GIVE_UP))
    )
    try:
        stopping.start()
        run.start()
        for _ in range(int(GIVE_UP / 0.05)):  # until the claim is under way
            if not worker.drain(0):
                break
            assert run.is_alive(), "the claim did not wait for the other claimant"
            time.sleep(0.05)
        assert not worker.drain(0), "a claim waiting on the store is not counted as under way"
        stop.set()
        stopping.join(0.5)
        assert stopping.is_alive() and status == []  # the stop waits for the claim and its run
    finally:
        other_claim.rollback()  # the other claimant gave up: this claim lands
        other.close()
        stop.set()
    run.join(GIVE_UP)
    stopping.join(GIVE_UP)
    assert status == [0] and ran == [slot]


@pytest.mark.parametrize("skew", [timedelta(minutes=-10), timedelta(minutes=10)])
def test_a_worker_whose_clock_is_off_neither_fails_readyz_nor_keeps_it_up(
    worker, monkeypatch, skew
):
    # The worker's clock (not the web's) is off by ten minutes, each way, as it claims a tick.
    monkeypatch.setattr(claims, "utcnow", lambda: utcnow() + skew)
    assert claim_slot(worker.core, HOUSEKEEPING_JOB, 1, "elsewhere:1")
    monkeypatch.undo()
    ready, body = readiness(worker.core, detail=False)
    # Behind: the web called the scheduler down (503) while the worker ticked. Ahead: the tick
    # stood ten minutes in the future, keeping /readyz at 200 that long after the worker died.
    assert ready and body["scheduler"]["status"] == "ok"
    now = utcnow()  # the web's clock, right (the store here runs on the same machine)
    last_tick = datetime.fromisoformat(body["scheduler"]["last_tick"])
    assert now - timedelta(seconds=worker.core.settings.scheduler_stale_seconds) < last_tick <= now


def test_the_worker_posts_through_the_slack_client_and_notifier(worker):
    from bot.services.approvals import notifier_of
    from bot.slack.approval_messages import SlackApprovalNotifier

    assert worker.core.slack is not None and worker.core.slack.token == BOT_TOKEN
    assert isinstance(notifier_of(worker.core), SlackApprovalNotifier)


@pytest.fixture
def roleup_worker(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    """`roleup worker ...` in this process with what it needs, and `env` on top. A worker that
    started instead of refusing is stopped after GIVE_UP (status 0), so the test fails rather
    than hangs: the stop handler it adopts is this one (bot.cli_entry installs it the same way)."""
    assert threading.current_thread() is threading.main_thread()  # signals are the main's
    for name in [n for n in os.environ if n.startswith(("SLACK_", "ROLEUP_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("ROLEUP_ENCRYPTION_KEYS", TEST_KEY)
    monkeypatch.setenv("ROLEUP_SCHEDULER", "on")
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop)
    give_up = threading.Timer(GIVE_UP, stop.event.set)
    give_up.start()

    def run(*args: str, **env: str) -> Result:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return cli(*args)

    try:
        yield run
    finally:
        give_up.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"ROLEUP_SCHEDULER": "off"}, ("ROLEUP_SCHEDULER=off", "roleup serve --no-jobs")),
        ({"SLACK_BOT_TOKEN": ""}, ("SLACK_BOT_TOKEN is required",)),
        ({"DATABASE_URL": UNREACHABLE_DB}, ("cannot reach the database",)),
    ],
)
def test_the_worker_refuses_to_start_without_what_it_needs(roleup_worker, env, words):
    assert_one_line_failure(roleup_worker("worker", **env), *words)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        # An '@' in the password not percent-encoded: the parser took the rest for the host.
        (
            "postgresql://roleup:pa@ssW0rdSECRET@127.0.0.1:1/roleup",
            ("percent-encoded, as %40",),
        ),
        # ... and with a ':' after it, the rest for a port that is no number.
        ("postgresql://roleup:pa@ss:W0rdSECRET@127.0.0.1:1/roleup", ("SQLAlchemy URL",)),
        # libpq takes the password in the query string too.
        ("postgresql://roleup@127.0.0.1:1/roleup?password=W0rdSECRET", ("cannot reach",)),
    ],
)
def test_a_store_url_the_worker_cannot_use_never_shows_its_password(roleup_worker, url, words):
    result = roleup_worker("-v", "worker", DATABASE_URL=url)
    assert result.code == 1
    assert "SECRET" not in result.out + result.err
    assert_one_line_failure(roleup_worker("worker"), *words)


def test_the_worker_refuses_a_metrics_port_it_cannot_listen_on(roleup_worker):
    for port in ("0", "65536"):
        result = roleup_worker("worker", "--metrics-port", port)
        assert_one_line_failure(result, "--metrics-port must be from 1 to 65535")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # where the worker would listen
        taken.listen()
        port = str(taken.getsockname()[1])
        result = roleup_worker("worker", "--metrics-port", port)
    assert_one_line_failure(result, f"cannot listen on port {port} for /metrics")


@pytest.mark.parametrize("outlasts", [True, False], ids=["outlasting", "ending-in-time"])
def test_serve_stopping_reports_a_run_still_under_way_past_its_grace(settings, caplog, outlasts):
    """`roleup serve` runs the jobs in its workers: a run outlasting the stop's grace makes
    close() report the stop unfinished, so the worker exits at once (as `roleup worker` does)
    instead of waiting on the run's thread until gunicorn's kill; one ending in time does not."""
    from dataclasses import replace

    from bot.app import create_app

    roleup = create_app(replace(settings, scheduler_enabled=True))
    assert roleup.core.scheduler is not None
    began, release = threading.Event(), threading.Event()

    def held(slot: int) -> None:
        began.set()
        assert release.wait(GIVE_UP)

    run = threading.Thread(
        target=roleup.core.scheduler.run_claimed, args=(HOUSEKEEPING_JOB, 60, held)
    )
    run.start()
    try:
        assert began.wait(GIVE_UP)
        if not outlasts:
            threading.Timer(0.2, release.set).start()
        finished = roleup.close(grace=0.1 if outlasts else GIVE_UP)
        assert finished is (not outlasts)
        assert ("another process takes them over" in caplog.text) is outlasts
    finally:
        release.set()
        run.join(GIVE_UP)
