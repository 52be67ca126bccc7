"""The process's kept threads for concurrent AWS work (bot.services.aws.CallPools, run_each):
each run keeps its own bound on a shared pool, and every item's outcome comes back in order."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from bot.services.aws import CallPools, run_each


def test_run_each_runs_every_item_once_and_never_more_than_its_bound_at_once():
    pools = CallPools(size=8)
    lock = threading.Lock()
    running, most, seen = 0, 0, []

    def work(item: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            seen.append(item)
        time.sleep(0.01)  # long enough for the runners to overlap, if they could
        with lock:
            running -= 1

    try:
        errors = run_each(pools.tasks, list(range(12)), work, bound=3)
    finally:
        pools.shutdown()
    assert errors == [None] * 12
    assert sorted(seen) == list(range(12))
    assert 1 < most <= 3


def test_run_each_tries_every_item_and_hands_back_each_error_in_the_items_order():
    pools = CallPools(size=4)
    tried: list[str] = []

    def work(item: str) -> None:
        tried.append(item)
        if item in ("b", "d"):
            raise ValueError(item)

    try:
        errors = run_each(pools.calls, ["a", "b", "c", "d"], work, bound=4)
    finally:
        pools.shutdown()
    assert sorted(tried) == ["a", "b", "c", "d"]
    assert [str(e) if e else None for e in errors] == [None, "b", None, "d"]


def test_a_run_keeps_its_context_on_the_kept_threads():
    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
    pools = CallPools(size=2)
    found: list[str] = []
    token = who.set("request-1")
    try:
        run_each(pools.calls, [1, 2], lambda _: found.append(who.get()), bound=2)
    finally:
        who.reset(token)
        pools.shutdown()
    assert found == ["request-1", "request-1"]


def test_pools_shut_down_without_waiting_end_their_threads_and_take_no_more_work():
    pools = CallPools(size=2)
    run_each(pools.calls, [1, 2], lambda item: None, bound=2)
    kept = set(pools.calls._threads)  # the pool's own threads (other tests' pools aside)
    assert kept and all(t.is_alive() for t in kept)
    pools.shutdown(wait=False)  # as RoleUp.close does
    for thread in kept:
        thread.join(timeout=5)
    assert not any(t.is_alive() for t in kept)
    with pytest.raises(RuntimeError):
        pools.calls.submit(lambda: None)
