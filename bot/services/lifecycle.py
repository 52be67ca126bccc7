"""The IAM lifecycle as the surfaces call it: AWS (through bot.services.iam) + the store + audit.

Every function takes `core` and an integration id, loads the integration, enforces its rules
(read-only, path prefix) before any AWS call, and records what it did in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.services import audit, iam, offboard_steps
from bot.services.errors import IntegrationNotFound, RoleUpError, UserExists
from bot.services.iam import GroupChange
from bot.services.integration_handle import (
    IntegrationHandle,
    IntegrationRef,
    load_integration,
    open_integration,
    use,
)
from bot.services.offboard_steps import OFFBOARD_STEPS, STEP_LABELS, PlanItem
from bot.services.step_reports import BackgroundReporter
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

__all__ = [
    "OFFBOARD_STEPS",
    "STEP_LABELS",
    "GroupChange",
    "IntegrationHandle",
    "IntegrationRef",
    "OffboardPlan",
    "OffboardResult",
    "OnboardResult",
    "OnboardSpec",
    "PlanItem",
    "PolicyRef",
    "accounts_of_slack_user",
    "apply_group_change",
    "check_onboard",
    "current_groups",
    "generate_password",
    "grantable_groups",
    "link_slack_user",
    "load_integration",
    "offboard",
    "onboard",
    "open_integration",
    "plan_offboard",
    "search_policies",
    "set_groups",
    "user_and_groups",
]


# --- shared plumbing ---------------------------------------------------------------------------
def iam_client(
    core: Core, integration: Integration, *, actor: str, request_id: str | None = None
) -> IAMClient:
    """The integration's IAM client, acting for `actor` (as the audit log names them): with a
    role, CloudTrail shows that person, and `request_id`, on every call (bot.services.acting).
    A use case that makes several calls opens an IntegrationHandle instead and passes it down."""
    return IntegrationHandle(core, integration, actor=actor, request_id=request_id).iam


@dataclass(frozen=True)
class _Audited:
    """The audit entry of one use case on one IAM user: "failed" with the error when a
    RoleUpError leaves `attempt`, otherwise what `done` records."""

    core: Core
    integration: Integration
    actor: str
    action: str
    target: str
    request_id: str | None = None

    @contextmanager
    def attempt(self) -> Iterator[None]:
        try:
            yield
        except RoleUpError as err:
            self.record("failed", {"error": str(err)})
            raise

    def done(self, detail: dict[str, Any]) -> None:
        self.record("ok", detail)

    def record(self, outcome: str, detail: dict[str, Any]) -> None:
        with self.core.sessions.begin() as session:
            audit.record(
                session,
                actor=self.actor,
                action=self.action,
                target=self.target,
                integration=self.integration.name,
                outcome=outcome,
                request_id=self.request_id,
                detail=detail,
            )


def require_same_integration(core: Core, integration_id: int, name: str) -> None:
    """Refuse an id kept since some earlier moment (a request, a modal) unless it still names
    the integration it named then. Ids are never reused, so this fails only for an integration
    removed since (whatever now has its name)."""
    with core.sessions() as session:
        found = session.get(Integration, integration_id)
        require_same_name(found.name if found is not None else None, name)


def require_same_name(found: str | None, name: str) -> None:
    """require_same_integration, for a caller that has read the integration (`found`: its
    name now, None if it is gone)."""
    if found != name:
        raise IntegrationNotFound(
            f"Integration {name} was removed since this was asked: make a new request."
        )


def _account(session: Session, integration_id: int, user_name: str) -> Account | None:
    return session.scalar(
        select(Account).where(
            Account.integration_id == integration_id, Account.user_name == user_name
        )
    )


def _group_rows(session: Session, integration_id: int, names: Sequence[str]) -> list[Group]:
    """The store's rows for these groups, adding any the last sync has not seen yet."""
    existing = {
        g.name: g
        for g in session.scalars(
            select(Group).where(Group.integration_id == integration_id, Group.name.in_(names))
        )
    }
    for name in names:
        if name not in existing:
            existing[name] = Group(integration_id=integration_id, name=name, path="/")
            session.add(existing[name])
    session.flush()
    return [existing[name] for name in names]


def _set_memberships(
    session: Session, account: Account, integration_id: int, names: Sequence[str]
) -> None:
    session.execute(delete(Membership).where(Membership.account_id == account.id))
    for group in _group_rows(session, integration_id, sorted(set(names))):
        session.add(Membership(account_id=account.id, group_id=group.id))


# --- onboarding ------------------------------------------------------------------------------
@dataclass
class OnboardSpec:
    username: str
    password: str = field(repr=False)
    groups: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    slack_user_id: str | None = None
    created_by: str = ""


@dataclass(frozen=True)
class OnboardResult:
    integration_id: int
    integration_name: str
    user_name: str
    arn: str
    groups: list[str]
    policies: list[str]
    slack_user_id: str | None


def _new_user(spec: OnboardSpec, request_id: str | None) -> iam.NewUser:
    tags = {iam.TAG_CREATED_BY: spec.created_by or "roleup"}
    if spec.slack_user_id:
        tags[iam.TAG_SLACK_USER] = spec.slack_user_id
    if request_id:
        tags[iam.TAG_REQUEST_ID] = request_id
    return iam.NewUser(
        user_name=spec.username.strip(),
        password=spec.password,
        groups=list(dict.fromkeys(spec.groups)),
        policies=list(dict.fromkeys(spec.policies)),
        tags=tags,
    )


def _check_store_unique(core: Core, integration: Integration, user_name: str) -> None:
    """IAM names are unique regardless of case, but GetUser matches the exact name only (on
    moto; AWS's own matching is not documented): the snapshot catches the other spellings."""
    with core.sessions() as session:
        taken = session.scalar(
            select(Account.user_name).where(
                Account.integration_id == integration.id,
                func.lower(Account.user_name) == user_name.lower(),
                Account.user_name != user_name,
            )
        )
    if taken is not None:
        raise UserExists(f"The username {user_name} is already taken (as {taken}).")


def check_onboard(
    core: Core,
    integration: IntegrationRef,
    spec: OnboardSpec,
    *,
    actor: str,
    request_id: str | None = None,
) -> None:
    """Raise the first field error the onboarding would hit; makes no AWS write. Given the
    handle the onboarding then runs with, the onboarding does not ask AWS the same again."""
    handle = use(core, integration, actor=actor, request_id=request_id)
    new = _new_user(spec, None)
    if spec.slack_user_id:
        iam.validate_slack_user(spec.slack_user_id)
    iam.check_new_user_offline(handle.integration, new)
    _check_store_unique(core, handle.integration, new.user_name)
    iam.check_new_user(handle.iam, handle.integration, new, handle.password_rules())
    handle.mark_checked(new)


def onboard(
    core: Core,
    integration_ref: IntegrationRef,
    spec: OnboardSpec,
    *,
    actor: str,
    request_id: str | None = None,
) -> OnboardResult:
    """Create the IAM user with its password, groups and policies, all or nothing."""
    handle = use(core, integration_ref, actor=actor, request_id=request_id)
    integration = handle.integration
    new = _new_user(spec, request_id)
    if spec.slack_user_id:
        iam.validate_slack_user(spec.slack_user_id)
    iam.check_new_user_offline(integration, new)
    _check_store_unique(core, integration, new.user_name)
    audited = _Audited(core, integration, actor, "iam.onboard", new.user_name, request_id)
    with audited.attempt():
        rules = handle.password_rules()
        if handle.was_checked(new):
            # Checked with AWS a moment ago in this use case: only the password is looked at
            # again (against the rules already read); CreateUser still refuses a taken name.
            rules.check(new.password)
        else:
            iam.check_new_user(handle.iam, integration, new, rules)
        user = iam.create_user(handle.iam, integration, new)
    _store_new_account(core, integration, new, user, spec.slack_user_id)
    # The link made here is RoleUp's own record of it (see links_made_by_roleup).
    audited.done(
        {
            "groups": new.groups,
            "policies": new.policies,
            "slack_user": spec.slack_user_id,
            "user_id": user.get("UserId"),
        }
    )
    return OnboardResult(
        integration_id=integration.id,
        integration_name=integration.name,
        user_name=new.user_name,
        arn=user["Arn"],
        groups=new.groups,
        policies=new.policies,
        slack_user_id=spec.slack_user_id,
    )


def _store_new_account(
    core: Core,
    integration: Integration,
    new: iam.NewUser,
    user: dict[str, Any],
    slack_user_id: str | None,
) -> None:
    with core.sessions.begin() as session:
        account = _account(session, integration.id, new.user_name) or Account(
            integration_id=integration.id, user_name=new.user_name
        )
        account.user_id = user.get("UserId")
        account.arn = user.get("Arn")
        account.path = user.get("Path", "/")
        account.created_at = user.get("CreateDate") or datetime.now(UTC)
        account.slack_user_id = slack_user_id
        account.tags = dict(new.tags)
        account.last_seen_at = datetime.now(UTC)
        session.add(account)
        session.flush()
        _set_memberships(session, account, integration.id, new.groups)
        for arn in new.policies:
            session.add(
                AttachedPolicy(
                    integration_id=integration.id,
                    account_id=account.id,
                    policy_arn=arn,
                    policy_name=arn.rsplit("/", 1)[-1],
                )
            )


def generate_password(
    core: Core, integration: IntegrationRef, *, actor: str, request_id: str | None = None
) -> str:
    """A fresh password that satisfies the account's password policy."""
    return use(core, integration, actor=actor, request_id=request_id).password_rules().generate()


# --- offboarding -----------------------------------------------------------------------------
@dataclass(frozen=True)
class OffboardPlan:
    integration_id: int
    user_name: str
    items: list[PlanItem]
    user_id: str | None = None  # the IAM UserId the plan was read from (what a request pins)

    def to_dict(self) -> dict[str, Any]:
        return {
            "integration_id": self.integration_id,
            "user_name": self.user_name,
            "items": [item.to_dict() for item in self.items],
            "user_id": self.user_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OffboardPlan:
        return cls(
            integration_id=int(data["integration_id"]),
            user_name=str(data["user_name"]),
            items=[PlanItem(**item) for item in data.get("items", [])],
            user_id=data.get("user_id"),
        )


@dataclass(frozen=True)
class OffboardResult:
    integration_id: int
    user_name: str
    already_gone: bool
    steps: list[tuple[str, str]]


def plan_offboard(
    core: Core, integration_ref: IntegrationRef, user_name: str, *, actor: str
) -> OffboardPlan:
    handle = use(core, integration_ref, actor=actor)
    integration = handle.integration
    iam.require_writable(integration, "offboard users")
    iam.validate_username(user_name)
    client = handle.iam
    user = iam.get_user(client, integration, user_name)
    items = offboard_steps.plan_offboard(client, integration, user_name, user=user)
    return OffboardPlan(
        integration_id=integration.id,
        user_name=user_name,
        items=items,
        user_id=iam.user_id_of(user),
    )


def offboard(
    core: Core,
    integration_ref: IntegrationRef,
    user_name: str,
    *,
    actor: str,
    request_id: str | None = None,
    on_step: Callable[[str, str], None] | None = None,
    expected_user_id: str | None = None,
) -> OffboardResult:
    """Cut the user's access, remove everything, delete it, confirm it is gone. Resumable.
    With `expected_user_id`, a user re-created under the same name is refused untouched."""
    handle = use(core, integration_ref, actor=actor, request_id=request_id)
    integration = handle.integration
    iam.require_writable(integration, "offboard users")
    iam.validate_username(user_name)
    client = handle.iam
    steps: list[tuple[str, str]] = []

    def write_audit(batch: list[tuple[str, str]]) -> None:
        with core.sessions.begin() as session:
            for step, status in batch:
                audit.record(
                    session,
                    actor=actor,
                    action="iam.offboard.step",
                    target=user_name,
                    integration=integration.name,
                    outcome="ok" if status == "done" else status,
                    request_id=request_id,
                    detail={"step": step, "status": status},
                )

    # Every step's end is audited, off the AWS path (bot.services.step_reports).
    audited: BackgroundReporter[tuple[str, str]] = BackgroundReporter(
        write_audit, name=f"audit-{user_name[:16]}", threads=core.aws.pools.beside
    )

    def report(step: str, status: str) -> None:
        steps.append((step, status))
        if status != "running":
            audited.report((step, status))
        if on_step is not None:
            on_step(step, status)

    entry = _Audited(core, integration, actor, "iam.offboard", user_name, request_id)
    with entry.attempt(), audited:
        try:
            existed = offboard_steps.offboard_user(
                client,
                integration,
                user_name,
                report,
                expected_user_id=expected_user_id,
                pools=core.aws.pools,
            )
        finally:
            audited.close()
        audited.flush()
    _forget_account(core, integration, user_name)
    entry.done({"already_gone": not existed})
    return OffboardResult(integration.id, user_name, already_gone=not existed, steps=steps)


def _forget_account(core: Core, integration: Integration, user_name: str) -> None:
    with core.sessions.begin() as session:
        session.execute(
            delete(Account).where(
                Account.integration_id == integration.id, Account.user_name == user_name
            )
        )


# --- groups and policies ---------------------------------------------------------------------
def current_groups(
    core: Core, integration: IntegrationRef, user_name: str, *, actor: str
) -> list[str]:
    return user_and_groups(core, integration, user_name, actor=actor)[1]


def user_and_groups(
    core: Core, integration_ref: IntegrationRef, user_name: str, *, actor: str
) -> tuple[dict[str, Any], list[str]]:
    """The IAM user as AWS has it now (inside the prefix; what a request pins) and its groups."""
    handle = use(core, integration_ref, actor=actor)
    iam.validate_username(user_name)
    client = handle.iam
    user = iam.get_user(client, handle.integration, user_name)
    return user, iam.groups_of(client, user_name)


def set_groups(
    core: Core,
    integration_id: IntegrationRef,
    user_name: str,
    groups: Sequence[str],
    *,
    actor: str,
    request_id: str | None = None,
) -> GroupChange:
    """Make the user's groups exactly `groups` (for callers holding a whole wanted list)."""
    for group in groups:
        iam.validate_group_name(group)
    wanted = list(dict.fromkeys(groups))
    return _change_groups(
        core,
        integration_id,
        user_name,
        actor=actor,
        request_id=request_id,
        apply=lambda client, integration: iam.set_groups(client, integration, user_name, wanted),
        stored=lambda _before: wanted,
    )


def apply_group_change(
    core: Core,
    integration_id: IntegrationRef,
    user_name: str,
    *,
    added: Sequence[str],
    removed: Sequence[str],
    expected_user_id: str | None,
    actor: str,
    request_id: str | None = None,
) -> GroupChange:
    """Add and remove exactly these groups (an approved diff), leaving every other membership
    as it is now, for the user pinned by `expected_user_id`."""
    return _change_groups(
        core,
        integration_id,
        user_name,
        actor=actor,
        request_id=request_id,
        apply=lambda client, integration: iam.apply_group_change(
            client,
            integration,
            user_name,
            list(added),
            list(removed),
            expected_user_id=expected_user_id,
        ),
        stored=lambda before: sorted((before | set(added)) - set(removed)),
    )


def _change_groups(
    core: Core,
    integration_id: IntegrationRef,
    user_name: str,
    *,
    actor: str,
    request_id: str | None,
    apply: Callable[[IAMClient, Integration], GroupChange],
    stored: Callable[[set[str]], Sequence[str]],
) -> GroupChange:
    """Run `apply` against IAM, then keep the store's memberships (`stored` of what the store
    had) and the audit log in step; a failure is audited and raised."""
    handle = use(core, integration_id, actor=actor, request_id=request_id)
    integration = handle.integration
    iam.require_writable(integration, "change groups")
    iam.validate_username(user_name)
    audited = _Audited(core, integration, actor, "iam.set_groups", user_name, request_id)
    with audited.attempt():
        change = apply(handle.iam, integration)
    with core.sessions.begin() as session:
        account = _account(session, integration.id, user_name)
        if account is not None:
            before = set(
                session.scalars(
                    select(Group.name)
                    .join(Membership, Membership.group_id == Group.id)
                    .where(Membership.account_id == account.id)
                )
            )
            _set_memberships(session, account, integration.id, stored(before))
    audited.done({"added": change.added, "removed": change.removed})
    return change


def grantable_groups(core: Core, integration_id: int) -> list[str]:
    """The groups of the account as of the last sync (the modal's choices)."""
    with core.sessions() as session:
        names = select(Group.name).where(Group.integration_id == integration_id)
        return list(session.scalars(names.order_by(Group.name)))


@dataclass(frozen=True)
class PolicyRef:
    arn: str
    name: str


def search_policies(
    core: Core, integration_id: int, query: str, limit: int = 100
) -> list[PolicyRef]:
    """Managed policies whose name contains `query` (any case), the account's own first."""
    needle = (query or "").strip().lower()
    statement = select(ManagedPolicy).where(ManagedPolicy.integration_id == integration_id)
    if needle:
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(
            func.lower(ManagedPolicy.name).like(f"%{escaped}%", escape="\\")
        )
    statement = statement.order_by(ManagedPolicy.aws_managed, ManagedPolicy.name).limit(
        max(1, min(limit, 1000))
    )
    with core.sessions() as session:
        return [PolicyRef(arn=p.arn, name=p.name) for p in session.scalars(statement)]


# --- identity --------------------------------------------------------------------------------
def link_slack_user(
    core: Core, integration_ref: IntegrationRef, user_name: str, slack_user_id: str, *, actor: str
) -> None:
    """Link an IAM user to a Slack user: a tag on the IAM user (it survives a re-add) + store."""
    handle = use(core, integration_ref, actor=actor)
    integration = handle.integration
    iam.require_writable(integration, "link users")
    iam.validate_username(user_name)
    iam.validate_slack_user(slack_user_id)
    client = handle.iam
    user = iam.tag_slack_user(client, integration, user_name, slack_user_id)
    with core.sessions.begin() as session:
        account = _account(session, integration.id, user_name)
        if account is None:
            account = Account(
                integration_id=integration.id,
                user_name=user_name,
                user_id=user.get("UserId"),
                arn=user.get("Arn"),
                path=user.get("Path", "/"),
                created_at=user.get("CreateDate"),
                tags={},
            )
            session.add(account)
        account.slack_user_id = slack_user_id
        account.user_id = user.get("UserId") or account.user_id
        account.tags = {**(account.tags or {}), iam.TAG_SLACK_USER: slack_user_id}
    _Audited(core, integration, actor, "iam.link", user_name).done(
        {"slack_user": slack_user_id, "user_id": user.get("UserId")}
    )


def links_made_by_roleup(
    core: Core, slack_user_id: str, accounts: list[tuple[int, str]]
) -> set[tuple[int, str]]:
    """Which of these (integration id, username) accounts RoleUp itself linked to this Slack
    user (onboarding, an invite, `/roleup link`), as its audit log says; the others were linked
    by an IAM tag read at an integration's first sync. The audit log outlives a removed
    integration, so a re-added one's links are still known by integration name and IAM UserId.
    """
    if not accounts:
        return set()
    with core.sessions() as session:
        rows = session.execute(
            select(Account.integration_id, Integration.name, Account.user_name, Account.user_id)
            .join(Integration, Integration.id == Account.integration_id)
            .where(Account.slack_user_id == slack_user_id)
        ).all()
        events = session.execute(
            select(AuditEvent.integration, AuditEvent.target, AuditEvent.detail)
            .where(
                AuditEvent.action.in_(("iam.link", "iam.onboard")),
                AuditEvent.outcome == "ok",
                AuditEvent.target.in_({u for _, u in accounts}),
            )
            .order_by(AuditEvent.id)
        ).all()
    wanted = {(int(i), str(u)): (str(n), uid) for i, n, u, uid in rows}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for integration, target, detail in events:
        if isinstance(detail, dict) and "slack_user" in detail:
            latest[(str(integration), str(target))] = detail
    made = set()
    for key in accounts:
        name, user_id = wanted.get(key, ("", None))
        detail = latest.get((name, key[1]))
        if (
            detail is not None
            and detail.get("slack_user") == slack_user_id
            # Made for this very IAM user, not an earlier one of the same name.
            and (None in (detail.get("user_id"), user_id) or detail.get("user_id") == user_id)
        ):
            made.add(key)
    return made


def accounts_of_slack_user(core: Core, slack_user_id: str) -> list[tuple[int, str]]:
    """Every (integration id, IAM username) linked to this Slack user, across integrations."""
    with core.sessions() as session:
        rows = session.execute(
            select(Account.integration_id, Account.user_name)
            .where(Account.slack_user_id == slack_user_id)
            .order_by(Account.integration_id, Account.user_name)
        )
        return [(int(i), str(n)) for i, n in rows]
