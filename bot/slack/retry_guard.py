"""A global Bolt middleware so a Slack retry never runs work twice, across processes.

Slack re-sends an event it thinks went unanswered, marked with X-Slack-Retry-Num (Bolt has no
guard for this over HTTP). Every delivery that starts work leaves a key in the SlackDelivery
table; the key is inserted atomically (INSERT ... ON CONFLICT DO NOTHING), so of two processes
seeing the same delivery exactly one wins. A retried delivery whose key is already there is
answered 200 and dropped. A first delivery is never dropped: the test harness and real Slack
both reuse some identifiers across distinct requests more freely than one would hope, and only
a retry is known to repeat an earlier request.

Keys: `event:<event_id>` for Events API callbacks, `trigger:<trigger_id>` for commands and
view submissions, `action:<action_ts>:<action_id>` for block actions. Options requests
(block_suggestion), url_verification and ssl_check have no side effects and are never keyed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from slack_bolt import BoltRequest, BoltResponse
from sqlalchemy import delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage.models import SlackDelivery, utcnow

logger = logging.getLogger(__name__)

MAX_KEY = 128
RETRY_HEADER = "x-slack-retry-num"


def _bounded(key: str) -> str:
    if len(key) <= MAX_KEY:
        return key
    kind = key.split(":", 1)[0][:16]
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def delivery_key(body: Mapping[str, Any]) -> str | None:
    """The key that identifies this delivery of a request, or None if it needs none."""
    kind = body.get("type")
    if kind in ("url_verification", "block_suggestion", "view_closed") or body.get("ssl_check"):
        return None
    if kind == "event_callback" and body.get("event_id"):
        return _bounded(f"event:{body['event_id']}")
    if kind == "block_actions":
        acts = body.get("actions") or []
        first = acts[0] if acts and isinstance(acts[0], dict) else {}
        if first.get("action_ts") and first.get("action_id"):
            return _bounded(f"action:{first['action_ts']}:{first['action_id']}")
    trigger = body.get("trigger_id")
    if trigger:
        return _bounded(f"trigger:{trigger}")
    return None


def retry_number(headers: Mapping[str, Sequence[str] | str]) -> int:
    """X-Slack-Retry-Num as a number (0 when absent or malformed)."""
    raw = headers.get(RETRY_HEADER) or headers.get("X-Slack-Retry-Num")
    if isinstance(raw, (list, tuple)):
        raw = raw[0] if raw else None
    try:
        return max(int(str(raw)), 0) if raw is not None else 0
    except ValueError:
        return 0


def claim(session: Session, key: str) -> bool:
    """Insert the key; True if this caller inserted it (no one had seen this delivery)."""
    dialect = session.get_bind().dialect.name
    values = {"key": key, "seen_at": utcnow()}
    if dialect == "postgresql":
        statement: Any = pg_insert(SlackDelivery).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite_insert(SlackDelivery).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        statement = insert(SlackDelivery).values(**values)
    # RETURNING rather than rowcount: psycopg reports no rowcount for ON CONFLICT DO NOTHING.
    inserted = session.execute(statement.returning(SlackDelivery.key)).first()
    return inserted is not None


def prune(
    sessions: sessionmaker[Session], older_than: timedelta, now: datetime | None = None
) -> int:
    """Forget delivery keys older than Slack's retry window (for a scheduled job)."""
    cutoff = (now or utcnow()) - older_than
    with sessions.begin() as session:
        result = session.execute(delete(SlackDelivery).where(SlackDelivery.seen_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def make_retry_guard(
    sessions: sessionmaker[Session],
) -> Callable[[BoltRequest, BoltResponse, Callable[[], Any]], BoltResponse | None]:
    """The middleware for `app.use(...)`."""

    def retry_guard(
        req: BoltRequest, resp: BoltResponse, next_: Callable[[], Any]
    ) -> BoltResponse | None:
        key = delivery_key(req.body or {})
        if key is None:
            return next_()
        try:
            with sessions.begin() as session:
                first_time = claim(session, key)
        except SQLAlchemyError as exc:
            # The store is failing: answer anyway (a 500 reaches the user as Slack's bare
            # timeout error); the listener meets the same store and says so in words.
            logger.warning("could not note a Slack delivery: %s", type(exc).__name__)
            first_time = True
        if not first_time and retry_number(req.headers) > 0:
            logger.info("dropped Slack retry of %s (already handled)", key.split(":", 1)[0])
            return BoltResponse(status=200, body="")
        return next_()

    return retry_guard
