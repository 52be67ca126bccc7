"""The pools that run work a Slack user was already told was accepted (an acked click or
command), and how they stop: the work queued or running is finished, not dropped.

When the process stops (gunicorn's graceful stop on SIGTERM, `roleup socket` stopping), each pool
stops taking work and what it holds gets until a deadline to end. Past it, what never started
is not run and the person it was for is told so (nothing was changed, try again): the request
it was about is exactly as before, so their next click works. What is still running is left to
run until the process is gone; a request it held is taken over by the store's recovery
(`recover_running` in bot.services.approvals). Nothing here guards against running twice: the
guarded UPDATEs of the services do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

logger = logging.getLogger(__name__)

NOT_CARRIED_OUT = (
    ":warning: RoleUp was restarting and did not carry out {what}: nothing was changed. "
    "Please try again."
)
# How long telling the people whose work was not run may take, after the deadline.
TELL_SECONDS = 4.0
TELL_THREADS = 8

Told = Callable[[], Any]


class AckedPool(ThreadPoolExecutor):
    """A thread pool that knows, for each piece of work still queued, whom to tell if it is
    never run; `stop_pools` drains it up to a deadline."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._held: dict[Future[Any], Told | None] = {}
        self._held_lock = threading.RLock()
        self._stopping = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """As any executor's; raises RuntimeError once the pool is stopping."""
        with self._held_lock:
            if self._stopping:
                raise RuntimeError("the pool is stopping: it takes no new work")
            future = super().submit(fn, *args, **kwargs)
            self._held[future] = None
        future.add_done_callback(self._forget)
        return future

    def submit_acked(self, work: Callable[[], Any], *, if_dropped: Told) -> Future[Any]:
        """Run `work` (through `submit`, so whatever wraps it sees this too); `if_dropped` is
        called if the pool stops before it starts."""
        with self._held_lock:  # the stop cannot come between the two
            future = self.submit(work)
            if not future.done():
                self._held[future] = if_dropped
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._held_lock:
            self._held.pop(future, None)

    def stop_taking_work(self) -> None:
        with self._held_lock:
            self._stopping = True

    @property
    def stopping(self) -> bool:
        with self._held_lock:
            return self._stopping

    def held(self) -> list[Future[Any]]:
        with self._held_lock:
            return list(self._held)

    def drop_queued(self) -> tuple[list[Told], int]:
        """Cancel what has not started: whom to tell about it, and how many still run."""
        told: list[Told] = []
        running = 0
        with self._held_lock:
            held = list(self._held.items())
        for future, if_dropped in held:
            if future.cancel():
                if if_dropped is not None:
                    told.append(if_dropped)
            elif not future.done():
                running += 1
        self.shutdown(wait=False, cancel_futures=True)
        return told, running


def stop_pools(pools: Iterable[AckedPool], deadline: float) -> bool:
    """Stop `pools` in order, each taking no more work once those before it are drained (a
    listener hands work to the pools after it), all by `deadline` (time.monotonic()); then tell
    the people whose work never started. True if every piece of work ended in time."""
    pools = list(pools)
    for pool in pools:
        pool.stop_taking_work()
        wait(pool.held(), timeout=max(0.0, deadline - time.monotonic()))
    told: list[Told] = []
    running = 0
    for pool in pools:
        dropped, still = pool.drop_queued()
        told += dropped
        running += still
    if told or running:
        logger.warning(
            "stopping with acked work unfinished: %d not started (their people are told), "
            "%d still running (left to the recovery of running requests)",
            len(told),
            running,
        )
    _tell(told)
    return not told and not running


def _tell(told: list[Told]) -> None:
    if not told:
        return
    pool = ThreadPoolExecutor(max_workers=TELL_THREADS, thread_name_prefix="roleup-stop-tell")
    futures = [pool.submit(tell) for tell in told]
    wait(futures, timeout=TELL_SECONDS)
    pool.shutdown(wait=False, cancel_futures=True)


def not_carried_out(reply: Callable[[str], Any], what: str) -> Told:
    """What tells the person that `what` (e.g. "the approve click") was not run."""
    from bot.slack.mrkdwn import escape

    def tell() -> None:
        try:
            reply(NOT_CARRIED_OUT.format(what=escape(what)))
        except Exception as exc:  # Slack unreachable: the log is all that is left
            logger.warning(
                "could not tell that %s was not carried out: %s", what, type(exc).__name__
            )

    return tell
