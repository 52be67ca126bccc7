"""Waiting for work another thread or process does: a bound on waiting, never a timing test."""

from __future__ import annotations

import faulthandler
import sys
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, every: float = 0.05) -> None:
    """Poll `condition()` every `every` seconds until it holds; fail after `timeout` seconds
    (generous: the machine may be loaded). On failure every thread's stack goes to stderr: what
    the awaited work was stuck on, in the failed test's captured output."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
            raise AssertionError("condition not met in time")
        time.sleep(every)
