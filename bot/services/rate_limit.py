"""A fixed-window request limit per key, counted in the store so that every instance shares it.

Each hit is one atomic upsert (`INSERT ... ON CONFLICT (key, window_start) DO UPDATE SET hits =
hits + 1 RETURNING hits`), so two processes counting the same client never lose a hit. Windows
are fixed (aligned on multiples of the window length): a client may send up to twice the limit
across a window boundary, which is fine for keeping guessers and floods at a trickle.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import ReturningInsert

from storage.models import RateLimitHit

MAX_KEY = 128  # the column's length
#: One IPv6 client holds a whole /64 (2^64 addresses): it is counted as one.
IPV6_CLIENT_PREFIX = 64


def client_key(address: str | None) -> str:
    """The client behind a peer address: an IPv4 address as itself (also when written as an
    IPv4-mapped IPv6 address), an IPv6 address as its /64; anything else as given."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    hits: int
    #: Whole seconds until the window ends (what `Retry-After` says when refused).
    retry_after: int


class RateLimiter:
    """At most `limit` hits per key in each window of `window_seconds`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        limit: int,
        window_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        # Each process prunes old windows once per window it sees: enough to keep the table
        # to about one window of keys, without a scheduled job.
        self._pruned_before = 0
        self._prune_lock = threading.Lock()

    def hit(self, key: str) -> Verdict:
        now = self.clock()
        start = int(now // self.window) * self.window
        with self.sessions.begin() as session:
            hits = int(session.execute(_upsert(session, key[:MAX_KEY], start)).scalar_one())
        self._prune(start)
        retry_after = max(1, math.ceil(start + self.window - now))
        return Verdict(allowed=hits <= self.limit, hits=hits, retry_after=retry_after)

    def _prune(self, current: int) -> None:
        with self._prune_lock:
            if self._pruned_before >= current:
                return
            self._pruned_before = current
        with self.sessions.begin() as session:
            session.execute(delete(RateLimitHit).where(RateLimitHit.window_start < current))


def _upsert(session: Session, key: str, window_start: int) -> ReturningInsert[Any]:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(RateLimitHit).values(key=key, window_start=window_start, hits=1)
    return statement.on_conflict_do_update(
        index_elements=[RateLimitHit.key, RateLimitHit.window_start],
        set_={"hits": RateLimitHit.hits + 1},
    ).returning(RateLimitHit.hits)
