"""Reports written off the AWS path: a background thread writes what the steps report.

An offboarding's AWS calls must not wait for the store or Slack: each step's report is queued
(no I/O) and one thread per use case writes whatever has piled up since its last write in one
go, in the order reported. A write that fails stops the writer, and the next report (or
`flush`) raises its error, so a request taken over or a store gone still stops the run.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundReporter(Generic[T]):
    """Queue reports from any thread; `write` gets them in batches, in order, on one thread."""

    def __init__(self, write: Callable[[list[T]], None], *, name: str) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._queued: list[T] = []
        self._reported = 0
        self._written = 0
        self._closing = False
        self._error: BaseException | None = None
        # The writer logs with the use case's context (its request id).
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._loop,), name=name, daemon=True
        )

    def __enter__(self) -> BackgroundReporter[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def report(self, item: T) -> None:
        """Queue one report; raises the error a previous write stopped on."""
        with self._cond:
            self._raise_stopped()
            self._queued.append(item)
            self._reported += 1
            self._cond.notify_all()

    def flush(self) -> None:
        """Wait until everything reported so far is written; raises a write's error."""
        with self._cond:
            wanted = self._reported
            while self._written < wanted and self._error is None:
                self._cond.wait()
            self._raise_stopped()

    def close(self) -> None:
        """Write what is left and stop the thread (without raising: `flush` does)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def _raise_stopped(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queued and not self._closing:
                    self._cond.wait()
                if not self._queued or self._error is not None:
                    return
                batch, self._queued = self._queued, []
            try:
                self._write(batch)
            except BaseException as exc:  # kept for the reporting threads to raise
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()
