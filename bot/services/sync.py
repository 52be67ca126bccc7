"""Sync one integration's IAM into the store and report the drift since the last sync.

Fetching: the bulk, paginated GetAccountAuthorizationDetails (users and groups with their
memberships, attached and inline policies, tags, path and creation), so API calls grow with
N / page size, not N. GAAD does not carry PasswordLastUsed; it comes from ListUsers with the
integration's path prefix (also paginated, ≤1000 users a page, so again N / page size calls)
rather than a GetUser per user. The managed-policy catalogue for the policy picker comes from
ListPolicies (names and ARNs only; GAAD would carry every policy document).

Writing: the whole snapshot in one transaction, so a failed sync leaves the previous one intact.

Drift: the new snapshot against the stored one, plus the changes this app made since the last
sync (from its audit log); each entry says whether this app made it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.services import audit, grants
from bot.services.aws import call
from bot.services.errors import RequestConflict, RoleUpError
from bot.services.iam import TAG_SLACK_USER, in_prefix, normalized_prefix
from bot.services.lifecycle import iam_client, load_integration
from storage.models import (
    Account,
    AttachedPolicy,
    AuditEvent,
    Group,
    Integration,
    ManagedPolicy,
    Membership,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from bot.services.container import Core

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
    pages: int = 0
    calls: int = 0


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pages(
    operation: Callable[..., Any], what: str, snapshot: Snapshot, **kwargs: Any
) -> Iterator[Any]:
    marker: str | None = None
    while True:
        params = dict(kwargs, MaxItems=PAGE_SIZE)
        if marker:
            params["Marker"] = marker
        page = call(operation, what, **params)
        snapshot.calls += 1
        yield page
        if not page.get("IsTruncated"):
            return
        marker = page["Marker"]


def fetch_snapshot(
    iam: IAMClient, integration: Integration, progress: Progress | None = None
) -> Snapshot:
    """Everything the store keeps of the account, users within the prefix only."""
    snapshot = Snapshot()
    details = _pages(
        iam.get_account_authorization_details,
        "read the account's users and groups",
        snapshot,
        Filter=["User", "Group"],
    )
    for page in details:
        snapshot.pages += 1
        for user in page.get("UserDetailList", []):
            if in_prefix(user.get("Path", "/"), integration):
                snapshot.users[user["UserName"]] = _user(user)
        for group in page.get("GroupDetailList", []):
            snapshot.groups[group["GroupName"]] = _group(group)
        if progress is not None:
            progress("pages", snapshot.pages)
    _add_password_last_used(iam, integration, snapshot, progress)
    _add_policy_catalogue(iam, snapshot, progress)
    return snapshot


def _user(user: Any) -> UserSnapshot:
    return UserSnapshot(
        user_name=user["UserName"],
        user_id=user.get("UserId", ""),
        arn=user.get("Arn", ""),
        path=user.get("Path", "/"),
        created_at=_aware(user.get("CreateDate")),
        tags={t["Key"]: t["Value"] for t in user.get("Tags", [])},
        groups=sorted(user.get("GroupList", [])),
        policies=sorted(
            (p["PolicyArn"], p["PolicyName"]) for p in user.get("AttachedManagedPolicies", [])
        ),
        inline_policies=sorted(p["PolicyName"] for p in user.get("UserPolicyList", [])),
    )


def _group(group: Any) -> GroupSnapshot:
    return GroupSnapshot(
        name=group["GroupName"],
        group_id=group.get("GroupId", ""),
        arn=group.get("Arn", ""),
        path=group.get("Path", "/"),
        policies=sorted(
            (p["PolicyArn"], p["PolicyName"]) for p in group.get("AttachedManagedPolicies", [])
        ),
    )


def _add_password_last_used(
    iam: IAMClient, integration: Integration, snapshot: Snapshot, progress: Progress | None
) -> None:
    pages = _pages(
        iam.list_users,
        "list the account's users",
        snapshot,
        PathPrefix=normalized_prefix(integration.path_prefix),
    )
    for page in pages:
        snapshot.pages += 1
        for user in page.get("Users", []):
            found = snapshot.users.get(user["UserName"])
            if found is not None:
                found.password_last_used = _aware(user.get("PasswordLastUsed"))
        if progress is not None:
            progress("pages", snapshot.pages)


def _add_policy_catalogue(iam: IAMClient, snapshot: Snapshot, progress: Progress | None) -> None:
    pages = _pages(iam.list_policies, "list the account's managed policies", snapshot, Scope="All")
    for page in pages:
        snapshot.pages += 1
        for policy in page.get("Policies", []):
            arn = policy["Arn"]
            snapshot.policies.append((arn, policy["PolicyName"], ":iam::aws:policy/" in arn))
        if progress is not None:
            progress("pages", snapshot.pages)


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
        return {
            "user_name": self.user_name,
            "kind": self.kind,
            "by_app": self.by_app,
            "groups_added": self.groups_added,
            "groups_removed": self.groups_removed,
            "policies_added": self.policies_added,
            "policies_removed": self.policies_removed,
        }


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

    def outside_changes(self) -> list[AccountDrift]:
        """Drift made outside this app (what a drift digest reports)."""
        return [d for d in self.added + self.removed + self.changed if not d.by_app]

    def summary(self) -> str:
        """One line: counts, and how much of the drift came from outside RoleUp."""
        head = f"{self.integration}: {self.accounts} accounts, {self.groups} groups"
        if self.first_sync:
            return f"{head} (first sync)."
        if not (self.added or self.removed or self.changed):
            return f"{head}; no drift."
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
        return f"{head}; drift: {', '.join(parts)} ({outside} outside RoleUp)."

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
        }


@dataclass
class StoredAccount:
    groups: set[str]
    policies: set[str]


def _stored_accounts(session: Session, integration_id: int) -> dict[str, StoredAccount]:
    accounts = {
        name: StoredAccount(set(), {f"{p} (inline)" for p in (inline or [])})
        for name, inline in session.execute(
            select(Account.user_name, Account.inline_policies).where(
                Account.integration_id == integration_id
            )
        )
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


# --- writing ---------------------------------------------------------------------------------
def _group_ids(session: Session, integration_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Group.name, Group.id).where(Group.integration_id == integration_id)
    )
    return {name: gid for name, gid in rows}


def _account_ids(session: Session, integration_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Account.user_name, Account.id).where(Account.integration_id == integration_id)
    )
    return {name: aid for name, aid in rows}


def _write_groups(session: Session, integration_id: int, snapshot: Snapshot) -> dict[str, int]:
    existing = _group_ids(session, integration_id)
    gone = [gid for name, gid in existing.items() if name not in snapshot.groups]
    if gone:
        session.execute(delete(Group).where(Group.id.in_(gone)))
    rows = [
        {"name": g.name, "group_id": g.group_id, "arn": g.arn, "path": g.path}
        for g in snapshot.groups.values()
    ]
    updates = [dict(r, id=existing[r["name"]]) for r in rows if r["name"] in existing]
    inserts = [dict(r, integration_id=integration_id) for r in rows if r["name"] not in existing]
    if updates:
        session.execute(update(Group), updates)
    if inserts:
        session.execute(insert(Group), inserts)
    return _group_ids(session, integration_id)


def _write_accounts(
    session: Session,
    integration_id: int,
    snapshot: Snapshot,
    now: datetime,
    progress: Progress | None,
) -> dict[str, int]:
    existing = _account_ids(session, integration_id)
    gone = [aid for name, aid in existing.items() if name not in snapshot.users]
    if gone:
        session.execute(delete(Account).where(Account.id.in_(gone)))
    updates, inserts = [], []
    for user in snapshot.users.values():
        row = {
            "user_name": user.user_name,
            "user_id": user.user_id,
            "arn": user.arn,
            "path": user.path,
            "created_at": user.created_at,
            "password_last_used": user.password_last_used,
            # Links are read back from the IAM user's tag: a re-added integration recovers them.
            "slack_user_id": user.tags.get(TAG_SLACK_USER),
            "tags": user.tags,
            "inline_policies": user.inline_policies,
            "last_seen_at": now,
        }
        if user.user_name in existing:
            updates.append(dict(row, id=existing[user.user_name]))
        else:
            inserts.append(dict(row, integration_id=integration_id))
    written = 0
    for statement, rows in ((update(Account), updates), (insert(Account), inserts)):
        for batch in _batches(rows):
            session.execute(statement, batch)
            written += len(batch)
            if progress is not None:
                progress("accounts", written)
    return _account_ids(session, integration_id)


def _batches(rows: list[dict[str, Any]], size: int = 1000) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _write_links(
    session: Session,
    integration_id: int,
    snapshot: Snapshot,
    account_ids: dict[str, int],
    group_ids: dict[str, int],
) -> None:
    """Memberships and attached policies, replaced wholesale (cheaper than diffing rows)."""
    session.execute(
        delete(Membership).where(
            Membership.account_id.in_(
                select(Account.id).where(Account.integration_id == integration_id)
            )
        )
    )
    session.execute(delete(AttachedPolicy).where(AttachedPolicy.integration_id == integration_id))
    memberships = [
        {"account_id": account_ids[u.user_name], "group_id": group_ids[g]}
        for u in snapshot.users.values()
        for g in u.groups
        if g in group_ids
    ]
    attached = [
        {
            "integration_id": integration_id,
            "account_id": account_ids[u.user_name],
            "policy_arn": arn,
            "policy_name": name,
        }
        for u in snapshot.users.values()
        for arn, name in u.policies
    ] + [
        {
            "integration_id": integration_id,
            "group_id": group_ids[g.name],
            "policy_arn": arn,
            "policy_name": name,
        }
        for g in snapshot.groups.values()
        for arn, name in g.policies
    ]
    for batch in _batches(memberships):
        session.execute(insert(Membership), batch)
    for batch in _batches(attached):
        session.execute(insert(AttachedPolicy), batch)


def _write_catalogue(session: Session, integration_id: int, snapshot: Snapshot) -> None:
    session.execute(delete(ManagedPolicy).where(ManagedPolicy.integration_id == integration_id))
    rows = {
        arn: {"integration_id": integration_id, "arn": arn, "name": name, "aws_managed": aws}
        for arn, name, aws in snapshot.policies
    }
    for batch in _batches(list(rows.values())):
        session.execute(insert(ManagedPolicy), batch)


# --- the service -----------------------------------------------------------------------------
def sync_integration(
    core: Core,
    integration_id: int,
    *,
    actor: str = "scheduler",
    progress: Progress | None = None,
) -> SyncReport:
    """Fetch the account, write the snapshot in one transaction, return the drift."""
    integration = load_integration(core, integration_id)
    read_from = datetime.now(UTC)
    try:
        snapshot = fetch_snapshot(iam_client(core, integration, actor=actor), integration, progress)
        report = _store(core, integration, snapshot, actor=actor, progress=progress)
    except RoleUpError as err:
        _record_failure(core, integration, actor, str(err))
        raise
    with core.sessions.begin() as session:
        # Grants whose membership IAM no longer has end now, not at their expiry.
        grants.reconcile_with_store(session, integration_id, read_from)
    return report


def _store(
    core: Core,
    integration: Integration,
    snapshot: Snapshot,
    *,
    actor: str,
    progress: Progress | None,
) -> SyncReport:
    now = datetime.now(UTC)
    try:
        with core.sessions.begin() as session:
            row = session.get(Integration, integration.id, with_for_update=True)
            if row is None:  # removed while we were fetching
                raise RequestConflict(f"{integration.name} was removed during the sync.")
            before = _stored_accounts(session, integration.id)
            app = _app_targets(session, integration, row.last_sync_at)
            report = _report(integration, snapshot, first_sync=row.last_sync_at is None)
            if not report.first_sync:
                report.added, report.removed, report.changed = _drift(before, snapshot, app)
            group_ids = _write_groups(session, integration.id, snapshot)
            account_ids = _write_accounts(session, integration.id, snapshot, now, progress)
            _write_links(session, integration.id, snapshot, account_ids, group_ids)
            _write_catalogue(session, integration.id, snapshot)
            row.last_sync_at = now
            row.last_sync_status = "ok"
            row.last_sync_error = None
            audit.record(
                session,
                actor=actor,
                action="sync",
                target=integration.name,
                integration=integration.name,
                detail=_audit_detail(report),
            )
    except IntegrityError:
        raise RequestConflict(
            f"Another sync of {integration.name} ran at the same time; try again."
        ) from None
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
    }


def _record_failure(core: Core, integration: Integration, actor: str, error: str) -> None:
    with core.sessions.begin() as session:
        row = session.get(Integration, integration.id)
        if row is not None:
            row.last_sync_status = "failed"
            row.last_sync_error = error[:1000]
        audit.record(
            session,
            actor=actor,
            action="sync",
            target=integration.name,
            integration=integration.name,
            outcome="failed",
            detail={"error": error[:500]},
        )
