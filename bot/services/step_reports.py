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
from concurrent.futures import Executor, Future
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundReporter(Generic[T]):
    """Queue reports from any thread; `write` gets them in batches, in order, on one thread."""

    def __init__(
        self, write: Callable[[list[T]], None], *, name: str, threads: Executor | None = None
    ) -> None:
        """`threads`, when given, runs the writer (it must never leave it waiting for a thread:
        bot.services.aws.CallPools.beside); otherwise a thread of its own is started."""
        self._write = write
        self._cond = threading.Condition()
        self._queued: list[T] = []
        self._reported = 0
        self._written = 0
        self._closing = False
        self._error: BaseException | None = None
        # The writer logs with the use case's context (its request id).
        self._context = contextvars.copy_context()
        self._threads = threads
        self._running: Future[None] | None = None
        self._thread = threading.Thread(
            target=self._context.run, args=(self._loop,), name=name, daemon=True
        )

    def __enter__(self) -> BackgroundReporter[T]:
        if self._threads is not None:
            # A kept thread: starting one waits until it first holds the GIL.
            self._running = self._threads.submit(self._context.run, self._loop)
        else:
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
        if self._running is not None:
            self._running.exception()  # waits for the writer; its error is kept for `flush`
        elif self._thread.is_alive():
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
