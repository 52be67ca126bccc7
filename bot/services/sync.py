"""Sync one integration's IAM into the store and report the drift since the last sync.

Fetching: the bulk, paginated GetAccountAuthorizationDetails (users and groups with their
memberships, attached and inline policies, tags, path and creation), so API calls grow with
N / page size, not N. GAAD does not carry PasswordLastUsed; it comes from ListUsers with the
integration's path prefix (also paginated, ≤1000 users a page, so again N / page size calls)
rather than a GetUser per user. The managed-policy catalogue for the policy picker comes from
ListPolicies (names and ARNs only; GAAD would carry every policy document). The three lists
are in flight together on the integration's one client, so a sync waits about as long as GAAD
alone (bench/sync.py measures it against a bare GAAD fetch).

Reading: every value is untrusted input (bot/services/iam_data.py): an entity that breaks IAM's
own rules is skipped and reported rather than stored, so one bad row never stops the rest, and
a store error that gets through anyway fails the sync plainly, recorded and audited.

Writing: the whole snapshot in one transaction, so a failed sync leaves the previous one intact,
in bulk statements (the accounts IAM added or changed by one `INSERT ... ON CONFLICT DO UPDATE`
per 1000, every account's last sighting by one UPDATE; memberships, attached policies and the
policy catalogue diffed against the store too, so a sync without drift rewrites no rows), built
a batch at a time: the memory a sync needs is its snapshot and the store's values and ids, not
copies of them as rows.

Links: the store's record of which Slack user an account belongs to is RoleUp's own (made at
onboarding, by an invite or `/roleup link`). The link tag on the IAM user is read only at the
integration's first sync (so a re-added integration recovers its links); after that a tag that
disagrees with the store is reported, never adopted: whoever can tag IAM users cannot move an
account into or out of someone's `/offboard @person`.

Drift: the new snapshot against the stored one, plus the changes this app made since the last
sync (from its audit log); each entry says whether this app made it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Insert, Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from bot.log_context import log_context
from bot.services import account_expiry, audit, grants, iam_data, reviews
from bot.services.aws import call
from bot.services.errors import RequestConflict, RoleUpError, StoreRefused
from bot.services.iam import GROUP_NAME_RE, TAG_SLACK_USER, in_prefix, normalized_prefix
from bot.services.iam_data import DataProblem
from bot.services.integration_handle import IntegrationHandle, IntegrationRef, use
from storage.db import lock_for_update
from storage.models import (
    Account,
    AttachedPolicy,
    AuditEvent,
    Base,
    Group,
    Integration,
    ManagedPolicy,
    Membership,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from bot.services.container import Core

logger = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the most IAM returns per page
#: progress(stage, count): ("pages", pages fetched so far), ("accounts", accounts written).
Progress = Callable[[str, int], None]
# Audit actions of this app that change accounts, by the kind of drift they explain.
APP_ACTIONS = {
    "added": ("iam.onboard",),
    "removed": ("iam.offboard",),
    "changed": ("iam.onboard", "iam.set_groups", "iam.link"),
}


# --- the snapshot ------------------------------------------------------------------------------
@dataclass
class UserSnapshot:
    user_name: str
    user_id: str
    arn: str
    path: str
    created_at: datetime | None
    tags: dict[str, str]
    link: str | None  # the Slack user id of a readable link tag
    groups: list[str]
    policies: list[tuple[str, str]]  # (arn, name)
    inline_policies: list[str]
    password_last_used: datetime | None = None


@dataclass
class GroupSnapshot:
    name: str
    group_id: str
    arn: str
    path: str
    policies: list[tuple[str, str]]


@dataclass
class Snapshot:
    users: dict[str, UserSnapshot] = field(default_factory=dict)
    groups: dict[str, GroupSnapshot] = field(default_factory=dict)
    policies: list[tuple[str, str, bool]] = field(default_factory=list)  # (arn, name, aws)
    problems: list[DataProblem] = field(default_factory=list)
    pages: int = 0
    calls: int = 0


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pages(
    operation: Callable[..., Any], what: str, pages: _PageCount, **kwargs: Any
) -> Iterator[Any]:
    marker: str | None = None
    while True:
        params = dict(kwargs, MaxItems=PAGE_SIZE)
        if marker:
            params["Marker"] = marker
        page = call(operation, what, **params)
        pages.add()
        yield page
        if not page.get("IsTruncated"):
            return
        marker = page["Marker"]


class _PageCount:
    """Pages fetched by the three concurrent lists together, told to `progress` as they come."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.pages = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:  # held while telling, so the count told only grows
            self.pages += 1
            if self.progress is not None:
                self.progress("pages", self.pages)


def fetch_snapshot(
    iam: IAMClient, integration: Integration, progress: Progress | None = None
) -> Snapshot:
    """Everything the store keeps of the account, users within the prefix only.

    The three lists are in flight together, on the one client (boto3 clients may be shared by
    threads; a session may not), so a sync takes about as long as its longest list, GAAD. An
    error is raised as the sequence GAAD, ListUsers, ListPolicies would meet it."""
    pages = _PageCount(progress)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="roleup-sync") as pool:
        # Each list in a copy of this context, so its log lines keep the sync's.
        details = pool.submit(copy_context().run, _fetch_details, iam, integration, pages)
        last_used = pool.submit(copy_context().run, _password_last_used, iam, integration, pages)
        catalogue = pool.submit(copy_context().run, _policy_catalogue, iam, pages)
    snapshot = details.result()
    for name, used in last_used.result().items():
        found = snapshot.users.get(name)
        if found is not None:
            found.password_last_used = used
    snapshot.policies, problems = catalogue.result()
    snapshot.problems.extend(problems)
    snapshot.pages = snapshot.calls = pages.pages
    return snapshot


def _fetch_details(iam: IAMClient, integration: Integration, pages: _PageCount) -> Snapshot:
    snapshot = Snapshot()
    details = _pages(
        iam.get_account_authorization_details,
        "read the account's users and groups",
        pages,
        Filter=["User", "Group"],
    )
    for page in details:
        for raw in page.get("UserDetailList") or []:
            if not in_prefix(str(raw.get("Path", "/")), integration):
                continue
            user = _user(raw, snapshot.problems)
            if user is not None:
                snapshot.users[user.user_name] = user
        for raw in page.get("GroupDetailList") or []:
            group = _group(raw, snapshot.problems)
            if group is not None:
                snapshot.groups[group.name] = group
    return snapshot


def _user(user: dict[str, Any], problems: list[DataProblem]) -> UserSnapshot | None:
    """The user as IAM's rules allow it, or None (skipped and reported)."""
    if not iam_data.check_identity("user", user, "UserName", problems):
        return None
    name = user["UserName"]
    tags = iam_data.tags(name, user.get("Tags"), problems)
    inline = [
        p.get("PolicyName") if isinstance(p, dict) else p for p in user.get("UserPolicyList") or []
    ]
    return UserSnapshot(
        user_name=name,
        user_id=user.get("UserId", ""),
        arn=user.get("Arn", ""),
        path=user.get("Path", "/"),
        created_at=_aware(user.get("CreateDate")),
        tags=tags,
        link=iam_data.link_tag(name, tags, problems),
        groups=iam_data.names(name, "group", user.get("GroupList"), GROUP_NAME_RE, problems),
        policies=iam_data.policies(name, user.get("AttachedManagedPolicies"), problems),
        inline_policies=iam_data.names(
            name, "inline policy", inline, iam_data.POLICY_NAME_RE, problems
        ),
    )


def _group(group: dict[str, Any], problems: list[DataProblem]) -> GroupSnapshot | None:
    if not iam_data.check_identity("group", group, "GroupName", problems):
        return None
    name = group["GroupName"]
    return GroupSnapshot(
        name=name,
        group_id=group.get("GroupId", ""),
        arn=group.get("Arn", ""),
        path=group.get("Path", "/"),
        policies=iam_data.policies(name, group.get("AttachedManagedPolicies"), problems),
    )


def _password_last_used(
    iam: IAMClient, integration: Integration, pages: _PageCount
) -> dict[str, datetime | None]:
    """user name -> PasswordLastUsed, for the users within the prefix (GAAD lacks it)."""
    found: dict[str, datetime | None] = {}
    prefix = normalized_prefix(integration.path_prefix)
    for page in _pages(iam.list_users, "list the account's users", pages, PathPrefix=prefix):
        for user in page.get("Users", []):
            found[str(user.get("UserName"))] = _aware(user.get("PasswordLastUsed"))
    return found


def _policy_catalogue(
    iam: IAMClient, pages: _PageCount
) -> tuple[list[tuple[str, str, bool]], list[DataProblem]]:
    policies: list[tuple[str, str, bool]] = []
    problems: list[DataProblem] = []
    listed = _pages(iam.list_policies, "list the account's managed policies", pages, Scope="All")
    for page in listed:
        for policy in page.get("Policies", []):
            arn, name = policy.get("Arn"), policy.get("PolicyName")
            if not iam_data.valid_policy(arn, name):
                problems.append(
                    DataProblem(iam_data.shown(name), "managed policy skipped: not one IAM allows")
                )
                continue
            policies.append((arn, name, ":iam::aws:policy/" in arn))
    return policies, problems


# --- drift -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountDrift:
    user_name: str
    kind: str  # added | removed | changed
    by_app: bool
    groups_added: list[str] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)
    policies_added: list[str] = field(default_factory=list)
    policies_removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SyncReport:
    integration: str
    accounts: int
    groups: int
    policies: int
    pages: int
    api_calls: int
    first_sync: bool
    added: list[AccountDrift] = field(default_factory=list)
    removed: list[AccountDrift] = field(default_factory=list)
    changed: list[AccountDrift] = field(default_factory=list)
    # Values from IAM not stored as read (skipped, cut, ignored links), and those of them the
    # previous sync did not already report (what a drift digest tells).
    problems: list[DataProblem] = field(default_factory=list)
    new_problems: list[DataProblem] = field(default_factory=list)

    def outside_changes(self) -> list[AccountDrift]:
        """Drift made outside this app (what a drift digest reports)."""
        return [d for d in self.added + self.removed + self.changed if not d.by_app]

    def summary(self) -> str:
        """One line: counts, and how much of the drift came from outside RoleUp."""
        head = f"{self.integration}: {self.accounts} accounts, {self.groups} groups"
        tail = ""
        if self.problems:
            count = len(self.problems)
            tail = f" {count} values from IAM not stored as read (see `roleup audit export`)."
        if self.first_sync:
            return f"{head} (first sync).{tail}"
        if not (self.added or self.removed or self.changed):
            return f"{head}; no drift.{tail}"
        parts = [
            f"{len(items)} {kind}"
            for kind, items in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if items
        ]
        outside = len(self.outside_changes())
        return f"{head}; drift: {', '.join(parts)} ({outside} outside RoleUp).{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "groups": self.groups,
            "policies": self.policies,
            "pages": self.pages,
            "api_calls": self.api_calls,
            "first_sync": self.first_sync,
            "added": [d.to_dict() for d in self.added],
            "removed": [d.to_dict() for d in self.removed],
            "changed": [d.to_dict() for d in self.changed],
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass
class StoredAccount:
    """An account as the store has it: what drift is measured against and links are kept by."""

    id: int
    slack_user_id: str | None
    user_id: str | None
    tag: str | None  # the link tag as the previous sync read it
    groups: set[str] = field(default_factory=set)
    policies: set[str] = field(default_factory=set)
    # The stored values of STORED_COLUMNS, so an account IAM did not change is not rewritten.
    stored: tuple[Any, ...] = ()


# The account columns a sync writes from IAM and its links, in this order (last_seen_at aside).
STORED_COLUMNS = (
    "user_id",
    "arn",
    "path",
    "created_at",
    "password_last_used",
    "slack_user_id",
    "tags",
    "inline_policies",
)


def _stored_accounts(session: Session, integration_id: int) -> dict[str, StoredAccount]:
    columns = [getattr(Account, column) for column in STORED_COLUMNS]
    rows = session.execute(
        select(Account.user_name, Account.id, *columns).where(
            Account.integration_id == integration_id
        )
    )
    accounts = {
        name: StoredAccount(
            aid,
            values[5],  # slack_user_id
            values[0],  # user_id
            (values[6] or {}).get(TAG_SLACK_USER),
            policies={f"{p} (inline)" for p in (values[7] or [])},
            stored=tuple(values),
        )
        for name, aid, *values in rows
    }
    memberships = session.execute(
        select(Account.user_name, Group.name)
        .join(Membership, Membership.account_id == Account.id)
        .join(Group, Group.id == Membership.group_id)
        .where(Account.integration_id == integration_id)
    )
    for user_name, group in memberships:
        accounts[user_name].groups.add(group)
    attached = session.execute(
        select(Account.user_name, AttachedPolicy.policy_name)
        .join(AttachedPolicy, AttachedPolicy.account_id == Account.id)
        .where(Account.integration_id == integration_id)
    )
    for user_name, policy in attached:
        accounts[user_name].policies.add(policy)
    return accounts


def _policies_of(user: UserSnapshot) -> set[str]:
    return {name for _, name in user.policies} | {f"{p} (inline)" for p in user.inline_policies}


def _app_targets(
    session: Session, integration: Integration, since: datetime | None
) -> dict[str, set[str]]:
    """user name -> audit actions this app completed on it since the last sync."""
    query = select(AuditEvent.target, AuditEvent.action).where(
        AuditEvent.integration == integration.name,
        AuditEvent.outcome == "ok",
        AuditEvent.action.in_({a for actions in APP_ACTIONS.values() for a in actions}),
    )
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    found: dict[str, set[str]] = {}
    for target, action in session.execute(query):
        found.setdefault(str(target), set()).add(action)
    return found


def _drift(
    before: dict[str, StoredAccount],
    snapshot: Snapshot,
    app: dict[str, set[str]],
) -> tuple[list[AccountDrift], list[AccountDrift], list[AccountDrift]]:
    def by_app(user_name: str, kind: str) -> bool:
        return bool(app.get(user_name, set()) & set(APP_ACTIONS[kind]))

    added, removed, changed = [], [], []
    for name in sorted(snapshot.users.keys() - before.keys()):
        added.append(AccountDrift(name, "added", by_app(name, "added")))
    for name in sorted(before.keys() - snapshot.users.keys()):
        removed.append(AccountDrift(name, "removed", by_app(name, "removed")))
    for name in sorted(snapshot.users.keys() & before.keys()):
        old, new = before[name], snapshot.users[name]
        groups, policies = set(new.groups), _policies_of(new)
        if groups != old.groups or policies != old.policies:
            changed.append(
                AccountDrift(
                    name,
                    "changed",
                    by_app(name, "changed"),
                    groups_added=sorted(groups - old.groups),
                    groups_removed=sorted(old.groups - groups),
                    policies_added=sorted(policies - old.policies),
                    policies_removed=sorted(old.policies - policies),
                )
            )
    # What this app did since the last sync is drift too, even though the store already has it.
    seen = {d.user_name for d in added + removed + changed}
    for name, actions in sorted(app.items()):
        if name in seen:
            continue
        if "iam.onboard" in actions and name in snapshot.users:
            added.append(AccountDrift(name, "added", True))
        elif "iam.offboard" in actions and name not in snapshot.users:
            removed.append(AccountDrift(name, "removed", True))
        elif actions & {"iam.set_groups", "iam.link"} and name in snapshot.users:
            changed.append(AccountDrift(name, "changed", True))
    return added, removed, changed


# --- links -----------------------------------------------------------------------------------
def _links(
    stored: dict[str, StoredAccount], snapshot: Snapshot, *, first_sync: bool
) -> dict[str, str | None]:
    """user name -> the Slack user it is linked to, after this sync (module docstring)."""
    links: dict[str, str | None] = {}
    for name, user in snapshot.users.items():
        before = stored.get(name)
        if first_sync:
            links[name] = (before.slack_user_id if before else None) or user.link
            continue
        link = before.slack_user_id if before else None
        if before and link and before.user_id and user.user_id != before.user_id:
            snapshot.problems.append(
                DataProblem(name, f"re-created outside RoleUp: its link to {link} was dropped")
            )
            link = None
        links[name] = link
        _report_link_tag(snapshot, user, link)
    return links


def _report_link_tag(snapshot: Snapshot, user: UserSnapshot, link: str | None) -> None:
    name, tag = user.user_name, user.tags.get(TAG_SLACK_USER)
    if user.link == link or (tag is not None and user.link is None):  # agrees, or unreadable
        return
    if link is None:
        what = "link tag not written by RoleUp ignored (link with `/roleup link`)"
    elif user.link is None:
        what = f"link tag removed outside RoleUp: still linked to {link}"
    else:
        what = f"conflicting link tag ignored: RoleUp linked it to {link}"
    snapshot.problems.append(DataProblem(name, what, user.link or ""))


def _new_problems(
    session: Session, integration: Integration, problems: list[DataProblem]
) -> list[DataProblem]:
    """The problems the integration's previous successful sync did not report."""
    detail = session.scalar(
        select(AuditEvent.detail)
        .where(
            AuditEvent.integration == integration.name,
            AuditEvent.action == "sync",
            AuditEvent.outcome == "ok",
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    seen = {
        DataProblem(**p).key
        for p in (detail or {}).get("problems") or []
        if isinstance(p, dict) and set(p) == {"subject", "what", "value"}
    }
    return [p for p in problems if p.key not in seen]


# --- writing ---------------------------------------------------------------------------------
# Rows a statement: one round trip each, and only this many rows built at a time.
BATCH = 1000
ACCOUNT_COLUMNS = [*STORED_COLUMNS, "last_seen_at"]
Row = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class _Target:
    """Where the writers put a snapshot: the session, in the integration's rows."""

    session: Session
    integration_id: int
    snapshot: Snapshot


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _batches(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _execute_batches(session: Session, statement: Any, rows: Iterable[Row]) -> None:
    """One statement over many rows, one round trip a batch."""
    for batch in _batches(rows):
        session.execute(statement, batch)


def _upsert(session: Session, table: Table, keys: list[str], columns: list[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET columns, in the store's own dialect."""
    # The dialect of the store in use only: importing PostgreSQL's costs a SQLite sync's start.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        on_postgresql = postgresql_insert(table)
        return on_postgresql.on_conflict_do_update(
            index_elements=keys, set_={c: on_postgresql.excluded[c] for c in columns}
        )
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    statement = sqlite_insert(table)
    return statement.on_conflict_do_update(
        index_elements=keys, set_={column: statement.excluded[column] for column in columns}
    )


def _delete_ids(
    session: Session, model: type[Group | Account | AttachedPolicy | ManagedPolicy], ids: list[int]
) -> None:
    for batch in _batches(ids):
        session.execute(delete(model).where(model.id.in_(batch)))


def _group_ids(session: Session, integration_id: int) -> dict[str, int]:
    return _ids_by_name(session, Group.name, Group.id, Group.integration_id == integration_id)


def _account_ids(session: Session, integration_id: int) -> dict[str, int]:
    where = Account.integration_id == integration_id
    return _ids_by_name(session, Account.user_name, Account.id, where)


def _ids_by_name(session: Session, name: Any, row_id: Any, where: Any) -> dict[str, int]:
    return {key: value for key, value in session.execute(select(name, row_id).where(where))}


def _write_groups(to: _Target) -> dict[str, int]:
    session, integration_id, snapshot = to.session, to.integration_id, to.snapshot
    existing = _group_ids(session, integration_id)
    _delete_ids(
        session, Group, [gid for name, gid in existing.items() if name not in snapshot.groups]
    )
    upsert = _upsert(
        session, _table(Group), ["integration_id", "name"], ["group_id", "arn", "path"]
    )
    rows = (
        {
            "integration_id": integration_id,
            "name": g.name,
            "group_id": g.group_id,
            "arn": g.arn,
            "path": g.path,
        }
        for g in snapshot.groups.values()
    )
    _execute_batches(session, upsert, rows)
    return _group_ids(session, integration_id)


def _write_accounts(
    to: _Target,
    before: dict[str, StoredAccount],
    links: dict[str, str | None],
    now: datetime,
    progress: Progress | None,
) -> dict[str, int]:
    """The accounts IAM added or changed inserted or updated by one upsert a batch (the rows of
    one batch are all that is built at a time), and every account's last sighting by one UPDATE:
    a re-sync without drift sends no account rows at all (on PostgreSQL each upserted row was a
    statement of its own, most of the time such a sync spent writing)."""
    session, integration_id, snapshot = to.session, to.integration_id, to.snapshot
    _delete_ids(
        session, Account, [a.id for name, a in before.items() if name not in snapshot.users]
    )
    upsert = _upsert(session, _table(Account), ["integration_id", "user_name"], ACCOUNT_COLUMNS)
    rows = (
        dict(
            zip(STORED_COLUMNS, values, strict=True),
            integration_id=integration_id,
            user_name=user.user_name,
            last_seen_at=now,
        )
        for user in snapshot.users.values()
        if (values := _account_values(user, links.get(user.user_name)))
        != (before[user.user_name].stored if user.user_name in before else None)
    )
    written = 0
    for batch in _batches(rows):
        session.execute(upsert, batch)
        written += len(batch)
        if progress is not None:
            progress("accounts", written)
    seen = update(Account).where(Account.integration_id == integration_id)
    session.execute(seen.values(last_seen_at=now))
    if progress is not None:
        progress("accounts", len(snapshot.users))
    return _account_ids(session, integration_id)


def _account_values(user: UserSnapshot, link: str | None) -> tuple[Any, ...]:
    """The user's values of STORED_COLUMNS, as the store would give them back."""
    return (
        user.user_id,
        user.arn,
        user.path,
        user.created_at,
        user.password_last_used,
        link,
        user.tags,
        user.inline_policies,
    )


def _write_memberships(to: _Target, account_ids: dict[str, int], group_ids: dict[str, int]) -> None:
    """Only the memberships that changed are deleted or inserted (a re-sync writes none)."""
    session, integration_id, snapshot = to.session, to.integration_id, to.snapshot
    stored = session.execute(
        select(Membership.account_id, Membership.group_id)
        .join(Account, Account.id == Membership.account_id)
        .where(Account.integration_id == integration_id)
    )
    # Plain tuples: a set of SQLAlchemy rows hashes and compares each in Python, which was most
    # of a re-sync's time in the store.
    have = {(account_id, group_id) for account_id, group_id in stored}
    want = {
        (account_ids[u.user_name], group_ids[g])
        for u in snapshot.users.values()
        for g in u.groups
        if g in group_ids
    }
    table = _table(Membership)
    stale = (
        table.delete()
        .where(table.c.account_id == bindparam("a"))
        .where(table.c.group_id == bindparam("g"))
    )
    _execute_batches(session, stale, ({"a": a, "g": g} for a, g in have - want))
    added = ({"account_id": a, "group_id": g} for a, g in want - have)
    _execute_batches(session, insert(table), added)


PolicyKey = tuple[int | None, int | None, str, str]  # (account id, group id, arn, name)


def _write_attached(to: _Target, account_ids: dict[str, int], group_ids: dict[str, int]) -> None:
    """Policies attached to users and groups; only what changed is written."""
    session, integration_id, snapshot = to.session, to.integration_id, to.snapshot
    want: set[PolicyKey] = {
        (account_ids[u.user_name], None, arn, name)
        for u in snapshot.users.values()
        for arn, name in u.policies
    }
    want.update(
        (None, group_ids[g.name], arn, name)
        for g in snapshot.groups.values()
        for arn, name in g.policies
    )
    stale: list[int] = []
    for pid, *key in session.execute(
        select(
            AttachedPolicy.id,
            AttachedPolicy.account_id,
            AttachedPolicy.group_id,
            AttachedPolicy.policy_arn,
            AttachedPolicy.policy_name,
        ).where(AttachedPolicy.integration_id == integration_id)
    ):
        found = tuple(key)
        if found in want:
            want.discard(found)  # kept; a duplicate of it is stale
        else:
            stale.append(pid)
    _delete_ids(session, AttachedPolicy, stale)
    rows = (
        {
            "integration_id": integration_id,
            "account_id": account_id,
            "group_id": group_id,
            "policy_arn": arn,
            "policy_name": name,
        }
        for account_id, group_id, arn, name in want
    )
    _execute_batches(session, insert(_table(AttachedPolicy)), rows)


def _write_catalogue(to: _Target) -> None:
    session, integration_id, snapshot = to.session, to.integration_id, to.snapshot
    want = {arn: (name, aws) for arn, name, aws in snapshot.policies}
    stale: list[int] = []
    for pid, arn, name, aws in session.execute(
        select(
            ManagedPolicy.id, ManagedPolicy.arn, ManagedPolicy.name, ManagedPolicy.aws_managed
        ).where(ManagedPolicy.integration_id == integration_id)
    ):
        if arn not in want:
            stale.append(pid)
        elif want[arn] == (name, aws):
            del want[arn]  # unchanged: nothing to write
    _delete_ids(session, ManagedPolicy, stale)
    upsert = _upsert(
        session, _table(ManagedPolicy), ["integration_id", "arn"], ["name", "aws_managed"]
    )
    rows = (
        {"integration_id": integration_id, "arn": arn, "name": name, "aws_managed": aws}
        for arn, (name, aws) in want.items()
    )
    _execute_batches(session, upsert, rows)


# --- the service -----------------------------------------------------------------------------
def sync_integration(
    core: Core,
    integration_ref: IntegrationRef,
    *,
    actor: str = "scheduler",
    progress: Progress | None = None,
) -> SyncReport:
    """Fetch the account, write the snapshot in one transaction, return the drift."""
    handle = use(core, integration_ref, actor=actor)
    integration = handle.integration
    started = time.monotonic()
    with log_context(integration=integration.name, actor=actor):
        try:
            report = _sync(core, handle, actor=actor, progress=progress)
        except Exception:
            core.metrics.synced(integration.name, False, time.monotonic() - started)
            raise
    drift = len(report.outside_changes())
    core.metrics.synced(integration.name, True, time.monotonic() - started, drift)
    return report


def _sync(
    core: Core, handle: IntegrationHandle, *, actor: str, progress: Progress | None
) -> SyncReport:
    integration, integration_id = handle.integration, handle.id
    read_from = datetime.now(UTC)
    try:
        snapshot = fetch_snapshot(handle.iam, integration, progress)
        report = _store(core, integration, snapshot, actor=actor, progress=progress)
    except RoleUpError as err:
        _record_failure(core, integration, actor, str(err))
        raise
    except SQLAlchemyError as err:
        # Whatever the store refused, the reason told and audited is plain: the statement and
        # its values stay out of it (they are IAM's data, and SQL is no use to a reader).
        logger.warning(
            "sync of %s: the store refused the snapshot (%s)",
            integration.name,
            type(getattr(err, "orig", None) or err).__name__,
        )
        failure = StoreRefused(
            f"The store could not save the sync of {integration.name} ({_store_reason(err)}); "
            "the previous snapshot is kept."
        )
        _record_failure(core, integration, actor, str(failure))
        raise failure from None
    with core.sessions.begin() as session:
        # Grants whose membership IAM no longer has end now, not at their expiry.
        grants.reconcile_with_store(session, integration_id, read_from)
        # Accounts deleted outside RoleUp before their date: the expiry ends quietly.
        account_expiry.reconcile_with_store(session, integration_id, read_from)
    # An open access review shows which of its accounts went or changed outside RoleUp.
    reviews.note_drift(core, integration_id, report.outside_changes())
    return report


def _store_reason(err: SQLAlchemyError) -> str:
    if isinstance(err, IntegrityError):
        return "a row it refused, or another sync at the same time"
    if isinstance(err, DataError):
        return "a value it cannot hold"
    if isinstance(err, OperationalError):
        return "it is unreachable or busy"
    return "a store error"


def _store(
    core: Core,
    integration: Integration,
    snapshot: Snapshot,
    *,
    actor: str,
    progress: Progress | None,
) -> SyncReport:
    now = datetime.now(UTC)
    with core.sessions.begin() as session:
        lock_for_update(session)  # two syncs of one integration take turns, on SQLite too
        row = session.get(Integration, integration.id, with_for_update=True)
        if row is None:  # removed while we were fetching
            raise RequestConflict(f"{integration.name} was removed during the sync.")
        before = _stored_accounts(session, integration.id)
        app = _app_targets(session, integration, row.last_sync_at)
        first_sync = row.last_sync_at is None
        links = _links(before, snapshot, first_sync=first_sync)
        report = _report(integration, snapshot, first_sync=first_sync)
        report.new_problems = _new_problems(session, integration, report.problems)
        if not report.first_sync:
            report.added, report.removed, report.changed = _drift(before, snapshot, app)
        to = _Target(session, integration.id, snapshot)
        group_ids = _write_groups(to)
        account_ids = _write_accounts(to, before, links, now, progress)
        del before  # the drift is told: the snapshot is all this sync holds from here
        _write_memberships(to, account_ids, group_ids)
        _write_attached(to, account_ids, group_ids)
        _write_catalogue(to)
        row.last_sync_at = now
        row.last_sync_status = "ok"
        row.last_sync_error = None
        audit.record_integration(
            session, integration.name, actor=actor, action="sync", detail=_audit_detail(report)
        )
    return report


def _report(integration: Integration, snapshot: Snapshot, *, first_sync: bool) -> SyncReport:
    return SyncReport(
        integration=integration.name,
        accounts=len(snapshot.users),
        groups=len(snapshot.groups),
        policies=len({arn for arn, _, _ in snapshot.policies}),
        pages=snapshot.pages,
        api_calls=snapshot.calls,
        first_sync=first_sync,
        problems=list(snapshot.problems),
    )


AUDIT_NAMES = 100  # names listed per kind in the sync's audit event; counts are always whole


def _audit_detail(report: SyncReport) -> dict[str, Any]:
    def names(items: list[AccountDrift]) -> list[str]:
        return [d.user_name for d in items[:AUDIT_NAMES]]

    return {
        "accounts": report.accounts,
        "groups": report.groups,
        "api_calls": report.api_calls,
        "counts": {
            "added": len(report.added),
            "removed": len(report.removed),
            "changed": len(report.changed),
            "outside": len(report.outside_changes()),
        },
        "added": names(report.added),
        "removed": names(report.removed),
        "changed": names(report.changed),
        "outside": names(report.outside_changes()),
        "problem_count": len(report.problems),
        "problems": [p.to_dict() for p in report.problems[:AUDIT_NAMES]],
    }


def _record_failure(core: Core, integration: Integration, actor: str, error: str) -> None:
    try:
        _save_failure(core, integration, actor, error)
    except SQLAlchemyError:  # the store is down: the log is all that is left
        logger.warning("could not record the failed sync of %s", integration.name)


def _save_failure(core: Core, integration: Integration, actor: str, error: str) -> None:
    with core.sessions.begin() as session:
        row = session.get(Integration, integration.id)
        if row is not None:
            row.last_sync_status = "failed"
            row.last_sync_error = error[:1000]
        audit.record_integration(
            session,
            integration.name,
            actor=actor,
            action="sync",
            outcome="failed",
            detail={"error": error[:500]},
        )
