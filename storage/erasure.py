"""Erasure that reaches the database's files, not only its rows.

Deleting a row or setting a column to NULL only marks the old bytes free: SQLite keeps them in
the page (and in the write-ahead log) and PostgreSQL keeps the dead tuple until VACUUM. After
a secret is erased, `purge` is called with the tables it lived in:

- SQLite runs with `secure_delete` on (storage/db.py), so the page written for the change has
  the old bytes zeroed; `wal_checkpoint(TRUNCATE)` then copies it into the main file and empties
  the log that still held the page as it was before.
- PostgreSQL gets a VACUUM FULL of the tables, which rewrites them into new files where the role
  owns the tables (PostgreSQL only warns otherwise). A plain VACUUM would remove the dead tuples
  but only mark their bytes free: the ciphertext stayed readable in the page. The two tables are
  small (integrations, requests), so the rewrite and its brief exclusive lock are cheap. What
  remains in WAL archives and backups is said in SECURITY.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from storage.db import BUSY_TIMEOUT_MS

logger = logging.getLogger(__name__)

# Only these may be named: the names go into a statement, so they come from this list alone.
SECRET_TABLES = frozenset({"integrations", "requests"})
# A reader or writer in another thread or process can hold the log for a moment. While a
# truncating checkpoint waits it holds back new writers, so each attempt waits at most
# CHECKPOINT_WAIT_MS (not the store's 30 s busy timeout), and it is tried a few times.
CHECKPOINT_ATTEMPTS = 10
CHECKPOINT_WAIT_MS = 100
# VACUUM FULL takes an exclusive lock, so it waits for every open transaction on the table and
# every later one waits behind it: it waits this long at most (a caller's own open session
# would otherwise wait for ever).
VACUUM_FULL_WAIT_MS = 2000


def purge(engine: Engine, tables: Iterable[str]) -> bool:
    """Make rows erased from `tables` unreadable in the store's files; True when complete."""
    names = sorted(set(tables))
    unknown = [name for name in names if name not in SECRET_TABLES]
    if unknown:
        raise ValueError(f"not a table that holds secrets: {', '.join(unknown)}")
    if engine.dialect.name == "sqlite":
        return _checkpoint(engine)
    if engine.dialect.name == "postgresql":
        return _vacuum_full(engine, names)
    return False


def _vacuum_full(engine: Engine, names: list[str]) -> bool:
    """Rewrite each table; when another transaction holds it past VACUUM_FULL_WAIT_MS (its
    exclusive lock must wait for every reader), a plain VACUUM instead, reported: the next
    purge that gets the lock rewrites the pages still holding the freed bytes."""
    complete = True
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"SET lock_timeout = {VACUUM_FULL_WAIT_MS}")
        try:
            for name in names:
                try:
                    connection.exec_driver_sql(f'VACUUM FULL "{name}"')
                except OperationalError:
                    complete = False
                    connection.exec_driver_sql("SET lock_timeout = 0")
                    connection.exec_driver_sql(f'VACUUM "{name}"')
                    connection.exec_driver_sql(f"SET lock_timeout = {VACUUM_FULL_WAIT_MS}")
        finally:
            connection.exec_driver_sql("RESET lock_timeout")
    if not complete:
        logger.warning("a table is busy: erased bytes stay in its pages until the next purge")
    return complete


def _checkpoint(engine: Engine) -> bool:
    with engine.connect() as connection:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            for _ in range(CHECKPOINT_ATTEMPTS):
                busy, _log, _done = connection.exec_driver_sql(
                    "PRAGMA wal_checkpoint(TRUNCATE)"
                ).one()
                connection.commit()
                if not busy:
                    return True
                time.sleep(0.05)
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            connection.commit()
    # Not an error for the person who asked: the erasure itself is committed, and the next
    # checkpoint that completes empties the log.
    logger.warning("the write-ahead log is busy: erased bytes stay in it until the next checkpoint")
    return False
