"""PostgreSQL ending every other session of a database, as a failover, a restart or an
administrator's pg_terminate_backend does, with the process's own checkout not yet seeing it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text as sql
from sqlalchemy.exc import DBAPIError

from storage.db import make_engine
from tests.support.waiting import wait_until


def end_other_sessions(database_url: str) -> set[int]:
    """End every other session of the database and return once each backend is gone (the
    pids ended). pg_terminate_backend returns before its backend has gone, and its notice may
    reach the ended connection's socket later still: a test that also makes storage.db's
    checkout see nothing (`_readable`) hands out such a connection, as that race would."""
    other = make_engine(database_url)
    try:
        with other.connect() as connection:
            ended = set(
                connection.scalars(
                    sql(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()"
                    )
                )
            )
            for pid in ended:
                connection.execute(sql("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            connection.commit()  # pg_stat_activity is read once per transaction
            alive = sql("SELECT pid FROM pg_stat_activity")

            def gone() -> bool:
                still = set(connection.scalars(alive))
                connection.commit()
                return not ended & still

            wait_until(gone)
    finally:
        other.dispose()
    return ended


def noting_failures(read: Callable[..., Any], failures: list[DBAPIError]) -> Callable[..., Any]:
    """`read`, with each DBAPIError it raises noted in `failures` (and raised on): a test then
    knows whether its read did meet an ended connection (`connection_invalidated`)."""

    def noted(*args: Any, **kwargs: Any) -> Any:
        try:
            return read(*args, **kwargs)
        except DBAPIError as exc:
            failures.append(exc)
            raise

    return noted
