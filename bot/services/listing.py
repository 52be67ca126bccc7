"""Read-only views of the synced store for the Slack surfaces: fast, no AWS calls.

/accounts pages through accounts with their groups and linked Slack user; /roleup integrations
lists integrations with their health and last sync.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import (
    JSON,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from bot.services import account_expiry, grants
from bot.services.policy import Action, can
from bot.services.records import IntegrationInfo
from storage.db import CompiledByIdentity, read_again_if_ended
from storage.models import (
    Account,
    AccountExpiry,
    Grant,
    Group,
    Integration,
    Membership,
    utcnow,
)

if TYPE_CHECKING:
    from bot.services.container import Core

PAGE_SIZE = 20
# The listing's statements are built once (functools.cache), so each finds its compiled form
# by identity rather than by hashing its cache key at every command (storage.db).
_ONCE = {"compiled_cache": CompiledByIdentity()}


@dataclass(frozen=True)
class AccountRow:
    integration: str
    user_name: str
    groups: list[str]
    slack_user_id: str | None
    password_last_used: datetime | None
    # Groups given for a while (bot.services.grants), with when each ends.
    group_ends: dict[str, datetime] = field(default_factory=dict)
    # When the account itself is offboarded by date (bot.services.account_expiry), if it is.
    expires_at: datetime | None = None


@dataclass(frozen=True, eq=False)
class AccountsPage:
    page: int
    pages: int
    total: int
    last_sync: dict[str, datetime | None]
    # Everything the page was made from, as the store handed it over (its rows, the
    # integrations' names and last syncs, the position): pages with equal sources are equal,
    # so a message made from one is the message for the other (handlers.accounts.messages).
    source: Hashable
    # The rows, made from what the store handed over when first asked for: a message kept
    # for an equal page never asks.
    read_rows: Callable[[], list[AccountRow]] = field(repr=False)

    @functools.cached_property
    def rows(self) -> list[AccountRow]:
        return self.read_rows()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountsPage):
            return NotImplemented
        mine = (self.rows, self.page, self.pages, self.total, self.last_sync)
        return mine == (other.rows, other.page, other.pages, other.total, other.last_sync)

    __hash__ = None  # type: ignore[assignment]  # mutable rows: as a dataclass's would be

    @property
    def has_previous(self) -> bool:
        return self.page > 0

    @property
    def has_next(self) -> bool:
        return self.page + 1 < self.pages


def accounts_page(
    session: Session | Connection,
    integrations: Sequence[Integration | IntegrationInfo],
    *,
    text_filter: str | None = None,
    page: int = 0,
    page_size: int = PAGE_SIZE,
    found: _Found | None = None,
) -> AccountsPage:
    """One page of the accounts of `integrations`, optionally filtered by username or group.

    Three queries, whatever the page: the count, the page's accounts, then their groups with
    each group's grant end and each account's expiry. /accounts is the command people type
    most, and on a small machine what it costs is what every ack next to it pays (bench/ack.py):
    the statements are built once (_statements) and only their parameters change. `found`:
    that page (at `page`, of PAGE_SIZE) as the caller has just read it (accounts_listing).
    """
    ids = [i.id for i in integrations]
    names = {i.id: i.name for i in integrations}
    several = len(ids) > 1
    count, page_of = _statements(several, bool(text_filter), page_size)
    params = _page_params(ids, text_filter)
    page = max(page, 0)
    # Core, not the ORM: plain rows of columns, without the ORM's per-statement setup.
    connection = _connection(session)
    read: Callable[[dict[str, Any]], _Found]
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        in_one = _in_one_row(several, bool(text_filter), dialect, page_size)
        read = partial(_page_in_one_row, connection, in_one, ordered=dialect == "postgresql")
    else:
        read = partial(_page_in_rows, connection, page_of)
    if found is None:
        found = read({**params, "skip": page * page_size})
    # Nothing found: an empty listing, or a page past its end (it shrank since the button).
    total = found.total if found else _count(connection, count, params, page)
    pages = max((total + page_size - 1) // page_size, 1)
    if not found and page > pages - 1:
        page = pages - 1
        found = read({**params, "skip": page * page_size})
    last_sync = {i.name: i.last_sync_at for i in integrations}
    return AccountsPage(
        page=page,
        pages=pages,
        total=total,
        last_sync=last_sync,
        source=(found.source, tuple(names.items()), tuple(last_sync.items()), page, pages, total),
        read_rows=partial(_rows, found, names),
    )


def _page_params(ids: Sequence[int], text_filter: str | None) -> dict[str, Any]:
    """The parameters of the page's statements (_statements) but its window."""
    params: dict[str, Any] = {"ids": list(ids)} if len(ids) > 1 else {"id": ids[0] if ids else 0}
    if text_filter:
        params["pattern"] = f"%{_like_escaped(text_filter.lower())}%"
    return params


# The page's columns, by position (_statements): the total is the last.
TOTAL = 8
# Of those, the datetimes: SQLite keeps them as text ("2026-03-04 05:06:00.000000"), in UTC.
_WHEN = (4, 6, 7)


class _Found(Protocol):
    """A page as the store handed it over: its rows (read when asked for), the listing's total
    (on a page that has rows), and a hashable value equal for equal pages."""

    @property
    def source(self) -> Hashable: ...

    def __bool__(self) -> bool: ...

    @property
    def total(self) -> int: ...

    @property
    def rows(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class _InRows:
    """The page read row by row: on a store other than SQLite and PostgreSQL (the tests read
    it so too, to compare the one-value read with it)."""

    source: tuple[Any, ...]

    def __bool__(self) -> bool:
        return bool(self.source)

    @property
    def total(self) -> int:
        return int(self.source[0][TOTAL])

    @property
    def rows(self) -> Sequence[Any]:
        return self.source


def _page_in_rows(connection: Connection, page_of: Any, params: dict[str, Any]) -> _InRows:
    # Plain tuples: a Row compares to another in Python, a tuple in C (a page read again is
    # compared with the one kept, handlers.accounts.messages).
    return _InRows(tuple(map(tuple, connection.execute(page_of, params, execution_options=_ONCE))))


@dataclass(frozen=True)
class _InOneRow:
    """The page's rows as the store hands them over in one: a JSON array of them, built by the
    store itself, and kept as its text (AccountsPage.source) until a message is made from it.

    Python's sqlite3 lets go of the GIL at every row it steps, and with the other threads of a
    busy worker waiting for it each of those is a hand-over and back: with eight threads
    reading it at once, a page of 40 rows cost 0.70 ms of CPU read row by row and 0.36 ms
    as one row. psycopg makes each row in Python, with the column descriptions of the
    statement's ten columns. bench/ack.py measures /accounts under concurrency. SQLite's rows
    are put back in the page's order when read (an aggregate's order is its choice);
    PostgreSQL's aggregate keeps the page's order itself (`ordered`), in its collation. Their
    datetimes are made what the columns' type makes them (storage.models.UTCDateTime)."""

    source: str
    total: int
    ordered: bool

    def __bool__(self) -> bool:
        return self.total > 0

    @functools.cached_property
    def rows(self) -> Sequence[Any]:
        rows: list[list[Any]] = json.loads(self.source)
        if not self.ordered:
            rows.sort(key=_page_order)
        for row in rows:
            for at in _WHEN:
                if row[at] is not None:
                    row[at] = _utc(row[at])
        return rows


def _utc(text: str) -> datetime:
    """A datetime as the store writes it in JSON: naive UTC (SQLite's "2026-03-04
    05:06:00.000000") or with its offset (PostgreSQL's, in the session's time zone)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _page_in_one_row(
    connection: Connection, page_of: Any, params: dict[str, Any], *, ordered: bool
) -> _InOneRow:
    packed, total = connection.execute(page_of, params, execution_options=_ONCE).one()
    return _InOneRow(packed or "[]", total or 0, ordered)


def _page_order(row: list[Any]) -> tuple[str, str, str]:
    """The page's ORDER BY (_statements): integration name (when several), user name, group.
    SQLite compares text byte by byte in UTF-8, which orders as Python's str does."""
    several = len(row) > TOTAL + 1
    return (row[TOTAL + 1] if several else "", row[2], row[5] or "")


@functools.cache
def _in_one_row(several: bool, filtered: bool, dialect: str, size: int = PAGE_SIZE) -> Any:
    """The page (_statements) as one value, a JSON array of its rows, each an array of its
    columns; and the listing's total beside it (0 when the page has no row), so it is known
    without decoding the page. On PostgreSQL the array is in the page's order, as text (so
    psycopg leaves it undecoded)."""
    _, rows = _statements(several, filtered, size)
    page = rows.subquery("rows")
    total = func.max(list(page.c)[TOTAL])
    if dialect == "sqlite":
        return select(func.json_group_array(func.json_array(*page.c)), total).select_from(page)
    order = [page.c.integration_name] if several else []
    order += [page.c.user_name, page.c.group_name]
    in_order = aggregate_order_by(func.json_build_array(*page.c), *order)
    return select(cast(func.json_agg(in_order), Text), total).select_from(page)


def _count(connection: Connection, count: Any, params: dict[str, Any], page: int) -> int:
    return int(connection.scalar(count, params, execution_options=_ONCE) or 0) if page else 0


def _connection(reader: Session | Connection) -> Connection:
    return reader.connection() if isinstance(reader, Session) else reader


def _rows(found: _Found, names: dict[int, str]) -> list[AccountRow]:
    """One AccountRow per account from the page's rows (one row per account and group), read
    by position (a Row's attributes by name cost a lookup each, 40 rows a page)."""
    rows: dict[int, AccountRow] = {}
    for (
        account_id,
        integration_id,
        user_name,
        slack_user,
        last_used,
        group,
        end,
        expires,
        *_,  # the total, and the integration's name when several are listed
    ) in found.rows:
        account = rows.get(account_id)
        if account is None:
            account = rows[account_id] = AccountRow(
                integration=names[integration_id],
                user_name=user_name,
                groups=[],
                slack_user_id=slack_user,
                password_last_used=last_used,
                expires_at=expires,
            )
        if group is not None:
            account.groups.append(group)
            if end is not None:
                account.group_ends[group] = end
    return list(rows.values())


LIKE_ESCAPE = "/"
_WORD = re.compile(r"[a-z_]+")


def _constant(word: str) -> ColumnElement[str]:
    """One of RoleUp's own state names, written in a statement as a string literal."""
    if not _WORD.fullmatch(word):
        raise ValueError(f"not a state name: {word!r}")
    return literal_column(f"'{word}'", String)


def _like_escaped(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (as contains(autoescape=True) does)."""
    for special in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, LIKE_ESCAPE + special)
    return text


@functools.cache
def _statements(several: bool, filtered: bool, size: int = PAGE_SIZE) -> tuple[Any, Any]:
    """The count, and the page of `size` accounts: one row per account of the page and group,
    with the grant end of that group, the account's expiry and the total (only what the listing
    shows: every column costs its conversion on each of the page's rows); built once per shape
    (a statement is immutable, and SQLAlchemy keeps its cache key on it, so executing it again
    skips both).

    The page's size and the states it reads are written in the statement, not bound: only
    what differs between listings is a parameter (the integrations, the filter, the offset).
    PostgreSQL plans a statement psycopg prepared again at every execution while a plan made
    for its parameters' values looks cheaper than one made for any value; with the size and the
    states bound, that was every /accounts on a store with statistics (ANALYZE, as autovacuum
    keeps it): 2.2 ms of the server's CPU a listing, against 0.85 ms with them written in."""
    ids: Any = bindparam("ids", expanding=True)
    # One integration (the usual case): equality, so the (integration_id, user_name) index both
    # finds and orders the page; an IN list of one would not be walked in order.
    single: Any = bindparam("id")
    conditions: list[ColumnElement[bool]] = [
        Account.integration_id.in_(ids) if several else Account.integration_id == single
    ]
    if filtered:
        pattern: Any = bindparam("pattern")
        member, group = aliased(Membership), aliased(Group)  # apart from the page's own join
        in_group = exists().where(
            member.account_id == Account.id,
            member.group_id == group.id,
            func.lower(group.name).like(pattern, escape=LIKE_ESCAPE),
        )
        conditions.append(
            or_(func.lower(Account.user_name).like(pattern, escape=LIKE_ESCAPE), in_group)
        )
    # count(*), not count(id): the same number (an id is never null), without reading each
    # id to check it (a third less of the count on SQLite, whose rows it walks per listing).
    count = select(func.count()).select_from(Account).where(*conditions)
    accounts = select(
        Account.id,
        Account.integration_id,
        Account.user_name,
        Account.slack_user_id,
        Account.password_last_used,
    ).where(*conditions)
    if several:
        accounts = accounts.join(Integration, Integration.id == Account.integration_id)
        accounts = accounts.add_columns(Integration.name.label("integration_name"))
        accounts = accounts.order_by(Integration.name, Account.user_name)
    else:
        accounts = accounts.order_by(Account.user_name)
    paged = accounts.offset(bindparam("skip")).limit(literal_column(str(int(size)), Integer))
    page = paged.subquery("page")
    grant_end = (
        select(func.max(Grant.ends_at))
        .where(
            Grant.integration_id == page.c.integration_id,
            Grant.user_name == page.c.user_name,
            Grant.group_name == Group.name,
            Grant.state.in_([_constant(grants.ACTIVE), _constant(grants.ENDING)]),
        )
        .scalar_subquery()
    )
    expires_at = (
        select(func.min(AccountExpiry.expires_at))
        .where(
            AccountExpiry.integration_id == page.c.integration_id,
            AccountExpiry.user_name == page.c.user_name,
            AccountExpiry.state != _constant(account_expiry.ENDED),
        )
        .scalar_subquery()
    )
    order = [page.c.integration_name, page.c.user_name] if several else [page.c.user_name]
    rows = (
        select(
            page.c.id,
            page.c.integration_id,
            page.c.user_name,
            page.c.slack_user_id,
            page.c.password_last_used,
            Group.name.label("group_name"),
            grant_end.label("grant_end"),
            expires_at.label("expires_at"),
            count.scalar_subquery().label("total"),
            *([page.c.integration_name] if several else []),  # the order's, when several
        )
        .select_from(page)
        .outerjoin(Membership, Membership.account_id == page.c.id)
        .outerjoin(Group, Group.id == Membership.group_id)
        .order_by(*order, Group.name)
    )
    return count, rows


Among = TypeVar("Among", Integration, IntegrationInfo)


def all_integrations(session: Session) -> list[Integration]:
    return list(session.scalars(_all_integrations()))


@functools.cache
def _all_integrations() -> Any:
    return select(Integration).order_by(Integration.name)


def integration_named(session: Session, name: str) -> Integration | None:
    return session.scalar(select(Integration).where(Integration.name == name))


def integrations_with_user(session: Session, user_name: str, among: Sequence[Among]) -> list[Among]:
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


# --- for the Slack surfaces: each read in its own session ---------------------------------------
# Handlers never open a session (tests/unit/test_handlers_no_sql.py): they ask these, and get
# plain records back (bot.services.records), built while the session is open.
def integrations(core: Core) -> list[IntegrationInfo]:
    """Every integration, by name."""
    with core.sessions() as session:
        return integration_records(session)


def integration_records(session: Session | Connection) -> list[IntegrationInfo]:
    """Every integration, by name, read as the columns of its record (no ORM objects to load
    and copy: listings read this on every command).

    On SQLite and PostgreSQL they come back as one JSON value the store builds, decoded here
    by the record's field types: 29 columns typed one by one per row (five of them JSON, the
    datetimes parsed, psycopg's descriptions of each) were a third of a listing's reads under
    load (bench/ack.py)."""
    connection = _connection(session)
    dialect = connection.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        columns = _integration_record_columns()
        return [
            IntegrationInfo(*row) for row in connection.execute(columns, execution_options=_ONCE)
        ]
    packed = connection.execute(_integrations_in_one_row(dialect), execution_options=_ONCE)
    return _records(packed.scalar(), dialect)


def _records(packed: str | None, dialect: str) -> list[IntegrationInfo]:
    """The records of _integrations_in_one_row's value, by name."""
    records = [_record(values) for values in json.loads(packed or "[]")]
    if dialect == "sqlite":  # an aggregate's order is its own; SQLite's names compare as bytes
        records.sort(key=lambda record: record.name)
    return records


@functools.cache
def _integrations_in_one_row(dialect: str) -> Any:
    """Every integration's record (_integration_record_columns) as one JSON array of arrays,
    as text; on PostgreSQL in the order of their names, in its collation."""
    records = _integration_record_columns().subquery("records")
    if dialect == "sqlite":
        # A JSON column is text in SQLite: json() puts it in the array as the value it holds.
        values = [func.json(c) if isinstance(c.type, JSON) else c for c in records.c]
        return select(func.json_group_array(func.json_array(*values))).select_from(records)
    in_order = aggregate_order_by(func.json_build_array(*records.c), records.c.name)
    return select(cast(func.json_agg(in_order), Text)).select_from(records)


def _record(values: list[Any]) -> IntegrationInfo:
    return IntegrationInfo(*(read(v) for read, v in zip(_record_readers(), values, strict=True)))


@functools.cache
def _record_readers() -> tuple[Callable[[Any], Any], ...]:
    """How each of the record's fields is read from its JSON value: a boolean from SQLite's 0
    or 1, a datetime from its text (storage.models.UTCDateTime's, in UTC); the rest as JSON
    has them (numbers, text, lists of text)."""
    readers: list[Callable[[Any], Any]] = []
    for f in dataclasses.fields(IntegrationInfo):
        kind = str(f.type)
        if kind == "bool":
            readers.append(bool)
        elif kind.startswith("datetime"):
            readers.append(_utc_or_none)
        else:
            readers.append(_as_is)
    return tuple(readers)


def _as_is(value: Any) -> Any:
    return value


def _utc_or_none(value: str | None) -> datetime | None:
    return None if value is None else _utc(value)


@functools.cache
def _integration_record_columns() -> Any:
    """The record's fields, in its order, so a row is its arguments by position (no mapping
    built per row)."""
    uses_key = Integration.credentials_ciphertext.is_not(None).label("uses_key")
    columns = [
        uses_key if f.name == "uses_key" else getattr(Integration, f.name)
        for f in dataclasses.fields(IntegrationInfo)
    ]
    return select(*columns).order_by(Integration.name)


def integration_by_name(core: Core, name: str) -> IntegrationInfo | None:
    return _integration_record(core, "name", name)


def integration_by_id(core: Core, integration_id: int) -> IntegrationInfo | None:
    """(A group search in the /groups modal asks this at every keystroke.)"""
    return _integration_record(core, "id", integration_id)


def _integration_record(core: Core, column: str, key: str | int) -> IntegrationInfo | None:
    with core.sessions() as session:
        row = session.connection().execute(_integration_record_by(column), {"key": key}).first()
        return IntegrationInfo(*row) if row is not None else None


@functools.cache
def _integration_record_by(column: str) -> Any:
    return _integration_record_columns().where(getattr(Integration, column) == bindparam("key"))


def integration_name(core: Core, integration_id: int) -> str:
    """The integration's name, or "" once it is gone."""
    found = integration_by_id(core, integration_id)
    return found.name if found is not None else ""


def having_user(
    core: Core, user_name: str, among: Sequence[IntegrationInfo]
) -> list[IntegrationInfo]:
    """The integrations (of `among`) whose synced store has an IAM user of that name."""
    with core.sessions() as session:
        return integrations_with_user(session, user_name, among)


def username_taken(core: Core, integration_id: int, user_name: str) -> bool:
    """Whether the synced store has that IAM user name in the integration, in any case (IAM
    user names are unique regardless of case)."""
    with core.sessions() as session:
        taken = session.scalar(
            select(Account.user_name).where(
                Account.integration_id == integration_id,
                func.lower(Account.user_name) == user_name.lower(),
            )
        )
    return taken is not None


# (every integration) -> the integrations to list, and the filter on their accounts
ChooseIntegrations = Callable[[list[IntegrationInfo]], tuple[list[IntegrationInfo], str | None]]


class _Guesses:
    """Which integrations and filter each recent listing chose, by what it was asked (its
    `guess` key): the last GUESSES_KEPT of them, in this process."""

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._chosen: OrderedDict[Hashable, tuple[tuple[int, ...], str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[tuple[int, ...], str | None] | None:
        with self._lock:
            chosen = self._chosen.get(key)
            if chosen is not None:
                self._chosen.move_to_end(key)
            return chosen

    def put(self, key: Hashable, chosen: tuple[tuple[int, ...], str | None]) -> None:
        with self._lock:
            self._chosen[key] = chosen
            self._chosen.move_to_end(key)
            while len(self._chosen) > self._kept:
                self._chosen.popitem(last=False)


GUESSES_KEPT = 1024
_guesses = _Guesses(GUESSES_KEPT)


@functools.cache
def _with_integrations(several: bool, filtered: bool, dialect: str) -> Any:
    """Every integration's record (_integrations_in_one_row) and a page (_in_one_row), in one
    statement: one snapshot, one round trip."""
    page = _in_one_row(several, filtered, dialect).subquery("one_page")
    return select(_integrations_in_one_row(dialect).scalar_subquery(), *page.c)


def accounts_listing(
    core: Core, choose: ChooseIntegrations, *, page: int = 0, guess: Hashable | None = None
) -> AccountsPage:
    """The integrations, then a page of the accounts of those `choose` picks among them (it
    decides who may see which, and may raise), on one connection: the command people type
    most opens one connection, not one per read, and no ORM session (its setup and teardown
    were a tenth of a listing's CPU under load, bench/ack.py).

    On PostgreSQL it is read in autocommit: each of the two statements is consistent on its
    own, and nothing is written, so no transaction is opened around them. That spares two of
    a listing's five round trips (BEGIN, and the ROLLBACK when the connection goes back to the
    pool): /accounts prod at concurrency 1, ack p50 7.3-8.6 ms against 5.1-6.9 ms. SQLite
    opens no transaction for a read anyway, and switching its connection's isolation level
    there and back costs more than it saves.

    `guess`: what the listing was asked, as a key (who asked, and what). The integrations and
    filter chosen last time for the same key are guessed again, and the integrations and that
    guess's page are read in one statement (the listing's only one, on either store); the
    page is used only if `choose`, deciding from the integrations read with it, chooses
    exactly those integrations and that filter again. Else (a first listing, a permission or
    an integration changed since) the page is read again for what was chosen.

    A connection the server ended as it was taken from the pool is found by the statement: the
    listing only reads, so it is read once more, on a new connection (storage.db)."""
    return read_again_if_ended(lambda: _listing(core, choose, page, guess))


def _listing(
    core: Core, choose: ChooseIntegrations, page: int, guess: Hashable | None
) -> AccountsPage:
    with core.engine.connect() as connection:
        dialect = connection.dialect.name
        if dialect == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        guessed = _guesses.get(guess) if guess is not None and dialect in _ONE_VALUE else None
        found: _Found | None = None
        if guessed is None:
            chosen, text_filter = choose(integration_records(connection))
        else:
            ids, text_filter = guessed
            window = {"skip": max(page, 0) * PAGE_SIZE}
            statement = _with_integrations(len(ids) > 1, bool(text_filter), dialect)
            packed, in_one, total = connection.execute(
                statement, {**_page_params(ids, text_filter), **window}, execution_options=_ONCE
            ).one()
            chosen, chosen_filter = choose(_records(packed, dialect))
            if tuple(i.id for i in chosen) == ids and chosen_filter == text_filter:
                found = _InOneRow(in_one or "[]", total or 0, ordered=dialect == "postgresql")
            text_filter = chosen_filter
        if guess is not None:
            _guesses.put(guess, (tuple(i.id for i in chosen), text_filter))
        return accounts_page(connection, chosen, text_filter=text_filter, page=page, found=found)


_ONE_VALUE = ("sqlite", "postgresql")


def accounts_of(
    core: Core,
    integrations: Sequence[IntegrationInfo],
    *,
    text_filter: str | None = None,
    page: int = 0,
) -> AccountsPage:
    with core.sessions() as session:
        return accounts_page(session, integrations, text_filter=text_filter, page=page)


def accounts_per_integration(core: Core) -> dict[int, int]:
    with core.sessions() as session:
        return account_counts(session)


@dataclass(frozen=True)
class TimeBound:
    """What the App Home shows of time-bound access, for one person."""

    held: list[grants.GrantRow]  # their own active grants
    ending: list[grants.GrantRow]  # grants ending soon where they may change groups
    expiring: list[account_expiry.ExpiryRow]  # accounts expiring soon, the same way


def time_bound_for(
    core: Core, actor: str, within: timedelta, *, now: datetime | None = None
) -> TimeBound:
    """The actor's own grants, and the grants and accounts ending within `within` in the
    integrations where they may change groups (asked of the policy, with `core.people`)."""
    people, now = core.people, now or utcnow()
    with core.sessions() as session:
        held = grants.held_by(session, actor)
        soon = grants.list_grants(session, ending_within=within, now=now)
        expiring = account_expiry.list_expiries(session, within=within, now=now)
        names = {g.integration for g in soon} | {e.integration for e in expiring}
        managed = {
            name
            for name in names
            if (integration := integration_named(session, name)) is not None
            and can(
                actor,
                Action.CHANGE_GROUPS,
                integration,
                core.settings.admins,
                people.member_of,
                people.standing(actor),
            ).allowed
        }
    return TimeBound(
        held,
        [g for g in soon if g.integration in managed],
        [e for e in expiring if e.integration in managed],
    )
