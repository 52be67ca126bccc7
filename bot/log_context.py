"""What a log line is about: the request, integration and actor of the work under way.

Set with `log_context(...)` where that work runs (a request executing, a decision, a sync); every
record logged inside the block, by RoleUp or by a library, carries the values, in the text format
as a trailing `[request=... integration=... actor=...]` and in JSON as fields of their own. Context
variables follow the thread (and asyncio task) that set them, so concurrent requests in one worker
never see each other's ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("request_id", "integration", "actor")
_CURRENT: ContextVar[dict[str, str] | None] = ContextVar("roleup_log_context", default=None)


def current() -> dict[str, str]:
    return dict(_CURRENT.get() or {})


@contextmanager
def log_context(
    *, request_id: str | None = None, integration: str | None = None, actor: str | None = None
) -> Iterator[None]:
    """Add these values (those given) to every record logged in the block; nested blocks add to
    the outer one's values."""
    given = {"request_id": request_id, "integration": integration, "actor": actor}
    merged = {**current(), **{key: str(value) for key, value in given.items() if value}}
    token = _CURRENT.set(merged)
    try:
        yield
    finally:
        _CURRENT.reset(token)


class ContextFilter(logging.Filter):
    """Puts the current context on each record (as `roleup_context`) when it is emitted, in the
    thread that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "roleup_context"):
            record.roleup_context = current()
        return True
