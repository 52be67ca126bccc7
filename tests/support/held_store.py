"""Holding the store's statements until the test lets them go, as a SQLite writer's lock (the
busy timeout) or a PostgreSQL row lock would: to show what the app does while its store is
stalled (an ack must not wait for it)."""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy import Engine, event

from tests.support.held_calls import PATIENCE


class HeldStore:
    """While in its `with` block, every statement sent to `engine` that matches `pattern` waits:
    `arrived` is set once one has, and they all go on when the block ends."""

    def __init__(self, engine: Engine, pattern: str = "") -> None:
        self.engine = engine
        self.pattern = re.compile(pattern)
        self.arrived = threading.Event()
        self._released = threading.Event()

    def __enter__(self) -> HeldStore:
        event.listen(self.engine, "before_cursor_execute", self._hold)
        return self

    def __exit__(self, *exc: Any) -> None:
        # Let go, and stay listening, inert: removing a listener while the app's threads run
        # statements mutates the list they iterate (SQLAlchemy's events are not thread-safe).
        self._released.set()

    def _hold(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self._released.is_set() or not self.pattern.search(statement):
            return
        self.arrived.set()
        # Longer than a sender waits for its answer: an ack held by the store fails the test.
        self._released.wait(2 * PATIENCE)
