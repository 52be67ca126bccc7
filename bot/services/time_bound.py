"""What every time-bound row (a grant, an account expiry) does as its end comes: reminders
claimed once, the due rows, one claim deciding which process ends a row, and the retry
schedule of a failed end (30 s, 2 min, 10 min, then every 30 min; the third failure in a row
is reported to the approvals channel).

Both tables keep the same columns for this (state, failures, next_attempt_at, claimed_by,
claimed_until); a `Schedule` names the table, its states, its end column and the request kind
that ends a row, so grants and account expiries share one implementation of the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.services import approvals
from bot.services.container import Core
from storage.models import AccountExpiry, Grant
from storage.updates import guarded_update

# After the nth failure in a row the next attempt waits RETRY_DELAYS[n-1] (the last one after).
RETRY_DELAYS = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)
ALERT_AFTER = 3
# A process that claimed a row and died: another one takes it over after this.
CLAIM = timedelta(minutes=5)
BATCH = 200


@dataclass(frozen=True)
class Schedule:
    """One time-bound table: `waiting` is the state before its end (active, scheduled),
    `ending` the claimed state, `ended` the last one; `begins`/`ends` its span; `reminders`
    (name, how long before the end, the column that records it sent), farthest last;
    `kind`/`key` the request kind that ends a row and the payload key naming the row."""

    model: type[Grant] | type[AccountExpiry]
    waiting: str
    ending: str
    ended: str
    begins: InstrumentedAttribute[datetime]
    ends: InstrumentedAttribute[datetime]
    reminders: tuple[tuple[str, timedelta, InstrumentedAttribute[datetime | None]], ...]
    kind: str
    key: str


@dataclass(frozen=True)
class Failure:
    """A failed end put back for a retry: the failures in a row, and whether the approvals
    channel should hear of them now."""

    failures: int
    alert: bool
    end_request_id: str | None


def remind_due(core: Core, schedule: Schedule, now: datetime) -> list[tuple[int, str]]:
    """(row id, reminder name) of the rows whose reminder time has come, each claimed once
    across every process (a guarded UPDATE of its reminded_* column). A row late for several
    reminders gets the nearest; one that never lasted as long as a reminder does not get it."""
    model = schedule.model
    nearest = schedule.reminders[0][0]
    due: list[tuple[int, str]] = []
    for name, before, column in schedule.reminders:
        with core.sessions() as session:
            candidates = session.execute(
                select(model.id, schedule.begins, schedule.ends).where(
                    model.state == schedule.waiting,
                    schedule.ends > now,
                    schedule.ends <= now + before,
                    column.is_(None),
                )
            ).all()
        for row_id, begins, ends in candidates:
            if ends - begins <= before:
                continue  # it never lasted that long: this reminder does not fit
            # The nearer reminder supersedes the farther one, which is not sent late.
            stale = {c.key: now for n, _, c in schedule.reminders if n != name and name == nearest}
            with core.sessions.begin() as session:
                won = guarded_update(
                    session,
                    model,
                    [model.id == row_id, model.state == schedule.waiting, column.is_(None)],
                    **{column.key: now, **stale},
                )
            if won == 1:
                due.append((row_id, name))
    return due


def due_ids(core: Core, schedule: Schedule, now: datetime) -> list[int]:
    """The rows whose end has come and whose retry delay has passed, earliest first, after
    taking over the claims of processes that died."""
    _take_over_stale_claims(core, schedule, now)
    model = schedule.model
    with core.sessions() as session:
        return list(
            session.scalars(
                select(model.id)
                .where(
                    model.state == schedule.waiting,
                    schedule.ends <= now,
                    or_(model.next_attempt_at.is_(None), model.next_attempt_at <= now),
                )
                .order_by(schedule.ends, model.id)
                .limit(BATCH)
            ).all()
        )


def claim(
    session: Session,
    schedule: Schedule,
    row_id: int,
    *,
    claimant: str,
    now: datetime,
    due_only: bool = True,
) -> bool:
    """Move the row from waiting to ending for `claimant` (one process wins); with `due_only`
    only once its end has come."""
    model = schedule.model
    where = [model.id == row_id, model.state == schedule.waiting]
    if due_only:
        where.append(schedule.ends <= now)
    claimed = guarded_update(
        session,
        model,
        [*where],
        state=schedule.ending,
        claimed_by=claimant[:128],
        claimed_until=now + CLAIM,
    )
    return claimed == 1


def retry_later(core: Core, schedule: Schedule, row_id: int, now: datetime) -> Failure | None:
    """Put a row whose end failed back to waiting, to be tried again after the next delay;
    None when the end went through after all (the request ended the row, then failed)."""
    model = schedule.model
    with core.sessions.begin() as session:
        state, failures, end_request_id = session.execute(
            select(model.state, model.failures, model.end_request_id).where(model.id == row_id)
        ).one()
        if state == schedule.ended:
            return None
        failures += 1
        delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
        more = {"failures": failures, "next_attempt_at": now + delay}
        _back_to_waiting(session, schedule, [model.id == row_id], **more)
        return Failure(failures, failures == ALERT_AFTER, end_request_id)


def release(core: Core, schedule: Schedule, row_id: int) -> None:
    """Give a claimed row back untouched (someone else is ending it)."""
    model = schedule.model
    with core.sessions.begin() as session:
        _back_to_waiting(session, schedule, [model.id == row_id])


def _take_over_stale_claims(core: Core, schedule: Schedule, now: datetime) -> None:
    """A claim left by a process that died is taken over; one whose end is still running (AWS
    can make it last longer than the claim) is not, or a second end would start beside it."""
    model = schedule.model
    with core.sessions.begin() as session:
        running = [
            p[schedule.key]
            for p in approvals.live_payloads(session, schedule.kind, now)
            if isinstance(p.get(schedule.key), int)
        ]
        _back_to_waiting(session, schedule, [model.claimed_until < now, model.id.not_in(running)])


def _back_to_waiting(
    session: Session, schedule: Schedule, where: list[ColumnElement[bool]], **more: Any
) -> None:
    """Hand claimed rows back: waiting again, claimed by nobody; `more` is what a failure adds
    (its count, when to try again)."""
    model = schedule.model
    guarded_update(
        session,
        model,
        [model.state == schedule.ending, *where],
        state=schedule.waiting,
        claimed_by=None,
        claimed_until=None,
        **more,
    )
