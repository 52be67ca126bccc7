"""Read-only views of the synced store for the Slack surfaces: fast, no AWS calls.

/accounts pages through accounts with their groups and linked Slack user; /roleup integrations
lists integrations with their health and last sync.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.services import account_expiry, grants
from storage.models import Account, Group, Integration, Membership

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
    """One page of the accounts of `integrations`, optionally filtered by username or group."""
    ids = [i.id for i in integrations]
    names = {i.id: i.name for i in integrations}
    conditions: list[ColumnElement[bool]] = [Account.integration_id.in_(ids)]
    if text_filter:
        needle = text_filter.lower()
        in_group = exists().where(
            Membership.account_id == Account.id,
            Membership.group_id == Group.id,
            func.lower(Group.name).contains(needle, autoescape=True),
        )
        conditions.append(
            or_(func.lower(Account.user_name).contains(needle, autoescape=True), in_group)
        )
    total = int(session.scalar(select(func.count(Account.id)).where(*conditions)) or 0)
    pages = max((total + page_size - 1) // page_size, 1)
    page = min(max(page, 0), pages - 1)
    accounts = list(
        session.scalars(
            select(Account)
            .join(Integration, Integration.id == Account.integration_id)
            .where(*conditions)
            .order_by(Integration.name, Account.user_name)
            .offset(page * page_size)
            .limit(page_size)
        )
    )
    groups = groups_of(session, [a.id for a in accounts])
    ends = grants.ends_of(session, sorted({a.integration_id for a in accounts}))
    expiries = account_expiry.expiries_of(session, sorted({a.integration_id for a in accounts}))
    rows = [
        AccountRow(
            integration=names[a.integration_id],
            user_name=a.user_name,
            groups=groups.get(a.id, []),
            slack_user_id=a.slack_user_id,
            password_last_used=a.password_last_used,
            created_at=a.created_at,
            group_ends={
                g: ends[(a.integration_id, a.user_name, g)]
                for g in groups.get(a.id, [])
                if (a.integration_id, a.user_name, g) in ends
            },
            expires_at=expiries.get((a.integration_id, a.user_name)),
        )
        for a in accounts
    ]
    last_sync = {i.name: i.last_sync_at for i in integrations}
    return AccountsPage(rows=rows, page=page, pages=pages, total=total, last_sync=last_sync)


def groups_of(session: Session, account_ids: Sequence[int]) -> dict[int, list[str]]:
    if not account_ids:
        return {}
    found: dict[int, list[str]] = defaultdict(list)
    query = (
        select(Membership.account_id, Group.name)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.account_id.in_(account_ids))
        .order_by(Group.name)
    )
    for account_id, name in session.execute(query):
        found[account_id].append(name)
    return dict(found)


def all_integrations(session: Session) -> list[Integration]:
    return list(session.scalars(select(Integration).order_by(Integration.name)))


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
