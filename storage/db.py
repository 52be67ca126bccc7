"""Engine and sessionmaker construction; the caller owns each transaction."""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


class StoreUnavailable(Exception):
    """The database cannot be reached; the message names the database without its password."""


# How long a SQLite connection waits for another one's lock before giving up.
BUSY_TIMEOUT_MS = 30000


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(parsed, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        event.listen(engine.pool, "checkout", _replace_if_ended)
    return engine


def _replace_if_ended(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection the server has ended (a restart, a failover, an
    administrator's pg_terminate_backend, idle_session_timeout) is replaced before it is used:
    the pool tries a new one (up to three times) when this raises DisconnectionError.

    Instead of SQLAlchemy's pool_pre_ping, a SELECT 1 round trip at every checkout (one of the
    three round trips of an /accounts listing, bench/ack.py): a connection sits idle in the pool
    with nothing to read, so the server's notice that it ends it, or the end of the stream when
    it is gone, makes its socket readable; psycopg's `closed` covers one it already knows is
    gone. A server that vanished without a word (a cut network) is found by the first statement,
    as it would be by the ping, which would wait just as long for its answer."""
    if getattr(dbapi_connection, "closed", False) or _readable(dbapi_connection.fileno()):
        raise DisconnectionError("the database ended this pooled connection")


Read = TypeVar("Read")


def read_again_if_ended(read: Callable[[], Read]) -> Read:
    """`read()`, and once more if its connection turned out to be one the server had ended.

    _replace_if_ended finds a pooled connection the server ended only once the server's notice
    is on its socket, and pg_terminate_backend (a failover, a restart) returns before the
    backend has gone: a checkout in between hands out the ended connection, and its first
    statement fails. SQLAlchemy then replaces every connection pooled before it, so `read` is
    run again on a new one. Only for what only reads (a listing, a click's read): a write may
    have reached the store before its connection failed, and is never run twice."""
    try:
        return read()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        return read()


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Freed bytes are overwritten with zeros, so an erased secret does not linger in a free
    # part of a page (storage/erasure.py empties the write-ahead log afterwards).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # WAL's recommended level: never corrupts, and an application crash loses nothing; only a
    # power cut may forget the last commits. FULL fsyncs every commit, which tripled the ack
    # time of every Slack request under load (bench/ack.py), since each one writes a
    # delivery key.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def lock_for_update(session: Session) -> None:
    """On SQLite, what `SELECT ... FOR UPDATE` gives on PostgreSQL: the database's write lock
    taken now (SQLite locks the whole database, and ignores FOR UPDATE), so what this
    transaction reads next no other writer changes before it commits. Without it SQLite runs
    a transaction's reads before its first write each on its own snapshot, so a second sync
    of an integration read the accounts before the first committed and their groups after.
    Nothing on PostgreSQL: its FOR UPDATE locks the rows itself."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class CompiledByIdentity:
    """A `compiled_cache` (SQLAlchemy's execution option) for statements built once per process
    and run on every request, such as /accounts' (bot/services/listing.py).

    SQLAlchemy finds a statement's compiled form in its LRU cache by hashing the statement's
    whole cache key, a tuple of hundreds of elements that Python hashes anew at each execution
    (about 50 µs of a listing's 650 on SQLite: README, "Benchmarks"). A statement built
    once keeps the same cache key object, so its compiled form is found here by that object's
    identity (and the dialect's). Each entry holds the key it was stored under, so no object
    it names can be freed and its id reused while the entry is kept. At most KEPT entries:
    past them, all are dropped and compiled again when next used."""

    KEPT = 64

    def __init__(self) -> None:
        self._compiled: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}

    @staticmethod
    def _identity(key: tuple[Any, ...]) -> tuple[Any, ...]:
        # (dialect, cache key, column keys, schema translated, executemany), as SQLAlchemy
        # builds it; the last three are small values, compared as they are.
        dialect, cache_key, *rest = key
        return (id(dialect), id(cache_key), *rest)

    def get(self, key: tuple[Any, ...], default: Any = None) -> Any:
        found = self._compiled.get(self._identity(key))
        return default if found is None else found[1]

    def __setitem__(self, key: tuple[Any, ...], compiled: Any) -> None:
        if len(self._compiled) >= self.KEPT:
            self._compiled.clear()
        self._compiled[self._identity(key)] = (key, compiled)

    def __len__(self) -> int:
        return len(self._compiled)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def safe_url(url: URL) -> str:
    """The URL to name in a message: its password masked in the netloc and left out of the
    query (libpq takes `?password=` too)."""
    return url.difference_update_query(["password"]).render_as_string(hide_password=True)


def check_store(engine: Engine) -> None:
    """Raise StoreUnavailable with a one-line reason if the database does not answer."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the same thing to the operator
        safe = safe_url(engine.url)
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"cannot reach the database {safe}: {reason}") from None
