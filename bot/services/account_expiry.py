"""Expiring accounts: an account onboarded *until a date*, its row, and how the date moves.

An onboarding (or an invite) may carry an *Account expires* date: from tomorrow to 365 days
ahead, counted in UTC. The account is offboarded at 00:00 UTC of that date, without a new
approval (the date was approved with the account) through a request of its own kind
(`expire_account`, bot.services.account_ending). The row is written once the IAM user exists,
pinned to its UserId, so an account deleted and re-created under the same name is never
offboarded by an older date.

An expiry ends once: the process that moves it from scheduled to ending (a guarded UPDATE) is
the only one that offboards it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import audit
from bot.services.errors import InvalidInput, RequestConflict, RoleUpError
from bot.services.records import from_row
from storage.models import Account, AccountExpiry, Integration, utcnow
from storage.updates import guarded_update

if TYPE_CHECKING:
    from bot.services.container import Core

SCHEDULED, ENDING, ENDED = "scheduled", "ending", "ended"
MAX_DAYS = 365
# Why an expiry ended, as people read them.
EXPIRED = "expired"
DELETED_OUTSIDE = "deleted outside RoleUp"
REPLACED_OUTSIDE = "replaced outside RoleUp"
OFFBOARDED = "offboarded through RoleUp"


def moment_of(day: date) -> datetime:
    """When an account expiring on `day` is offboarded: 00:00 UTC of that date."""
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def shown(moment: datetime) -> str:
    """`2026-12-31`: how every surface prints an account's expiry date."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def parse_date(raw: Any, now: datetime | None = None) -> datetime | None:
    """The expiry a form asked for (None when left empty), or InvalidInput saying what is
    wrong in one sentence: at least tomorrow, at most 365 days ahead (UTC dates)."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) != 10:
        raise InvalidInput("Pick the date from the calendar (YYYY-MM-DD).", field="account_expires")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            "Pick the date from the calendar (YYYY-MM-DD).", field="account_expires"
        ) from None
    return check(moment_of(day), now)


def check(expires_at: datetime, now: datetime | None = None) -> datetime:
    """`expires_at` if it is 00:00 UTC of a date from tomorrow to 365 days ahead."""
    today = (now or utcnow()).astimezone(UTC).date()
    day = expires_at.astimezone(UTC).date()
    if day <= today:
        raise InvalidInput(
            "The account must expire tomorrow (UTC) or later.", field="account_expires"
        )
    if day > today + timedelta(days=MAX_DAYS):
        raise InvalidInput(
            f"The account must expire within {MAX_DAYS} days.", field="account_expires"
        )
    return moment_of(day)


def load(value: Any) -> datetime | None:
    """A payload's stored expiry (an ISO date or moment), None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def dump(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


# --- writing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewExpiry:
    integration_id: int
    user_name: str
    requester: str
    request_id: str
    expires_at: datetime


def schedule(core: Core, new: NewExpiry, *, now: datetime | None = None) -> int:
    """Write the expiry of an account just created (pinned to its UserId and link)."""
    now = now or utcnow()
    with core.sessions.begin() as session:
        account = session.execute(
            select(Account.user_id, Account.slack_user_id).where(
                Account.integration_id == new.integration_id,
                Account.user_name == new.user_name,
            )
        ).one_or_none()
        row = AccountExpiry(
            integration_id=new.integration_id,
            user_name=new.user_name,
            user_id=account.user_id if account else None,
            slack_user_id=account.slack_user_id if account else None,
            requester=new.requester[:64],
            request_id=new.request_id,
            created_at=now,
            expires_at=new.expires_at,
            state=SCHEDULED,
        )
        session.add(row)
        session.flush()
        _record(session, row, actor=new.requester, action="account_expiry.scheduled")
        return row.id


def close(
    session: Session,
    expiry_id: int,
    reason: str,
    *,
    now: datetime | None = None,
    request_id: str | None = None,
    actor: str = "roleup",
) -> bool:
    """End the expiry (once) with `reason`, audited; False when it had already ended."""
    result = guarded_update(
        session,
        AccountExpiry,
        [AccountExpiry.id == expiry_id, AccountExpiry.state != ENDED],
        state=ENDED,
        **AccountExpiry.ended(now or utcnow(), reason, request_id),
    )
    if result != 1:
        return False
    row = session.get(AccountExpiry, expiry_id)
    assert row is not None
    _record(session, row, actor=actor, action="account_expiry.ended", reason=reason)
    return True


def close_for_account(
    session: Session, integration_id: int, user_name: str, reason: str, *, request_id: str | None
) -> int:
    """An account offboarded through RoleUp (any request) ends its expiry."""
    ids = session.scalars(
        select(AccountExpiry.id).where(
            AccountExpiry.integration_id == integration_id,
            AccountExpiry.user_name == user_name,
            AccountExpiry.state == SCHEDULED,
        )
    ).all()
    return sum(1 for i in ids if close(session, i, reason, request_id=request_id))


def extend(core: Core, expiry_id: int, expires_at: datetime, *, request_id: str) -> datetime:
    """Give a scheduled expiry its later date (reminders start again); RoleUpError if it has
    ended or is ending, or the new date is not later than the one it has."""
    with core.sessions.begin() as session:
        current = session.scalar(
            select(AccountExpiry.expires_at).where(
                AccountExpiry.id == expiry_id, AccountExpiry.state == SCHEDULED
            )
        )
        if current is None:
            raise RequestConflict("That account has been offboarded (or is being offboarded).")
        if expires_at <= current:
            raise InvalidInput(
                f"That is not later than the date the account has ({shown(current)}).",
                field="account_expires",
            )
        # Still scheduled for the date it was read with: an offboarding claimed meanwhile
        # wins, and this extension says so instead of claiming success.
        moved = guarded_update(
            session,
            AccountExpiry,
            [
                AccountExpiry.id == expiry_id,
                AccountExpiry.state == SCHEDULED,
                AccountExpiry.expires_at == current,
            ],
            expires_at=expires_at,
            reminded_7d_at=None,
            reminded_1d_at=None,
            failures=0,
            next_attempt_at=None,
        )
        if moved != 1:
            raise RequestConflict("The account changed while it was being extended: ask again.")
        row = session.get(AccountExpiry, expiry_id)
        assert row is not None
        _record(
            session,
            row,
            actor="roleup",
            action="account_expiry.extended",
            request_id=request_id,
            before=shown(current),
        )
    return expires_at


def _record(
    session: Session,
    row: AccountExpiry,
    *,
    actor: str,
    action: str,
    reason: str | None = None,
    request_id: str | None = None,
    before: str | None = None,
) -> None:
    name = session.scalar(select(Integration.name).where(Integration.id == row.integration_id))
    detail: dict[str, Any] = {"expiry": row.id, "expires": shown(row.expires_at)}
    if reason:
        detail["reason"] = reason
    if before:
        detail["was"] = before
    audit.record(
        session,
        actor=actor[:64],
        action=action,
        target=row.user_name,
        integration=name,
        request_id=request_id or row.end_request_id or row.request_id,
        detail=detail,
    )


# --- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpiryRow:
    id: int
    integration_id: int
    integration: str
    user_name: str
    user_id: str | None
    slack_user_id: str | None
    requester: str
    expires_at: datetime
    state: str
    end_reason: str | None


def row_of(row: AccountExpiry, integration: str) -> ExpiryRow:
    return from_row(ExpiryRow, row, integration=integration)


def expiry_row(session: Session, expiry_id: int) -> ExpiryRow | None:
    found = session.execute(
        select(AccountExpiry, Integration.name)
        .join(Integration, Integration.id == AccountExpiry.integration_id)
        .where(AccountExpiry.id == expiry_id)
    ).one_or_none()
    return row_of(*found) if found is not None else None


def extendable(core: Core, expiry_id: int | None) -> ExpiryRow:
    """The scheduled expiry an Extend button names (None: an unreadable button), or
    RoleUpError."""
    with core.sessions() as session:
        expiry = expiry_row(session, expiry_id) if expiry_id is not None else None
    if expiry is None or expiry.state != SCHEDULED:
        raise RoleUpError("That account has been offboarded (or is being offboarded).")
    return expiry


def list_expiries(
    session: Session,
    *,
    integration: str | None = None,
    within: timedelta | None = None,
    now: datetime | None = None,
) -> list[ExpiryRow]:
    """Accounts still to be offboarded by date, soonest first."""
    query = (
        select(AccountExpiry, Integration.name)
        .join(Integration, Integration.id == AccountExpiry.integration_id)
        .where(AccountExpiry.state != ENDED)
    )
    if integration is not None:
        query = query.where(Integration.name == integration)
    if within is not None:
        query = query.where(AccountExpiry.expires_at <= (now or utcnow()) + within)
    query = query.order_by(AccountExpiry.expires_at, AccountExpiry.id)
    return [row_of(e, name) for e, name in session.execute(query)]


def expiries_of(session: Session, integration_ids: list[int]) -> dict[tuple[int, str], datetime]:
    """(integration id, user name) -> when the account expires, for the accounts listing."""
    if not integration_ids:
        return {}
    query = select(
        AccountExpiry.integration_id, AccountExpiry.user_name, AccountExpiry.expires_at
    ).where(AccountExpiry.integration_id.in_(integration_ids), AccountExpiry.state != ENDED)
    return {(i, u): end for i, u, end in session.execute(query)}


# --- what a sync saw --------------------------------------------------------------------------
def reconcile_with_store(session: Session, integration_id: int, read_from: datetime) -> int:
    """After a sync that began reading IAM at `read_from`: a scheduled expiry whose account is
    gone ends quietly as "deleted outside RoleUp" (one whose account now has another UserId, as
    "replaced outside RoleUp"); recorded in the audit, nothing is posted. Expiries written
    since `read_from` are left for the next sync."""
    rows = session.scalars(
        select(AccountExpiry).where(
            AccountExpiry.integration_id == integration_id,
            AccountExpiry.state == SCHEDULED,
            AccountExpiry.created_at < read_from,
        )
    ).all()
    if not rows:
        return 0
    ids = dict(
        session.execute(
            select(Account.user_name, Account.user_id).where(
                Account.integration_id == integration_id,
                Account.user_name.in_([r.user_name for r in rows]),
            )
        ).all()
    )
    ended = 0
    for row in rows:
        if row.user_name not in ids:
            reason = DELETED_OUTSIDE
        elif row.user_id and ids[row.user_name] and ids[row.user_name] != row.user_id:
            reason = REPLACED_OUTSIDE
        else:
            continue
        ended += close(session, row.id, reason)
    return ended
