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

from sqlalchemy import or_, select, update

from bot.services import account_expiry, approvals, iam, lifecycle
from bot.services.account_expiry import ENDED, ENDING, SCHEDULED, ExpiryRow
from bot.services.container import Core
from bot.services.errors import OutsidePrefix, RoleUpError, UserNotFound
from bot.services.expiry import ALERT_AFTER, BATCH, CLAIM, RETRY_DELAYS
from bot.services.policy import EXPIRE_ACCOUNT, OFFBOARD
from bot.services.request_kinds import ExpireAccountPayload
from storage.models import AccountExpiry, Integration, Request, utcnow

# Reminders before the date: (name, how long before). Only those that fit: an account made to
# last three days gets the one-day reminder only.
REMINDERS = (("1d", timedelta(days=1)), ("7d", timedelta(days=7)))


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
    now = now or utcnow()
    columns = {"1d": AccountExpiry.reminded_1d_at, "7d": AccountExpiry.reminded_7d_at}
    due: list[Reminder] = []
    for name, before in REMINDERS:
        column = columns[name]
        with core.sessions() as session:
            candidates = session.execute(
                select(AccountExpiry.id, AccountExpiry.created_at, AccountExpiry.expires_at).where(
                    AccountExpiry.state == SCHEDULED,
                    AccountExpiry.expires_at > now,
                    AccountExpiry.expires_at <= now + before,
                    column.is_(None),
                )
            ).all()
        for expiry_id, created_at, expires_at in candidates:
            if expires_at - created_at <= before:
                continue  # it never lasted that long: this reminder does not fit
            # The nearer reminder supersedes the farther one, which is not sent late.
            stale = {c: now for n, c in columns.items() if n != name and name == "1d"}
            with core.sessions.begin() as session:
                won = session.execute(
                    update(AccountExpiry)
                    .where(
                        AccountExpiry.id == expiry_id,
                        AccountExpiry.state == SCHEDULED,
                        column.is_(None),
                    )
                    .values({column: now, **stale})
                    .execution_options(synchronize_session=False)
                )
            if won.rowcount == 1:  # type: ignore[attr-defined]
                due.append(Reminder(_row(core, expiry_id), name))
    return due


def expire_due(core: Core, *, now: datetime | None = None, instance: str = "") -> list[Expired]:
    """Offboard every scheduled account whose date has come (and whose retry delay passed)."""
    now = now or utcnow()
    _take_over_stale_claims(core, now)
    with core.sessions() as session:
        due = session.scalars(
            select(AccountExpiry.id)
            .where(
                AccountExpiry.state == SCHEDULED,
                AccountExpiry.expires_at <= now,
                or_(AccountExpiry.next_attempt_at.is_(None), AccountExpiry.next_attempt_at <= now),
            )
            .order_by(AccountExpiry.expires_at, AccountExpiry.id)
            .limit(BATCH)
        ).all()
    results = []
    for expiry_id in due:
        result = _expire(core, expiry_id, now=now, instance=instance)
        if result is not None:
            results.append(result)
    return results


def _expire(core: Core, expiry_id: int, *, now: datetime, instance: str) -> Expired | None:
    """Claim the expiry (None when another process has it or it is not due) and offboard."""
    with core.sessions.begin() as session:
        claimed = session.execute(
            update(AccountExpiry)
            .where(
                AccountExpiry.id == expiry_id,
                AccountExpiry.state == SCHEDULED,
                AccountExpiry.expires_at <= now,
            )
            .values(state=ENDING, claimed_by=instance[:128] or "roleup", claimed_until=now + CLAIM)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
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
        session.execute(
            update(AccountExpiry)
            .where(AccountExpiry.id == expiry_id, AccountExpiry.end_request_id.is_(None))
            .values(end_request_id=request_id)
            .execution_options(synchronize_session=False)
        )


def _failed(core: Core, expiry_id: int, error: str, now: datetime, channel: str | None) -> Expired:
    with core.sessions.begin() as session:
        row = session.get(AccountExpiry, expiry_id)
        assert row is not None
        if row.state == ENDED:  # the request ended it and then failed (e.g. a late Slack call)
            return Expired(_row(core, expiry_id), ended=True, approvals_channel=channel)
        failures = row.failures + 1
        delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
        session.execute(
            update(AccountExpiry)
            .where(AccountExpiry.id == expiry_id, AccountExpiry.state == ENDING)
            .values(
                state=SCHEDULED,
                failures=failures,
                next_attempt_at=now + delay,
                claimed_by=None,
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
    return Expired(
        _row(core, expiry_id),
        ended=False,
        error=error,
        alert=failures == ALERT_AFTER,
        approvals_channel=channel,
        failures=failures,
        request_id=row.end_request_id,
    )


def _release(core: Core, expiry_id: int) -> None:
    with core.sessions.begin() as session:
        session.execute(
            update(AccountExpiry)
            .where(AccountExpiry.id == expiry_id, AccountExpiry.state == ENDING)
            .values(state=SCHEDULED, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )


def _take_over_stale_claims(core: Core, now: datetime) -> None:
    """A claim left by a process that died is taken over; one whose offboarding is still
    running (AWS can make it last longer than the claim) is not, or a second offboarding of
    the same account would start beside it."""
    with core.sessions.begin() as session:
        running = [
            p["expiry_id"]
            for p in approvals.live_payloads(session, EXPIRE_ACCOUNT, now)
            if isinstance(p.get("expiry_id"), int)
        ]
        session.execute(
            update(AccountExpiry)
            .where(
                AccountExpiry.state == ENDING,
                AccountExpiry.claimed_until < now,
                AccountExpiry.id.not_in(running),
            )
            .values(state=SCHEDULED, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )


def _row(core: Core, expiry_id: int) -> ExpiryRow:
    with core.sessions() as session:
        row = account_expiry.expiry_row(session, expiry_id)
    assert row is not None  # expiries are never deleted but with their integration
    return row
