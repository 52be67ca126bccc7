"""The fixture `writer`: who writes to the store between two reads of it, as a test of what a
listing shows after a write needs both (import it where used)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from storage.db import make_engine, make_sessionmaker


@pytest.fixture(name="writer", params=["another process", "this process"])
def store_writer(request: pytest.FixtureRequest, roleup: Any, database_url: str) -> Iterator[Any]:
    """Who writes between two listings: another engine (as another instance would), or the
    app's own sessions."""
    if request.param == "this process":
        yield roleup.core.sessions
        return
    other = make_engine(database_url)
    try:
        yield make_sessionmaker(other)
    finally:
        other.dispose()
