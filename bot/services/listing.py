"""Read-only views of the synced store for the Slack surfaces: fast, no AWS calls.

/accounts pages through accounts with their groups and linked Slack user; /roleup integrations
lists integrations with their health and last sync.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.services import account_expiry, grants
from storage.models import Account, AccountExpiry, Grant, Group, Integration, Membership

PAGE_SIZE = 20


@dataclass(frozen=True)
class AccountRow:
    integration: str
    user_name: str
    groups: list[str]
    slack_user_id: str | None
    password_last_used: datetime | None
    created_at: datetime | None
    # Groups given for a while (bot.services.grants), with when each ends.
    group_ends: dict[str, datetime] = field(default_factory=dict)
    # When the account itself is offboarded by date (bot.services.account_expiry), if it is.
    expires_at: datetime | None = None


@dataclass(frozen=True)
class AccountsPage:
    rows: list[AccountRow]
    page: int
    pages: int
    total: int
    last_sync: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def has_previous(self) -> bool:
        return self.page > 0

    @property
    def has_next(self) -> bool:
        return self.page + 1 < self.pages


def accounts_page(
    session: Session,
    integrations: Sequence[Integration],
    *,
    text_filter: str | None = None,
    page: int = 0,
    page_size: int = PAGE_SIZE,
) -> AccountsPage:
    """One page of the accounts of `integrations`, optionally filtered by username or group.

    Three queries, whatever the page: the count, the page's accounts, then their groups with
    each group's grant end and each account's expiry. /accounts is the command people type
    most, and on a small machine what it costs is what every ack next to it pays (bench/ack.py):
    the statements are built once (_statements) and only their parameters change.
    """
    ids = [i.id for i in integrations]
    names = {i.id: i.name for i in integrations}
    count, rows_of = _statements(len(ids) > 1, bool(text_filter))
    params: dict[str, Any] = {"ids": ids} if len(ids) > 1 else {"id": ids[0] if ids else 0}
    if text_filter:
        params["pattern"] = f"%{_like_escaped(text_filter.lower())}%"
    total = int(session.scalar(count, params) or 0)
    pages = max((total + page_size - 1) // page_size, 1)
    page = min(max(page, 0), pages - 1)
    found = list(session.execute(rows_of, {**params, "skip": page * page_size, "size": page_size}))
    extras = _extras_of(session, [a.id for a in found])
    none = _Extras([], None)
    rows = [
        AccountRow(
            integration=names[a.integration_id],
            user_name=a.user_name,
            groups=[name for name, _ in extras.get(a.id, none).groups],
            slack_user_id=a.slack_user_id,
            password_last_used=a.password_last_used,
            created_at=a.created_at,
            group_ends={name: end for name, end in extras.get(a.id, none).groups if end},
            expires_at=extras.get(a.id, none).expires_at,
        )
        for a in found
    ]
    last_sync = {i.name: i.last_sync_at for i in integrations}
    return AccountsPage(rows=rows, page=page, pages=pages, total=total, last_sync=last_sync)


LIKE_ESCAPE = "/"


def _like_escaped(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (as contains(autoescape=True) does)."""
    for special in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, LIKE_ESCAPE + special)
    return text


@functools.cache
def _statements(several: bool, filtered: bool) -> tuple[Any, Any]:
    """The count and the page of accounts, built once per shape (a statement is immutable, and
    SQLAlchemy keeps its cache key on it, so executing it again skips both)."""
    ids: Any = bindparam("ids", expanding=True)
    # One integration (the usual case): equality, so the (integration_id, user_name) index both
    # finds and orders the page; an IN list of one would not be walked in order.
    single: Any = bindparam("id")
    conditions: list[ColumnElement[bool]] = [
        Account.integration_id.in_(ids) if several else Account.integration_id == single
    ]
    if filtered:
        pattern: Any = bindparam("pattern")
        in_group = exists().where(
            Membership.account_id == Account.id,
            Membership.group_id == Group.id,
            func.lower(Group.name).like(pattern, escape=LIKE_ESCAPE),
        )
        conditions.append(
            or_(func.lower(Account.user_name).like(pattern, escape=LIKE_ESCAPE), in_group)
        )
    count = select(func.count(Account.id)).where(*conditions)
    rows = select(
        Account.id,
        Account.integration_id,
        Account.user_name,
        Account.slack_user_id,
        Account.password_last_used,
        Account.created_at,
    ).where(*conditions)
    if several:
        rows = rows.join(Integration, Integration.id == Account.integration_id).order_by(
            Integration.name, Account.user_name
        )
    else:
        rows = rows.order_by(Account.user_name)
    rows = rows.offset(bindparam("skip")).limit(bindparam("size"))
    return count, rows


@dataclass(frozen=True)
class _Extras:
    groups: list[tuple[str, datetime | None]]
    expires_at: datetime | None


def _extras_of(session: Session, account_ids: Sequence[int]) -> dict[int, _Extras]:
    """Each account's groups by name, with when a time-bound grant of the group ends, and when
    the account itself expires: one query for the page's accounts only."""
    if not account_ids:
        return {}
    groups: dict[int, list[tuple[str, datetime | None]]] = defaultdict(list)
    expiries: dict[int, datetime | None] = {}
    query = _extras_statement()
    for account_id, name, end, expires in session.execute(query, {"ids": list(account_ids)}):
        expiries[account_id] = expires
        if name is not None:
            groups[account_id].append((name, end))
    return {i: _Extras(groups.get(i, []), expiries[i]) for i in expiries}


@functools.cache
def _extras_statement() -> Any:
    grant_end = (
        select(func.max(Grant.ends_at))
        .where(
            Grant.integration_id == Account.integration_id,
            Grant.user_name == Account.user_name,
            Grant.group_name == Group.name,
            Grant.state.in_((grants.ACTIVE, grants.ENDING)),
        )
        .scalar_subquery()
    )
    expires_at = (
        select(func.min(AccountExpiry.expires_at))
        .where(
            AccountExpiry.integration_id == Account.integration_id,
            AccountExpiry.user_name == Account.user_name,
            AccountExpiry.state != account_expiry.ENDED,
        )
        .scalar_subquery()
    )
    return (
        select(Account.id, Group.name, grant_end, expires_at)
        .outerjoin(Membership, Membership.account_id == Account.id)
        .outerjoin(Group, Group.id == Membership.group_id)
        .where(Account.id.in_(bindparam("ids", expanding=True)))
        .order_by(Group.name)
    )


def all_integrations(session: Session) -> list[Integration]:
    return list(session.scalars(_all_integrations()))


@functools.cache
def _all_integrations() -> Any:
    return select(Integration).order_by(Integration.name)


def integration_named(session: Session, name: str) -> Integration | None:
    return session.scalar(select(Integration).where(Integration.name == name))


def integrations_with_user(
    session: Session, user_name: str, among: Sequence[Integration]
) -> list[Integration]:
    """The integrations (of `among`) whose synced store has an IAM user of that name."""
    ids = [i.id for i in among]
    found = set(
        session.scalars(
            select(Account.integration_id).where(
                Account.user_name == user_name, Account.integration_id.in_(ids)
            )
        )
    )
    return [i for i in among if i.id in found]


def account_counts(session: Session) -> dict[int, int]:
    query = select(Account.integration_id, func.count(Account.id)).group_by(Account.integration_id)
    return {integration_id: int(count) for integration_id, count in session.execute(query)}
