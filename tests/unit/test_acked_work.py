"""The pools of acked work as the process stops: what is queued or running gets until the
deadline; past it, what never started is not run and its person is told, what is still running
is cut off and its person is told that (once, unless it ended first); nothing new is taken."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bot.slack.acked_work import AckedPool, cut_off, not_carried_out, stop_pools
from bot.slack.errors import run_after_ack
from tests.support.waiting import wait_until

PATIENCE = 30.0  # a bound on waiting for a thread, never an assertion on speed


@pytest.fixture
def pool() -> Iterator[AckedPool]:
    made = AckedPool(max_workers=1, thread_name_prefix="test-acked")
    yield made
    made.shutdown(wait=True, cancel_futures=True)


def stopped_meanwhile(pools: list[AckedPool], release: threading.Event) -> bool:
    """stop_pools with a deadline far off, `release` set once the first pool is stopping:
    the held work ends during the stop, whatever the threads' timing."""
    result: list[bool] = []
    stopper = threading.Thread(
        target=lambda: result.append(stop_pools(pools, time.monotonic() + PATIENCE))
    )
    stopper.start()
    wait_until(lambda: pools[0].stopping, timeout=PATIENCE)
    release.set()
    stopper.join(timeout=PATIENCE)
    return result == [True]


def occupy(pool: AckedPool) -> threading.Event:
    """Hold the pool's one thread until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(timeout=PATIENCE)

    pool.submit(hold)
    assert started.wait(timeout=PATIENCE)
    return release


def click_behind_busy_thread(pool: AckedPool) -> tuple[threading.Event, list[str], list[str]]:
    """An approve click acked and queued behind the pool's held thread: what releases that
    thread, what the click ran, and what its clicker was told."""
    release = occupy(pool)
    ran: list[str] = []
    told: list[str] = []
    run_after_ack(pool, told.append, "the approve click", lambda: ran.append("approved"))
    return release, ran, told


def test_work_queued_behind_a_busy_thread_runs_when_the_stop_gives_it_time(
    pool: AckedPool,
) -> None:
    release, ran, told = click_behind_busy_thread(pool)
    assert stopped_meanwhile([pool], release)
    assert ran == ["approved"]
    assert told == []


def test_work_still_queued_past_the_deadline_is_not_run_and_its_person_is_told(
    pool: AckedPool,
) -> None:
    release, ran, told = click_behind_busy_thread(pool)
    assert stop_pools([pool], time.monotonic()) is False  # the deadline is already over
    release.set()
    pool.shutdown(wait=True)
    assert ran == []
    assert told == [
        ":warning: RoleUp was restarting and did not carry out the approve click: nothing was "
        "changed. Please try again."
    ]


def test_a_stopping_pool_takes_no_new_work_and_says_so(pool: AckedPool) -> None:
    pool.stop_taking_work()
    ran: list[str] = []
    told: list[str] = []
    run_after_ack(pool, told.append, "the deny click", lambda: ran.append("denied"))
    assert ran == []
    assert told == [
        ":warning: RoleUp was restarting and did not carry out the deny click: nothing was "
        "changed. Please try again."
    ]


def test_a_listener_still_running_may_hand_work_to_the_next_pool_before_it_stops() -> None:
    listeners = AckedPool(max_workers=1, thread_name_prefix="test-listener")
    decisions = AckedPool(max_workers=1, thread_name_prefix="test-decision")
    release = occupy(listeners)
    ran: list[str] = []
    listeners.submit(
        lambda: run_after_ack(decisions, ran.append, "the click", lambda: ran.append("ran"))
    )
    assert stopped_meanwhile([listeners, decisions], release)
    assert ran == ["ran"]


@pytest.mark.parametrize(
    ("teller", "logged"),
    [
        (not_carried_out, "could not tell that the retry click was not carried out"),
        (cut_off, "could not tell that the retry click was cut off"),
    ],
)
def test_telling_someone_who_cannot_be_reached_is_only_logged(
    caplog: pytest.LogCaptureFixture, teller: Callable[..., Callable[[], None]], logged: str
) -> None:
    def unreachable(text: str) -> None:
        raise ConnectionError("https://hooks.slack.com/actions/T1/secret-path")

    teller(unreachable, "the retry click")()
    assert f"{logged}: ConnectionError" in caplog.text
    assert "secret-path" not in caplog.text


CUT_APPROVE = (
    ":warning: RoleUp restarted while carrying out the approve click, before it could tell you "
    "how it ended: some of it may have been done. Please check before you try again."
)
NOT_RUN_DENY = (
    ":warning: RoleUp was restarting and did not carry out the deny click: nothing was changed. "
    "Please try again."
)


def running_click(pool: AckedPool, told: list[str]) -> threading.Event:
    """An approve click acked and running on the pool's one thread, held until the returned
    event is set; its outcome and any message about it go to `told`."""
    started, release = threading.Event(), threading.Event()

    def approve() -> None:
        started.set()
        release.wait(timeout=PATIENCE)
        told.append("approved")

    run_after_ack(pool, told.append, "the approve click", approve)
    assert started.wait(timeout=PATIENCE)
    return release


def test_work_still_running_past_the_deadline_is_cut_off_and_its_person_told_once(
    pool: AckedPool,
) -> None:
    running: list[str] = []
    release = running_click(pool, running)
    queued: list[str] = []
    run_after_ack(pool, queued.append, "the deny click", lambda: queued.append("denied"))
    assert stop_pools([pool], time.monotonic()) is False
    assert running == [CUT_APPROVE]
    assert queued == [NOT_RUN_DENY]
    # It ends after all (the process had not exited yet): its own outcome follows, the truth
    # the message said to check; the stop tells nobody twice.
    release.set()
    pool.shutdown(wait=True)
    assert running == [CUT_APPROVE, "approved"]
    assert queued == [NOT_RUN_DENY]


def test_work_that_ends_within_the_deadline_is_not_told_anything(pool: AckedPool) -> None:
    told: list[str] = []
    release = running_click(pool, told)
    assert stopped_meanwhile([pool], release)
    assert told == ["approved"]


def test_a_late_check_a_person_waits_on_is_told_when_cut_off_and_not_once_ended() -> None:
    pool = AckedPool(max_workers=2, thread_name_prefix="test-checks")
    told: list[str] = []
    checking = threading.Event()
    check = pool.submit(lambda: checking.wait(timeout=PATIENCE))
    pool.tell_if_cut(check, cut_off(told.append, "the checks", ":warning: Not confirmed."))
    ended = pool.submit(lambda: None)
    ended.result(timeout=PATIENCE)
    pool.tell_if_cut(ended, cut_off(told.append, "the other checks"))  # over: nobody waits
    assert stop_pools([pool], time.monotonic()) is False
    assert told == [":warning: Not confirmed."]
    checking.set()
    pool.shutdown(wait=True)


def test_work_nobody_waits_on_is_cut_off_without_a_message(pool: AckedPool) -> None:
    release = occupy(pool)  # submitted plainly: no person to tell
    assert stop_pools([pool], time.monotonic()) is False
    release.set()
