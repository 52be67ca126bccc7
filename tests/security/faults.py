"""Fault injection into real parts: the store's statements and the Slack stand-in's answers."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from tests.support.slack_api import Call, FakeSlackApi


class StatementFault:
    """Lets `skip` statements matching `pattern` through, then fails the next `times` of them
    as a lost connection would."""

    def __init__(self, pattern: str, times: int = 1, skip: int = 0) -> None:
        self.pattern = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        self.left = times
        self.skip = skip
        self.hits = 0
        self._lock = threading.Lock()

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.pattern.search(statement):
            return
        with self._lock:
            if self.skip > 0:
                self.skip -= 1
                return
            if self.left <= 0:
                return
            self.left -= 1
            self.hits += 1
        raise OperationalError(statement[:80], None, Exception("server closed the connection"))


@contextlib.contextmanager
def failing_statements(
    engine: Engine, pattern: str, times: int = 1, skip: int = 0
) -> Iterator[StatementFault]:
    fault = StatementFault(pattern, times, skip)
    event.listen(engine, "before_cursor_execute", fault)
    try:
        yield fault
    finally:
        event.remove(engine, "before_cursor_execute", fault)


def answer_with(
    api: FakeSlackApi,
    method: str,
    answers: list[tuple[int, dict[str, Any], dict[str, str]]],
    *,
    where: Callable[[Call], bool] | None = None,
) -> None:
    """`method` gives these answers in turn to calls matching `where`, then behaves normally."""
    pending = list(answers)
    lock = threading.Lock()

    def respond(call: Call) -> tuple[int, dict[str, Any], dict[str, str]]:
        with lock:
            if pending and (where is None or where(call)):
                return pending.pop(0)
        return 200, api._default(call), {}

    api.overrides[method] = respond


def slack_error(
    error: str, status: int = 200, **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return status, {"ok": False, "error": error}, dict(headers)
