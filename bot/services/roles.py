"""Who may do what in RoleUp: one pure function over data, tested by a table.

- Admins (ROLEUP_ADMINS) manage integrations (add, remove, sync, list) and read the audit.
- An integration's managers onboard, offboard, change groups and link people to its accounts.
- Its approvers decide its requests (approve, deny, retry).
- /accounts is for all three.
A managers/approvers entry is a Slack user id (U…/W…) or a Slack user group id (S…); whether
the actor is in a user group is asked through `member_of(user_id, usergroup_id)`, which the
handler answers from usergroups.users.list.
A refusal says why and names who can help, so nobody is left at a dead end.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

MemberOf = Callable[[str, str], bool]
"""member_of(user_id, usergroup_id): is this Slack user in that Slack user group?"""


class Action(StrEnum):
    MANAGE_INTEGRATIONS = "manage_integrations"  # add / remove
    LIST_INTEGRATIONS = "list_integrations"
    SYNC = "sync"
    READ_AUDIT = "read_audit"
    ONBOARD = "onboard"
    OFFBOARD = "offboard"
    CHANGE_GROUPS = "change_groups"
    LINK = "link"
    DECIDE = "decide"
    LIST_ACCOUNTS = "list_accounts"


class Reason(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    APPROVER = "approver"
    NOT_ADMIN = "not_admin"
    NOT_MANAGER = "not_manager"
    NOT_APPROVER = "not_approver"
    NO_ROLE = "no_role"
    NO_INTEGRATION = "no_integration"


class Roster(Protocol):
    """What the policy reads of an integration (storage.models.Integration fits)."""

    name: str
    managers: list[str]
    approvers: list[str]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason
    who_can_help: tuple[str, ...] = field(default=())


ADMIN_ACTIONS = frozenset({Action.MANAGE_INTEGRATIONS, Action.READ_AUDIT})
MANAGER_ACTIONS = frozenset({Action.ONBOARD, Action.OFFBOARD, Action.CHANGE_GROUPS, Action.LINK})
# Managers may also sync and list integrations they manage: both are read-only towards IAM.
SHARED_ACTIONS = frozenset({Action.SYNC, Action.LIST_INTEGRATIONS})


def is_listed(actor_id: str, entries: Sequence[str], member_of: MemberOf) -> bool:
    """Is the actor one of the entries, directly or through a Slack user group?"""
    for entry in entries:
        if entry.startswith("S"):
            # A user group: only its members count, never someone passing its id as their own.
            if not actor_id.startswith("S") and member_of(actor_id, entry):
                return True
        elif entry == actor_id:
            return True
    return False


def can(
    actor_id: str,
    action: Action,
    integration: Roster | None,
    admins: Collection[str],
    member_of: MemberOf,
) -> Decision:
    """May `actor_id` do `action` (on `integration`, for the per-integration actions)?"""
    admin_help = tuple(sorted(admins))
    is_admin = actor_id in admins
    if action in ADMIN_ACTIONS:
        if is_admin:
            return Decision(True, Reason.ADMIN)
        return Decision(False, Reason.NOT_ADMIN, admin_help)
    if integration is None:
        if action in SHARED_ACTIONS and is_admin:
            return Decision(True, Reason.ADMIN)
        return Decision(False, Reason.NO_INTEGRATION, admin_help)
    managers, approvers = list(integration.managers), list(integration.approvers)
    manager = is_listed(actor_id, managers, member_of)
    if action in MANAGER_ACTIONS:
        if manager:
            return Decision(True, Reason.MANAGER)
        return Decision(False, Reason.NOT_MANAGER, tuple(managers) or admin_help)
    if action == Action.DECIDE:
        if is_listed(actor_id, approvers, member_of):
            return Decision(True, Reason.APPROVER)
        return Decision(False, Reason.NOT_APPROVER, tuple(approvers) or admin_help)
    if action in SHARED_ACTIONS:
        if is_admin:
            return Decision(True, Reason.ADMIN)
        if manager:
            return Decision(True, Reason.MANAGER)
        return Decision(False, Reason.NOT_MANAGER, tuple(managers) or admin_help)
    # LIST_ACCOUNTS: admins, managers and approvers.
    if is_admin:
        return Decision(True, Reason.ADMIN)
    if manager:
        return Decision(True, Reason.MANAGER)
    if is_listed(actor_id, approvers, member_of):
        return Decision(True, Reason.APPROVER)
    return Decision(False, Reason.NO_ROLE, tuple(managers) or admin_help)


WHAT = {
    Action.MANAGE_INTEGRATIONS: "manage integrations",
    Action.LIST_INTEGRATIONS: "list integrations",
    Action.SYNC: "sync",
    Action.READ_AUDIT: "read the audit log",
    Action.ONBOARD: "onboard people",
    Action.OFFBOARD: "offboard people",
    Action.CHANGE_GROUPS: "change groups",
    Action.LINK: "link Slack users to accounts",
    Action.DECIDE: "approve or deny requests",
    Action.LIST_ACCOUNTS: "list accounts",
}
WHO = {
    Reason.NOT_ADMIN: "RoleUp admins",
    Reason.NOT_MANAGER: "its managers",
    Reason.NOT_APPROVER: "its approvers",
    Reason.NO_ROLE: "its managers, approvers and RoleUp admins",
    Reason.NO_INTEGRATION: "RoleUp admins",
}


def no_help(_user: str, _group: str) -> bool:
    """A member_of for callers that know the actor is in no user group."""
    return False
