"""Holding the Slack Web API stand-in's answer to one method until the test lets it go, to show
what the app does while that call is in flight (an ack must not wait for it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import requests

from tests.support.slack_api import Call, FakeSlackApi

# A bound on waiting for another thread, never a timing assertion: generous for a loaded machine.
PATIENCE = 60.0


class HeldCall:
    """While in its `with` block, the stand-in's first answer to `method` waits: `arrived` is
    set once the app has made the call, and the answer goes out when the block ends."""

    def __init__(
        self, api: FakeSlackApi, method: str, where: Callable[[Call], bool] | None = None
    ) -> None:
        self.method = method
        self.where = where
        self.arrived = threading.Event()
        self._released = threading.Event()
        self._taken = False
        self._lock = threading.Lock()
        # The stand-in has no unsubscribe: once released, this listener lets every call through.
        api.subscribe(self._hold)

    def __enter__(self) -> HeldCall:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._released.set()

    def _hold(self, call: Call) -> None:
        if call.method != self.method or (self.where is not None and not self.where(call)):
            return
        with self._lock:
            if self._taken or self._released.is_set():
                return
            self._taken = True
        self.arrived.set()
        self._released.wait(PATIENCE)  # the stand-in's thread answers once the test lets go


def acked_while_held(
    held: HeldCall, send: Callable[[], requests.Response], sending: Callable[..., Future]
) -> requests.Response:
    """The request's answer, which must come back while the app's call is still held."""
    answer = sending(send)
    assert held.arrived.wait(PATIENCE), f"the app never called {held.method}"
    # A listener waiting on the held call never answers: the sender's own timeout fails this.
    return answer.result(timeout=PATIENCE)
