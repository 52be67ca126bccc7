"""Expiring accounts coming to their date: reminders 7 days and 1 day before, and the
offboarding at 00:00 UTC of the date (the scheduler's accounts job).

The offboarding is a request of its own kind (`expire_account`, no approver: the date was
approved with the account) posted with its checklist to the approvals channel. One process
offboards an account: the guarded UPDATE from scheduled to ending decides who. An offboarding
that fails puts the expiry back to scheduled with a growing delay; the next attempt resumes the
same request (the same message, the steps already done stay done); the third failure in a row
is reported to the approvals channel, and it keeps being retried. An account deleted (or
deleted and re-created) outside RoleUp before its date ends the expiry quietly, recorded in the
audit.

What people are told is left to the caller (bot.notices): this module returns what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.services import account_expiry, approvals, iam, lifecycle, time_bound
from bot.services.account_expiry import ENDED, ENDING, SCHEDULED, ExpiryRow
from bot.services.container import Core
from bot.services.errors import OutsidePrefix, RoleUpError, UserNotFound
from bot.services.policy import EXPIRE_ACCOUNT, OFFBOARD
from bot.services.request_kinds import ExpireAccountPayload
from bot.services.time_bound import CLAIM
from storage.models import AccountExpiry, Integration, Request, utcnow
from storage.updates import guarded_update

__all__ = ["CLAIM", "Expired", "Reminder", "expire_due", "lifecycle", "remind_due"]

# Reminders before the date: (name, how long before). Only those that fit: an account made to
# last three days gets the one-day reminder only.
SCHEDULE = time_bound.Schedule(
    model=AccountExpiry,
    waiting=SCHEDULED,
    ending=ENDING,
    ended=ENDED,
    begins=AccountExpiry.created_at,
    ends=AccountExpiry.expires_at,
    reminders=(
        ("1d", timedelta(days=1), AccountExpiry.reminded_1d_at),
        ("7d", timedelta(days=7), AccountExpiry.reminded_7d_at),
    ),
    kind=EXPIRE_ACCOUNT,
    key="expiry_id",
)


@dataclass(frozen=True)
class Reminder:
    expiry: ExpiryRow
    before: str  # "7d" or "1d"


@dataclass(frozen=True)
class Expired:
    """One expiry this call tried to end: `ended` (offboarded, or quietly when the account was
    already gone: `quiet`), or failed with `error`; `alert` when the approvals channel should
    hear of the failures."""

    expiry: ExpiryRow
    ended: bool
    quiet: bool = False
    error: str | None = None
    alert: bool = False
    approvals_channel: str | None = None
    failures: int = 0
    request_id: str | None = None


def remind_due(core: Core, *, now: datetime | None = None) -> list[Reminder]:
    """Expiries whose reminder time has come, each claimed once across every process (a
    guarded UPDATE of its reminded_* column). One late for both reminders gets the nearer."""
    due = time_bound.remind_due(core, SCHEDULE, now or utcnow())
    return [Reminder(_row(core, expiry_id), name) for expiry_id, name in due]


def expire_due(core: Core, *, now: datetime | None = None, instance: str = "") -> list[Expired]:
    """Offboard every scheduled account whose date has come (and whose retry delay passed)."""
    now = now or utcnow()
    results = []
    for expiry_id in time_bound.due_ids(core, SCHEDULE, now):
        result = _expire(core, expiry_id, now=now, instance=instance)
        if result is not None:
            results.append(result)
    return results


def _expire(core: Core, expiry_id: int, *, now: datetime, instance: str) -> Expired | None:
    """Claim the expiry (None when another process has it or it is not due) and offboard."""
    with core.sessions.begin() as session:
        claimant = instance or "roleup"
        if not time_bound.claim(session, SCHEDULE, expiry_id, claimant=claimant, now=now):
            return None
        row = session.get(AccountExpiry, expiry_id)
        assert row is not None
        integration = session.get(Integration, row.integration_id)
        assert integration is not None  # the expiry goes with its integration
        session.expunge(integration)
        earlier, user_name = row.end_request_id, row.user_name
    channel = integration.approvals_channel
    if earlier is None and _offboarding_running(core, integration.id, user_name, now):
        # /offboard is taking it apart now: it ends the expiry when done (else the next tick
        # finds the account still there and offboards it).
        _release(core, expiry_id)
        return None
    try:
        if earlier is not None:
            return _resume(core, expiry_id, earlier, now, channel)
        payload = _payload_if_there(core, integration, expiry_id, now)
        if payload is None:
            return Expired(_row(core, expiry_id), ended=True, quiet=True)
        request = approvals.submit(core, payload, requester="roleup", raise_errors=False)
    except RoleUpError as err:
        return _failed(core, expiry_id, err.user_message, now, channel)
    return _outcome(core, expiry_id, request, now, channel)


def _offboarding_running(core: Core, integration_id: int, user_name: str, now: datetime) -> bool:
    """Is an /offboard request running (or about to) that covers this account?"""
    with core.sessions() as session:
        payloads = approvals.live_payloads(session, OFFBOARD, now)
    return any(
        isinstance(account, dict)
        and account.get("integration_id") == integration_id
        and account.get("user_name") == user_name
        for payload in payloads
        for account in payload.get("accounts") or []
    )


def _payload_if_there(
    core: Core, integration: Integration, expiry_id: int, now: datetime
) -> ExpireAccountPayload | None:
    """The offboarding to run, planned from IAM now; None (the expiry ended quietly) when
    the account was deleted, or deleted and re-created, outside RoleUp."""
    with core.sessions() as session:
        row = session.get(AccountExpiry, expiry_id)
        assert row is not None
        user_name, pinned, expires = row.user_name, row.user_id, row.expires_at
    client = lifecycle.iam_client(core, integration, actor="roleup")
    try:
        user = iam.get_user(client, integration, user_name)
    except (UserNotFound, OutsidePrefix):
        _quietly(core, expiry_id, account_expiry.DELETED_OUTSIDE, now)
        return None
    if pinned is not None and iam.user_id_of(user) != pinned:
        _quietly(core, expiry_id, account_expiry.REPLACED_OUTSIDE, now)
        return None
    plan = lifecycle.plan_offboard(core, integration.id, user_name, actor="roleup")
    return ExpireAccountPayload(
        expiry_id=expiry_id,
        integration_id=integration.id,
        integration=integration.name,
        user_name=user_name,
        user_id=pinned or plan.user_id,
        expires=account_expiry.dump(expires) or "",
        plan=plan.to_dict(),
    )


def _quietly(core: Core, expiry_id: int, reason: str, now: datetime) -> None:
    with core.sessions.begin() as session:
        account_expiry.close(session, expiry_id, reason, now=now)


def _resume(
    core: Core, expiry_id: int, request_id: str, now: datetime, channel: str | None
) -> Expired | None:
    """Run the failed offboarding again (it resumes where it stopped)."""
    request = approvals.execute(core, request_id, actor="roleup", from_states=(approvals.FAILED,))
    if request.state == approvals.RUNNING:
        # Someone's Retry (or a recovery) is running it now: it ends the expiry when done.
        _release(core, expiry_id)
        return None
    return _outcome(core, expiry_id, request, now, channel)


def _outcome(
    core: Core, expiry_id: int, request: Request, now: datetime, channel: str | None
) -> Expired:
    if request.state == approvals.DONE:
        with core.sessions.begin() as session:
            # Ended by the request itself; a request whose expiry row was already ended
            # (a Retry raced it) leaves it so.
            account_expiry.close(session, expiry_id, account_expiry.EXPIRED, now=now)
        return Expired(
            _row(core, expiry_id), ended=True, approvals_channel=channel, request_id=request.id
        )
    _remember(core, expiry_id, request.id)
    return _failed(core, expiry_id, request.outcome or "it did not finish", now, channel)


def _remember(core: Core, expiry_id: int, request_id: str) -> None:
    with core.sessions.begin() as session:
        guarded_update(
            session,
            AccountExpiry,
            [AccountExpiry.id == expiry_id, AccountExpiry.end_request_id.is_(None)],
            end_request_id=request_id,
        )


def _failed(core: Core, expiry_id: int, error: str, now: datetime, channel: str | None) -> Expired:
    failure = time_bound.retry_later(core, SCHEDULE, expiry_id, now)
    if failure is None:  # the request ended it and then failed (e.g. a late Slack call)
        return Expired(_row(core, expiry_id), ended=True, approvals_channel=channel)
    return Expired(
        _row(core, expiry_id),
        ended=False,
        error=error,
        alert=failure.alert,
        approvals_channel=channel,
        failures=failure.failures,
        request_id=failure.end_request_id,
    )


def _release(core: Core, expiry_id: int) -> None:
    time_bound.release(core, SCHEDULE, expiry_id)


def _row(core: Core, expiry_id: int) -> ExpiryRow:
    with core.sessions() as session:
        row = account_expiry.expiry_row(session, expiry_id)
    assert row is not None  # expiries are never deleted but with their integration
    return row
