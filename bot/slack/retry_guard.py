"""A global Bolt middleware so a Slack retry never runs work twice, across processes.

Slack re-sends an event it thinks went unanswered, marked with X-Slack-Retry-Num (Bolt has no
guard for this over HTTP). Every delivery that starts work leaves a key in the SlackDelivery
table; the key is inserted atomically (INSERT ... ON CONFLICT DO NOTHING), so of two processes
seeing the same delivery exactly one wins. A retried delivery whose key is already there is
answered 200 and dropped. A first delivery is never dropped: the test harness and real Slack
both reuse some identifiers across distinct requests more freely than one would hope, and only
a retry is known to repeat an earlier request.

A first delivery (no X-Slack-Retry-Num) is never dropped, so its key need not be written before
its ack: it is handed to the process's DeliveryLog, which writes the keys of all first
deliveries of the last FLUSH_SECONDS in one statement, off the request's thread (one write per
batch instead of one per request before every ack). A retry first writes what this process
still holds, then claims its key as before. Slack retries a delivery only after the first one
failed or went unanswered for 3 seconds, so its key is most often in the store long before; the
gap is a retry reaching another process before the first delivery's batch is written: within
FLUSH_SECONDS of a first delivery that failed, or while a stalled store holds that batch (for as
long as it does). Such a retry runs, and the work's own guards are what hold: an onboarding's
name check, a decision's guarded UPDATE.

A retry's claim never holds its ack: Slack retries exactly when the first delivery went
unanswered, most often because the store was stalled, and a claim waiting on that store would
hold the retry's ack too (and Slack would retry again). The claim (the flush of what this
process holds, then the INSERT) runs in a pool and is awaited ANSWER_WITHIN, as the checks of a
submission are (bot.slack.commands.checked_within). Late, the retry is answered as a dropped
one is, with an empty 200 (Slack shows nothing for a command or a click; a modal closes, as it
does for any dropped retry), and the claim goes on: lost, nothing more happens; won (the first
delivery never started its work), the request is dispatched again in the pool, marked as
claimed, so its listener runs once, and the answer a command's ack would have carried (a usage
line) is posted to its response_url instead. A view submission's modal was closed by the
empty answer: field errors its ack carries are sent to its person in a direct message (else
they would think it saved); its next view has nowhere left to go.

Keys: `event:<event_id>` for Events API callbacks, `trigger:<trigger_id>` for commands and
view submissions, `action:<action_ts>:<action_id>` for block actions. Options requests
(block_suggestion), url_verification and ssl_check have no side effects and are never keyed.

Nor are the requests registered as only reading (`ReadOnlyRequests`: /accounts, by
bot.slack.commands.read_only_command, its Previous / Next buttons, and `/roleup help`): a key
exists so a retry never repeats work, and these do none, so a retry of one is simply answered
again, and no key is written for them at all. They are registered by command name and action
id, the way Bolt routes them, and a subcommand by the matcher its listener is routed by (the
command's own parser), never recognised from the text typed in any other way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from datetime import datetime, timedelta
from typing import Any

from slack_bolt import BoltRequest, BoltResponse
from sqlalchemy import Engine, delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.slack.middleware import RequestMiddleware
from bot.slack.modal_reply import OUTCOME, ModalReply, direct_message, said
from bot.slack.mrkdwn import escape
from storage.models import SlackDelivery, utcnow

logger = logging.getLogger(__name__)

MAX_KEY = 128
RETRY_HEADER = "x-slack-retry-num"
FLUSH_SECONDS = 0.05  # how long a first delivery's key may wait to be written
# The context key marking a request dispatched again once its late claim was won.
CLAIMED = "roleup_claimed_delivery"
# Bolt refuses a request signed longer ago than 5 minutes, and logs its whole body (a password,
# a secret key) as it does: a request claimed that late is not dispatched again. A margin for
# the time between this check and Bolt's.
SIGNED_WITHIN = 300 - 10

# (pool, claim, later) -> the claim's Future when done in time, else None and `later` gets it
# when it is done: bot.slack.commands.checked_within (it imports this module, so it is passed).
Within = Callable[[Executor | None, Callable[[], bool], Callable[[Future[bool]], Any]], Any]


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


def _insert(session: Session, rows: list[dict[str, Any]]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING of these rows (a key seen before stays as it was)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(SlackDelivery).values(rows).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite_insert(SlackDelivery).values(rows).on_conflict_do_nothing()
    return insert(SlackDelivery).values(rows)  # pragma: no cover - SQLite and PostgreSQL only


def _insert_many(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for executemany (the rows are the parameters)."""
    if dialect == "postgresql":
        return pg_insert(SlackDelivery).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite_insert(SlackDelivery).on_conflict_do_nothing()
    return insert(SlackDelivery)  # pragma: no cover - SQLite and PostgreSQL only


def claim(session: Session, key: str) -> bool:
    """Insert the key; True if this caller inserted it (no one had seen this delivery)."""
    statement = _insert(session, [{"key": key, "seen_at": utcnow()}])
    # RETURNING rather than rowcount: psycopg reports no rowcount for ON CONFLICT DO NOTHING.
    inserted = session.execute(statement.returning(SlackDelivery.key)).first()
    return inserted is not None


class ReadOnlyRequests:
    """The slash commands, subcommands and block actions registered as only reading: they need
    no key. A subcommand is registered with the matcher its listener is routed by (the
    command's own parser, bot.slack.subcommands.roleup_matcher), so text that parses as
    anything else, or not at all, keeps its key."""

    def __init__(self) -> None:
        self.commands: set[str] = set()
        self.subcommands: dict[str, list[Callable[[dict[str, Any]], bool]]] = {}
        self.actions: set[str] = set()

    def add_subcommand(self, command: str, matches: Callable[[dict[str, Any]], bool]) -> None:
        self.subcommands.setdefault(command, []).append(matches)

    def covers(self, body: Mapping[str, Any]) -> bool:
        """True for a registered command or subcommand, or a click whose every action is."""
        if body.get("type") == "block_actions":
            acts = body.get("actions")
            return (
                "command" not in body  # a command listener could match it too
                and isinstance(acts, list)
                and bool(acts)
                and all(isinstance(a, dict) and a.get("action_id") in self.actions for a in acts)
            )
        if body.get("type") is not None:
            return False
        command = body.get("command")
        if not isinstance(command, str):
            return False
        if command in self.commands:
            return True
        return any(matches(dict(body)) for matches in self.subcommands.get(command, ()))


class DeliveryLog:
    """The keys of this process's first deliveries, written in batches by one thread (started
    at the first key, so building the app starts nothing), and the requests that need none."""

    def __init__(self, sessions: sessionmaker[Session], interval: float = FLUSH_SECONDS) -> None:
        self.engine: Engine = sessions.kw["bind"]
        self.interval = interval
        self.read_only = ReadOnlyRequests()  # filled as listeners are registered
        self._pending: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one batch at a time, so a flush() waits for it
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def note(self, key: str) -> None:
        with self._lock:
            self._pending.setdefault(key, utcnow())
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="roleup-delivery-log", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def flush(self) -> None:
        """Write every key noted so far (a batch being written is finished first)."""
        with self._writing:
            with self._lock:
                rows = [{"key": k, "seen_at": at} for k, at in self._pending.items()]
                self._pending.clear()
            if not rows:
                return
            try:
                # One statement for any number of keys (executemany), so it is compiled once
                # per process, not once per batch size; on a connection, not through the
                # ORM's bulk insert, which only adds its own bookkeeping to plain rows.
                with self.engine.begin() as connection:
                    connection.execute(_insert_many(self.engine.dialect.name), rows)
            except SQLAlchemyError as exc:
                # The store is failing: those deliveries were answered anyway; a retry of one
                # of them would run again (as when its key could not be written at once).
                logger.warning(
                    "could not note %d Slack deliveries: %s", len(rows), type(exc).__name__
                )

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake.set()
        self.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.interval)  # let the keys of the next few requests join this batch
            self.flush()


def prune(
    sessions: sessionmaker[Session], older_than: timedelta, now: datetime | None = None
) -> int:
    """Forget delivery keys older than Slack's retry window (for a scheduled job)."""
    cutoff = (now or utcnow()) - older_than
    with sessions.begin() as session:
        result = session.execute(delete(SlackDelivery).where(SlackDelivery.seen_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class RetryGuard(RequestMiddleware):
    """The middleware for `app.use(...)`; first deliveries' keys go to `log`, a retry's claim
    runs in `pool`, awaited by `within`, and a retry whose late claim was won is given to
    `dispatch` (the app's) again."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        log: DeliveryLog,
        *,
        pool: Executor | None,
        within: Within,
        dispatch: Callable[[BoltRequest], BoltResponse],
    ) -> None:
        self.sessions = sessions
        self.deliveries = log
        self.pool = pool
        self.within = within
        self.dispatch = dispatch

    def handle(self, req: BoltRequest, next_: Callable[[], BoltResponse]) -> BoltResponse | None:
        body = req.body or {}
        key = delivery_key(body)
        if key is None or self.deliveries.read_only.covers(body):
            return next_()
        if req.context.get(CLAIMED) == key:  # set by _run_claimed alone, never by a request
            return next_()
        if retry_number(req.headers) == 0:
            self.deliveries.note(key)  # written within FLUSH_SECONDS, after the ack
            return next_()
        claimed = self.within(
            self.pool, lambda: self._claim(key), lambda late: self._late(req, key, late)
        )
        if claimed is None:  # the store is slow: the claim goes on, this retry is answered now
            logger.info("answered a Slack retry of %s before its claim", _kind(key))
            return BoltResponse(status=200, body="")
        if not _won(claimed):
            logger.info("dropped Slack retry of %s (already handled)", _kind(key))
            return BoltResponse(status=200, body="")
        return next_()

    def _claim(self, key: str) -> bool:
        """True if this retry is the first to claim its key (or the store failed: the listener
        then meets the same store and says so in words, where a 500 would reach the user as
        Slack's bare timeout error)."""
        self.deliveries.flush()  # a first delivery this process still holds counts as seen
        try:
            with self.sessions.begin() as session:
                return claim(session, key)
        except SQLAlchemyError as exc:
            logger.warning("could not note a Slack delivery: %s", type(exc).__name__)
            return True

    def _late(self, req: BoltRequest, key: str, claimed: Future[bool]) -> None:
        """A claim that ended after its retry was answered: won, the request runs (in the
        pool: this is called in the thread that ends the claim, or the request's own)."""
        if not _won(claimed):
            logger.info("dropped Slack retry of %s (already handled)", _kind(key))
            return
        try:
            if self.pool is None:
                raise RuntimeError("no pool")
            self.pool.submit(self._run_claimed, req, key)
        except RuntimeError:  # the pool is stopping (so is the process)
            logger.warning("a Slack retry of %s was claimed but not run: stopping", _kind(key))

    def _run_claimed(self, req: BoltRequest, key: str) -> None:
        http = req.mode == "http"  # a Socket Mode request has no signature, nor a raw body
        if http and not _signed_recently(req):
            logger.warning(
                "a Slack retry of %s was claimed after its signature expired", _kind(key)
            )
            return
        again = BoltRequest(
            body=req.raw_body if http else req.body,
            query=req.query,
            headers=dict(req.headers),
            context={CLAIMED: key},
            mode=req.mode,
        )
        try:
            answer = self.dispatch(again)
            _forward(again, answer)
        except Exception as exc:  # in a thread of the pool: the log is all there is
            logger.warning("a claimed Slack retry of %s failed: %s", _kind(key), type(exc).__name__)


def _won(claimed: Future[bool]) -> bool:
    try:
        return claimed.result()
    except Exception as exc:  # the claim's own failure, beyond the store's (caught in it)
        logger.warning("could not claim a Slack delivery: %s", type(exc).__name__)
        return True


def _signed_recently(req: BoltRequest) -> bool:
    raw = (req.headers.get("x-slack-request-timestamp") or ["0"])[0]
    try:
        return abs(time.time() - int(raw)) <= SIGNED_WITHIN
    except ValueError:
        return False


def _kind(key: str) -> str:
    return key.split(":", 1)[0]


def _forward(again: BoltRequest, answer: BoltResponse) -> None:
    """The ack Slack never saw of a request run after its late claim: a command's is posted to
    its response_url; a view submission's field errors, to its person (their modal was closed
    by the retry's empty answer, so nothing else would say it was not saved); another kind's
    ack shows nothing a user could still see."""
    body = again.body or {}
    message = _answer(answer)
    if message is None:
        return
    if body.get("type") == "view_submission":
        _tell_refused(again, body, message)
        return
    respond = again.context.respond
    if body.get("type") is not None or not body.get("command") or respond is None:
        return
    if message.get("text") or message.get("blocks"):
        kept = ("text", "blocks", "response_type")
        respond(**{name: message[name] for name in kept if name in message})


def _answer(answer: BoltResponse) -> dict[str, Any] | None:
    if answer.status != 200 or not answer.body:
        return None
    try:
        message = json.loads(answer.body)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _tell_refused(again: BoltRequest, body: Mapping[str, Any], message: dict[str, Any]) -> None:
    errors = message.get("errors")
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    client = again.context.client
    if not isinstance(user_id, str) or client is None:
        return
    shown = message.get("view")
    if message.get("response_action") == "update" and isinstance(shown, dict):
        if shown.get("private_metadata") == OUTCOME:  # a waiting view's outcome is DMed later
            view = body.get("view")
            ModalReply.submitted(client, user_id, view if isinstance(view, dict) else {}).tell(
                said(shown)
            )
        return
    if message.get("response_action") != "errors" or not isinstance(errors, dict):
        return
    view = body.get("view")
    title = view.get("title") if isinstance(view, dict) else None
    name = title.get("text") if isinstance(title, dict) else None
    form = f"*{escape(name)}*" if isinstance(name, str) and name else "form"
    lines = "\n".join(f"• {escape(error)}" for error in errors.values())
    text = f"Your {form} was not saved (it closed before it could say why):\n{lines}"
    direct_message(client, user_id, text)
