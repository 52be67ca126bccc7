"""The pools that run work a Slack user was already told was accepted (an acked click or
command), and how they stop: the work queued or running is finished, not dropped.

When the process stops (gunicorn's graceful stop on SIGTERM, `roleup socket` stopping), each pool
stops taking work and what it holds gets until a deadline to end. Past it, what never started
is not run and the person it was for is told so (nothing was changed, try again): the request
it was about is exactly as before, so their next click works. What is still running is cut off
by the process's exit: its person is told that RoleUp restarted mid-way (in words true whatever
part of it was done, as the work may have done some), and a request it held is taken over by the
store's recovery (`recover_running` in bot.services.approvals). A cut item that ends before its
message goes out is not told; one that ends after it still shows its own outcome, which is the
truth the message said to check. Nothing here guards against running twice: the guarded UPDATEs
of the services do.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, NoReturn

logger = logging.getLogger(__name__)

NOT_CARRIED_OUT = (
    ":warning: RoleUp was restarting and did not carry out {what}: nothing was changed. "
    "Please try again."
)
# Work still running when the process exits: it may have done part of what it does.
CUT_OFF = (
    ":warning: RoleUp restarted while carrying out {what}, before it could tell you how it "
    "ended: some of it may have been done. Please check before you try again."
)
# Work that only reads, still running when the process exits (a late listing): nothing changed.
READ_CUT_OFF = (
    ":warning: RoleUp restarted before it could answer {what}, which only reads: nothing was "
    "changed. Please try again."
)
# How long telling the people whose work was not run, or was cut off, may take after the
# deadline: a message not sent by then is logged, never retried.
TELL_SECONDS = 4.0
TELL_THREADS = 8

Told = Callable[[], Any]


@dataclass
class _Tellers:
    """Whom to tell, for one piece of held work: if it never starts, if it is cut off."""

    if_dropped: Told | None = None
    if_cut: Told | None = None


@dataclass
class Dropped:
    """What a pool's stop left undone: the tellers of the work never started, those of the work
    still running (with its Future, to skip the message if it ends first), and how many still
    run with nobody to tell (work no person waits on)."""

    not_started: list[Told] = field(default_factory=list)
    cut: list[tuple[Future[Any], Told]] = field(default_factory=list)
    untold_running: int = 0

    def __iadd__(self, other: Dropped) -> Dropped:
        self.not_started += other.not_started
        self.cut += other.cut
        self.untold_running += other.untold_running
        return self


class AckedPool(ThreadPoolExecutor):
    """A thread pool that knows, for each piece of work it holds, whom to tell if it is never
    run or is cut off running; `stop_pools` drains it up to a deadline."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._held: dict[Future[Any], _Tellers] = {}
        self._held_lock = threading.RLock()
        self._stopping = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """As any executor's; raises RuntimeError once the pool is stopping."""
        with self._held_lock:
            if self._stopping:
                raise RuntimeError("the pool is stopping: it takes no new work")
            future = super().submit(fn, *args, **kwargs)
            self._held[future] = _Tellers()
        future.add_done_callback(self._forget)
        return future

    def submit_acked(
        self, work: Callable[[], Any], *, if_dropped: Told, if_cut: Told | None = None
    ) -> Future[Any]:
        """Run `work` (through `submit`, so whatever wraps it sees this too); `if_dropped` is
        called if the pool stops before it starts, `if_cut` if it is still running then."""
        with self._held_lock:  # the stop cannot come between the two
            future = self.submit(work)
            if not future.done():
                self._held[future] = _Tellers(if_dropped, if_cut)
        return future

    def tell_if_cut(self, future: Future[Any], if_cut: Told) -> bool:
        """Once a person waits on `future` (this pool's, submitted plainly: a check whose
        answer came too late for the ack), `if_cut` is called if it is still running when the
        pool stops, or still queued (its words are true whatever part was done, none too).
        False, and nothing, if it has ended already."""
        with self._held_lock:
            tellers = self._held.get(future)
            if tellers is not None:
                tellers.if_cut = if_cut
                tellers.if_dropped = tellers.if_dropped or if_cut
            return tellers is not None

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

    def drop_queued(self) -> Dropped:
        """Cancel what has not started; what is left undone, and whom to tell about it."""
        dropped = Dropped()
        with self._held_lock:
            held = list(self._held.items())
        for future, tellers in held:
            if future.cancel():
                if tellers.if_dropped is not None:
                    dropped.not_started.append(tellers.if_dropped)
            elif future.done():
                continue
            elif tellers.if_cut is not None:
                dropped.cut.append((future, tellers.if_cut))
            else:
                dropped.untold_running += 1
        self.shutdown(wait=False, cancel_futures=True)
        return dropped


def stop_pools(pools: Iterable[AckedPool], deadline: float) -> bool:
    """Stop `pools` in order, each taking no more work once those before it are drained (a
    listener hands work to the pools after it), all by `deadline` (time.monotonic()); then tell
    the people whose work never started, or is still running and is cut off by the exit. True
    if every piece of work ended in time."""
    pools = list(pools)
    for pool in pools:
        pool.stop_taking_work()
        wait(pool.held(), timeout=max(0.0, deadline - time.monotonic()))
    dropped = Dropped()
    for pool in pools:
        dropped += pool.drop_queued()
    running = len(dropped.cut) + dropped.untold_running
    if dropped.not_started or running:
        logger.warning(
            "stopping with acked work unfinished: %d not started and %d cut off running (their "
            "people are told), %d more cut off with nobody waiting on it; a request left "
            "running is taken over by the recovery of running requests",
            len(dropped.not_started),
            len(dropped.cut),
            dropped.untold_running,
        )
    _tell(dropped.not_started + [_unless_ended(future, told) for future, told in dropped.cut])
    return not dropped.not_started and not running


def _unless_ended(future: Future[Any], told: Told) -> Told:
    """`told`, unless the work ended meanwhile: its own outcome has reached its person."""
    return lambda: None if future.done() else told()


def _tell(told: list[Told]) -> None:
    if not told:
        return
    pool = ThreadPoolExecutor(max_workers=TELL_THREADS, thread_name_prefix="roleup-stop-tell")
    futures = [pool.submit(tell) for tell in told]
    late = wait(futures, timeout=TELL_SECONDS).not_done
    pool.shutdown(wait=False, cancel_futures=True)
    if late:
        logger.warning(
            "stopping: %d of %d people could not be told in %.0fs what became of their work; "
            "not tried again",
            len(late),
            len(told),
            TELL_SECONDS,
        )


def not_carried_out(reply: Callable[[str], Any], what: str) -> Told:
    """What tells the person that `what` (e.g. "the approve click") was not run."""
    from bot.slack.mrkdwn import escape

    return telling(reply, NOT_CARRIED_OUT.format(what=escape(what)), f"{what} was not carried out")


# What a cut-off message says: its mrkdwn, or what makes it when it is sent (from what the work
# left behind by then).
CutText = str | Callable[[], str]


def cut_off(reply: Callable[[str], Any], what: str, text: CutText | None = None) -> Told:
    """What tells the person that `what` was cut off running by the process's exit: `text`
    (mrkdwn, escaped), by default CUT_OFF."""
    from bot.slack.mrkdwn import escape

    told = CUT_OFF.format(what=escape(what)) if text is None else text
    return telling(reply, told, f"{what} was cut off")


def telling(reply: Callable[[str], Any], text: CutText, that: str) -> Told:
    """`reply(text)` (mrkdwn, escaped by the caller; made now if a callable), a failure only
    logged as "could not tell that `that`": the process is stopping, so there is no later
    attempt."""

    def tell() -> None:
        try:
            reply(text if isinstance(text, str) else text())
        except Exception as exc:  # Slack unreachable: the log is all that is left
            logger.warning("could not tell that %s: %s", that, type(exc).__name__)

    return tell


def exit_cutting_off() -> NoReturn:
    """Exit the process now, with status 1, once stop_pools found work unfinished and told its
    people (or a scheduled run was still under way, left to be taken over): a normal exit would
    wait for the threads still running it (the executors join their threads at exit) until the
    platform kills the process, past the messages' promise."""
    logger.warning("stopped with work unfinished: exiting now")
    logging.shutdown()
    os._exit(1)
