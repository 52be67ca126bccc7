"""Time-bound grants ending: when due (the scheduler's grants job), or early (End now).

Each end is a request of its own kind (`end_grant`, no approver: its end was approved with the
grant), so the audit has the same trail as any change. One process ends a grant: the guarded
UPDATE from active to ending decides who. A removal that fails (AWS down) puts the grant back
to active with a growing delay; the third failure in a row is reported to the approvals
channel, and it keeps being retried.

What people are told is left to the caller (the scheduler posts through bot.notices, Slack
handlers answer the click): this module only returns what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.services import approvals, breakglass, grants, requesting
from bot.services.container import Core
from bot.services.errors import NotFound, RequestConflict, RoleUpError
from bot.services.grants import ACTIVE, ENDED, ENDING, GrantRow
from bot.services.policy import END_GRANT, Action
from bot.services.request_kinds import EndGrantPayload
from storage.models import Grant, Integration, utcnow

# After the nth failure in a row the next attempt waits RETRY_DELAYS[n-1] (the last one after).
RETRY_DELAYS = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)
ALERT_AFTER = 3
# A process that claimed a grant and died: another one takes it over after this.
CLAIM = timedelta(minutes=5)
BATCH = 200


@dataclass(frozen=True)
class Ended:
    """One grant this call tried to end: `ended`, or failed (with `error`); `alert` is set
    when the approvals channel should hear of the failures."""

    grant: GrantRow
    ended: bool
    error: str | None = None
    alert: bool = False
    approvals_channel: str | None = None
    failures: int = 0


# Reminders before a grant's end: (name, how long before). Only those that fit: a grant of four
# hours gets the one-hour reminder only.
REMINDERS = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)))


@dataclass(frozen=True)
class Reminder:
    grant: GrantRow
    before: str  # "1h" or "24h"


def remind_due(core: Core, *, now: datetime | None = None) -> list[Reminder]:
    """Grants whose reminder time has come, each claimed once across every process (a guarded
    UPDATE of its reminded_* column). A grant late for both reminders gets the nearer one."""
    now = now or utcnow()
    columns = {"1h": Grant.reminded_1h_at, "24h": Grant.reminded_24h_at}
    due: list[Reminder] = []
    for name, before in REMINDERS:
        column = columns[name]
        with core.sessions() as session:
            candidates = session.execute(
                select(Grant.id, Grant.starts_at, Grant.ends_at).where(
                    Grant.state == ACTIVE,
                    Grant.ends_at > now,
                    Grant.ends_at <= now + before,
                    column.is_(None),
                )
            ).all()
        for grant_id, starts_at, ends_at in candidates:
            if ends_at - starts_at <= before:
                continue  # it never lasted that long: this reminder does not fit
            # The nearer reminder supersedes the farther one, which is not sent late.
            stale = {c: now for n, c in columns.items() if n != name and name == "1h"}
            with core.sessions.begin() as session:
                won = session.execute(
                    update(Grant)
                    .where(Grant.id == grant_id, Grant.state == ACTIVE, column.is_(None))
                    .values({column: now, **stale})
                    .execution_options(synchronize_session=False)
                )
            if won.rowcount == 1:  # type: ignore[attr-defined]
                due.append(Reminder(_row(core, grant_id), name))
    return due


def expire_due(core: Core, *, now: datetime | None = None, instance: str = "") -> list[Ended]:
    """End every active grant whose end has come (and whose retry delay has passed)."""
    now = now or utcnow()
    _take_over_stale_claims(core, now)
    with core.sessions() as session:
        due = session.scalars(
            select(Grant.id)
            .where(
                Grant.state == ACTIVE,
                Grant.ends_at <= now,
                or_(Grant.next_attempt_at.is_(None), Grant.next_attempt_at <= now),
            )
            .order_by(Grant.ends_at, Grant.id)
            .limit(BATCH)
        ).all()
    results = []
    for grant_id in due:
        result = _end(
            core, grant_id, actor="roleup", reason=grants.EXPIRED, now=now, instance=instance
        )
        if result is not None:
            results.append(result)
    return results


def end_now(
    core: Core,
    grant_id: int,
    *,
    actor: str,
    now: datetime | None = None,
    trusted: bool = False,
    reason: str | None = None,
) -> Ended:
    """End a grant early: its holder, its requester or someone who may change the
    integration's groups (`trusted`: the CLI, which runs with the host's authority, or a
    caller that has checked the actor itself).
    Raises Refused, NotFound, or RequestConflict (already ended)."""
    with core.sessions() as session:
        grant = session.get(Grant, grant_id)
        if grant is None:
            raise NotFound(f"There is no grant {grant_id}.")
        integration = session.get(Integration, grant.integration_id)
        assert integration is not None  # the grant goes with its integration
        session.expunge(integration)
        holder, requester, state = grant.slack_user_id, grant.requester, grant.state
    if not trusted and actor not in {holder, requester}:
        requesting.require(core, actor, Action.CHANGE_GROUPS, integration)
    if state != ACTIVE:
        raise RequestConflict(f"Grant {grant_id} has already ended or is ending.")
    result = _end(
        core,
        grant_id,
        actor=actor,
        reason=reason or f"ended early by {actor}",
        now=now or utcnow(),
        instance=actor,
        due_only=False,
    )
    if result is None:
        raise RequestConflict(f"Grant {grant_id} has already ended or is ending.")
    if not result.ended:
        raise RoleUpError(f"Grant {grant_id} could not be ended now: {result.error}")
    return result


def revoke(core: Core, grant_id: int, *, actor: str, now: datetime | None = None) -> Ended:
    """An approver ends a break-glass grant now, as End now does, after the policy said they
    may review it (never the person who used it); audited as break-glass."""
    grant, _channel = breakglass.require_reviewer(core, actor, grant_id)
    result = end_now(
        core, grant_id, actor=actor, now=now, trusted=True, reason=f"revoked by <@{actor}>"
    )
    with core.sessions.begin() as session:
        breakglass.record(
            session,
            grant,
            actor=actor,
            action="breakglass.revoked",
            integration=grant.integration,
            request_id=_end_request_of(session, grant_id),
        )
    return result


def _end_request_of(session: Session, grant_id: int) -> str | None:
    return session.scalar(select(Grant.end_request_id).where(Grant.id == grant_id))


def _end(
    core: Core,
    grant_id: int,
    *,
    actor: str,
    reason: str,
    now: datetime,
    instance: str,
    due_only: bool = True,
) -> Ended | None:
    """Claim the grant (None when another process has it or it is not due) and end it."""
    with core.sessions.begin() as session:
        where = [Grant.id == grant_id, Grant.state == ACTIVE]
        if due_only:
            where.append(Grant.ends_at <= now)
        claimed = session.execute(
            update(Grant)
            .where(*where)
            .values(state=ENDING, claimed_by=instance[:128] or actor, claimed_until=now + CLAIM)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        grant = session.get(Grant, grant_id)
        assert grant is not None
        integration = session.get(Integration, grant.integration_id)
        assert integration is not None
        payload = EndGrantPayload(
            grant_id=grant.id,
            integration_id=grant.integration_id,
            integration=integration.name,
            user_name=grant.user_name,
            group=grant.group_name,
            user_id=grant.user_id,
            reason=reason,
            breakglass=bool(grant.breakglass),
        )
        channel = integration.approvals_channel
    try:
        approvals.submit(core, payload, requester=actor)
    except RoleUpError as err:
        return _failed(core, grant_id, err.user_message, now, channel)
    return Ended(grant=_row(core, grant_id), ended=True, approvals_channel=channel)


def _failed(core: Core, grant_id: int, error: str, now: datetime, channel: str | None) -> Ended:
    with core.sessions.begin() as session:
        grant = session.get(Grant, grant_id)
        assert grant is not None
        if grant.state == ENDED:  # the request ended it (user or group gone) and then failed
            return Ended(grant=_row(core, grant_id), ended=True, approvals_channel=channel)
        failures = grant.failures + 1
        delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
        session.execute(
            update(Grant)
            .where(Grant.id == grant_id, Grant.state == ENDING)
            .values(
                state=ACTIVE,
                failures=failures,
                next_attempt_at=now + delay,
                claimed_by=None,
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
    return Ended(
        grant=_row(core, grant_id),
        ended=False,
        error=error,
        alert=failures == ALERT_AFTER,
        approvals_channel=channel,
        failures=failures,
    )


def _take_over_stale_claims(core: Core, now: datetime) -> None:
    """A claim left by a process that died is taken over; one whose removal is still running
    (AWS can make it last longer than the claim) is not, or a second end would start."""
    with core.sessions.begin() as session:
        running = [
            p["grant_id"]
            for p in approvals.live_payloads(session, END_GRANT, now)
            if isinstance(p.get("grant_id"), int)
        ]
        session.execute(
            update(Grant)
            .where(Grant.state == ENDING, Grant.claimed_until < now, Grant.id.not_in(running))
            .values(state=ACTIVE, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )


def _row(core: Core, grant_id: int) -> GrantRow:
    with core.sessions() as session:
        row = grants.grant_row(session, grant_id)
    assert row is not None  # grants are never deleted but with their integration
    return row
