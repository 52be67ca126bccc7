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

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import approvals, breakglass, grants, requesting, time_bound
from bot.services.container import Core
from bot.services.errors import NotFound, RequestConflict, RoleUpError
from bot.services.grants import ACTIVE, ENDED, ENDING, GrantRow
from bot.services.policy import END_GRANT, Action
from bot.services.request_kinds import EndGrantPayload
from bot.services.time_bound import CLAIM
from storage.models import Grant, Integration, utcnow

__all__ = ["CLAIM", "Ended", "Reminder", "end_now", "expire_due", "remind_due", "revoke"]


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
SCHEDULE = time_bound.Schedule(
    model=Grant,
    waiting=ACTIVE,
    ending=ENDING,
    ended=ENDED,
    begins=Grant.starts_at,
    ends=Grant.ends_at,
    reminders=(
        ("1h", timedelta(hours=1), Grant.reminded_1h_at),
        ("24h", timedelta(hours=24), Grant.reminded_24h_at),
    ),
    kind=END_GRANT,
    key="grant_id",
)


@dataclass(frozen=True)
class Reminder:
    grant: GrantRow
    before: str  # "1h" or "24h"


def remind_due(core: Core, *, now: datetime | None = None) -> list[Reminder]:
    """Grants whose reminder time has come, each claimed once across every process (a guarded
    UPDATE of its reminded_* column). A grant late for both reminders gets the nearer one."""
    due = time_bound.remind_due(core, SCHEDULE, now or utcnow())
    return [Reminder(_row(core, grant_id), name) for grant_id, name in due]


def expire_due(core: Core, *, now: datetime | None = None, instance: str = "") -> list[Ended]:
    """End every active grant whose end has come (and whose retry delay has passed)."""
    now = now or utcnow()
    results = []
    for grant_id in time_bound.due_ids(core, SCHEDULE, now):
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
        claimant = instance or actor
        if not time_bound.claim(
            session, SCHEDULE, grant_id, claimant=claimant, now=now, due_only=due_only
        ):
            return None
        grant = session.get(Grant, grant_id)
        assert grant is not None
        integration = session.get(Integration, grant.integration_id)
        assert integration is not None
        payload = EndGrantPayload(
            **grants.payload_fields(grant, integration),
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
    failure = time_bound.retry_later(core, SCHEDULE, grant_id, now)
    if failure is None:  # the request ended it (user or group gone) and then failed
        return Ended(grant=_row(core, grant_id), ended=True, approvals_channel=channel)
    return Ended(
        grant=_row(core, grant_id),
        ended=False,
        error=error,
        alert=failure.alert,
        approvals_channel=channel,
        failures=failure.failures,
    )


def _row(core: Core, grant_id: int) -> GrantRow:
    with core.sessions() as session:
        row = grants.grant_row(session, grant_id)
    assert row is not None  # grants are never deleted but with their integration
    return row
