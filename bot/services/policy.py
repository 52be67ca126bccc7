"""Every access decision RoleUp makes, as pure functions over plain values, tested by a table.

Three questions, answered here and nowhere else:
- May this person do this (`can`)? Admins (ROLEUP_ADMINS) manage integrations and read the
  audit; an integration's managers onboard, offboard, change groups and link people; its
  approvers decide its requests; /accounts is for all three. Slack guests and deactivated
  Slack users may do none of it.
- Does this change need an approver, and why (`needs_approval`)? Offboarding, removing an
  integration and every removal always do; grants do when the integration says so; a
  privileged grant always does; an invite's answer always waits for someone to complete it.
- May this person decide this request (`may_decide`)? An approver of every integration it
  touches; never its requester, never the creator of the invite it came from, never the
  person whose own account it gives access to, never a guest or a deactivated user. A
  manager may complete an invite only when the same /onboard would need no approver.
- How many distinct approvers (`needs_approval(...).approvals`, counted by `tally`)? An
  offboarding, an integration's removal and a privileged grant need the largest
  `approvals_required` of the integrations they touch; everything else needs one.
- Must the requester say why (`reason_required`)? When any integration it touches says so.

A managers/approvers entry is a Slack user id (U…/W…) or a Slack user group id (S…); whether
the person is in a user group is asked through `member_of(user_id, usergroup_id)`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

MemberOf = Callable[[str, str], bool]
"""member_of(user_id, usergroup_id): is this Slack user in that Slack user group?"""

ONBOARD = "onboard"
OFFBOARD = "offboard"
SET_GROUPS = "set_groups"
REMOVE_INTEGRATION = "remove_integration"
INVITE_ONBOARD = "invite_onboard"
END_GRANT = "end_grant"  # a time-bound grant ending: at its end, or early by its holder
EXTEND_GRANT = "extend_grant"  # a time-bound grant given a later end: a grant again
BREAKGLASS = "breakglass"  # an approver-less grant of at most 4 h, reviewed afterwards
EXPIRE_ACCOUNT = "expire_account"  # an account onboarded until a date, offboarded at that date
EXTEND_ACCOUNT = "extend_account"  # such an account given a later date: an onboarding again
KINDS = (
    ONBOARD,
    OFFBOARD,
    SET_GROUPS,
    REMOVE_INTEGRATION,
    INVITE_ONBOARD,
    END_GRANT,
    EXTEND_GRANT,
    BREAKGLASS,
    EXPIRE_ACCOUNT,
    EXTEND_ACCOUNT,
)

DEFAULT_PRIVILEGED_POLICIES = ("AdministratorAccess", "IAMFullAccess", "PowerUserAccess")


class Action(StrEnum):
    MANAGE_INTEGRATIONS = "manage_integrations"  # add / remove
    LIST_INTEGRATIONS = "list_integrations"
    SYNC = "sync"
    READ_AUDIT = "read_audit"
    ONBOARD = "onboard"
    OFFBOARD = "offboard"
    CHANGE_GROUPS = "change_groups"
    LINK = "link"
    INVITE = "invite"  # make an invite (its answer is then decided like any onboarding)
    DECIDE = "decide"
    LIST_ACCOUNTS = "list_accounts"
    START_REVIEW = "start_review"  # an access review of an integration: managers and admins


class Standing(StrEnum):
    """What Slack says of a person (users.info)."""

    MEMBER = "member"
    GUEST = "guest"  # is_restricted or is_ultra_restricted
    DEACTIVATED = "deactivated"  # deleted
    UNKNOWN = "unknown"  # users.info could not be read: nothing is allowed on a guess


class Reason(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    APPROVER = "approver"
    NOT_ADMIN = "not_admin"
    NOT_MANAGER = "not_manager"
    NOT_APPROVER = "not_approver"
    NO_ROLE = "no_role"
    NO_INTEGRATION = "no_integration"
    GUEST = "guest"
    DEACTIVATED = "deactivated"
    UNVERIFIED = "unverified"
    REQUESTER = "requester"
    OWN_ACCOUNT = "own_account"
    INVITE_CREATOR = "invite_creator"
    BREAKGLASS_LISTED = "breakglass_listed"
    NOT_BREAKGLASS_LISTED = "not_breakglass_listed"


class Roster(Protocol):
    """What the policy reads of an integration (a storage.models.Integration row and a
    bot.services.records.IntegrationInfo both fit: read-only, so a frozen record does)."""

    @property
    def name(self) -> str: ...
    @property
    def managers(self) -> list[str]: ...
    @property
    def approvers(self) -> list[str]: ...


class ApprovalSettings(Roster, Protocol):
    approvals_channel: str | None
    approve_onboarding: bool
    approve_group_grants: bool
    require_reason: bool
    approvals_required: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason
    who_can_help: tuple[str, ...] = field(default=())
    text: str = ""


ADMIN_ACTIONS = frozenset({Action.MANAGE_INTEGRATIONS, Action.READ_AUDIT})
MANAGER_ACTIONS = frozenset({Action.ONBOARD, Action.OFFBOARD, Action.CHANGE_GROUPS, Action.LINK})
# Managers may also sync and list integrations they manage: both are read-only towards IAM.
SHARED_ACTIONS = frozenset({Action.SYNC, Action.LIST_INTEGRATIONS})
# An admin, or a manager of the integration.
ADMIN_OR_MANAGER_ACTIONS = SHARED_ACTIONS | {Action.INVITE, Action.START_REVIEW}

STANDING_REFUSALS = {
    Standing.GUEST: (Reason.GUEST, "Slack guests can't use RoleUp."),
    Standing.DEACTIVATED: (Reason.DEACTIVATED, "Deactivated Slack accounts can't use RoleUp."),
    Standing.UNKNOWN: (
        Reason.UNVERIFIED,
        "RoleUp could not check your Slack account just now: try again in a minute.",
    ),
}


def is_listed(actor_id: str, entries: Iterable[str], member_of: MemberOf) -> bool:
    """Is the actor one of the entries, directly or through a Slack user group?"""
    for entry in entries:
        if is_usergroup(entry):
            # A user group: only its members count, never someone passing its id as their own.
            if not is_usergroup(actor_id) and member_of(actor_id, entry):
                return True
        elif entry == actor_id:
            return True
    return False


def is_usergroup(entry: str) -> bool:
    """Slack user group ids start with S (users start with U or W)."""
    return entry.startswith("S")


def standing_refusal(standing: Standing) -> Decision | None:
    if standing == Standing.MEMBER:
        return None
    reason, text = STANDING_REFUSALS[standing]
    return Decision(False, reason, text=text)


def can(
    actor_id: str,
    action: Action,
    integration: Roster | None,
    admins: Collection[str],
    member_of: MemberOf,
    standing: Standing,
) -> Decision:
    """May `actor_id` do `action` (on `integration`, for the per-integration actions)?
    `standing` has no default: every caller says what Slack knows of the person."""
    refused = standing_refusal(standing)
    if refused is not None:
        return refused
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
    if action in ADMIN_OR_MANAGER_ACTIONS:
        if is_admin:
            return Decision(True, Reason.ADMIN)
        if manager:
            return Decision(True, Reason.MANAGER)
        return Decision(False, Reason.NOT_MANAGER, tuple(managers) or admin_help)
    if action == Action.DECIDE:
        if is_listed(actor_id, approvers, member_of):
            return Decision(True, Reason.APPROVER)
        return Decision(False, Reason.NOT_APPROVER, tuple(approvers) or admin_help)
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
    Action.INVITE: "send invites",
    Action.DECIDE: "approve or deny requests",
    Action.LIST_ACCOUNTS: "list accounts",
    Action.START_REVIEW: "start access reviews",
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


# --- access reviews ----------------------------------------------------------------------------
def may_review(
    reviewer: str,
    integration: Roster,
    linked_people: Collection[str | None],
    member_of: MemberOf,
    standing: Standing,
) -> Decision:
    """May `reviewer` decide an access-review item of `integration` whose account is linked to
    `linked_people` (as frozen at the start, and as linked now)? Its managers review its
    accounts, never their own; admins start reviews but only review where they manage."""
    refused = standing_refusal(standing)
    if refused is not None:
        return refused
    if not is_listed(reviewer, integration.managers, member_of):
        return Decision(
            False,
            Reason.NOT_MANAGER,
            tuple(integration.managers),
            text=f"Only the managers of integration {integration.name} review its accounts.",
        )
    if reviewer in linked_people:
        return Decision(
            False,
            Reason.OWN_ACCOUNT,
            text="That account is linked to you, so another reviewer decides it.",
        )
    return Decision(True, Reason.MANAGER)


# --- what needs an approver ------------------------------------------------------------------
@dataclass(frozen=True)
class Privileges:
    """What counts as a privileged grant on one integration: its listed managed policies (by
    ARN or by name) and groups, plus every group that has one of those policies attached."""

    policies: frozenset[str] = frozenset(DEFAULT_PRIVILEGED_POLICIES)
    groups: frozenset[str] = frozenset()

    def policy(self, arn: str) -> bool:
        # IAM names are unique whatever their case: so is the match.
        listed = {p.lower() for p in self.policies}
        return arn.lower() in listed or arn.rsplit("/", 1)[-1].lower() in listed

    def group(self, name: str) -> bool:
        return name.lower() in {g.lower() for g in self.groups}


@dataclass(frozen=True)
class Change:
    """What a request would change, as the policy needs to see it."""

    kind: str
    groups_added: tuple[str, ...] = ()
    groups_removed: tuple[str, ...] = ()
    policies_added: tuple[str, ...] = ()
    # Asked by someone who may not change the integration's groups (a grant's holder
    # extending their own access): always needs an approver.
    self_service: bool = False


@dataclass(frozen=True)
class Need:
    """Whether a change needs an approver, and the plain reason shown to everyone."""

    required: bool
    why: str = ""
    approvals: int = 1  # distinct approvers it needs (when required)


MAX_APPROVALS = 3


def quorum_of(integrations: Sequence[ApprovalSettings]) -> int:
    """The largest `approvals_required` among the integrations (1 to MAX_APPROVALS)."""
    wanted = max((int(i.approvals_required or 1) for i in integrations), default=1)
    return min(max(wanted, 1), MAX_APPROVALS)


def needs_approval(
    change: Change, integrations: Sequence[ApprovalSettings], privileges: Privileges
) -> Need:
    """Does `change` on these integrations need an approver? (the rules, in order)"""
    kind = change.kind
    quorum = quorum_of(integrations)
    if kind == OFFBOARD:
        return Need(True, "offboarding always needs an approver", quorum)
    if kind == REMOVE_INTEGRATION:
        return Need(True, "removing an integration always needs an approver", quorum)
    if kind == END_GRANT:
        # Its end was approved with the grant; ending early only takes access away.
        return Need(False, "a time-bound grant ends as it was approved")
    if kind == EXPIRE_ACCOUNT:
        # The date was approved with the account (README, "Expiring accounts").
        return Need(False, "the account's end date was approved with the account")
    if kind == BREAKGLASS:
        # Only ever submitted once `may_break_glass` said yes (and checked again as it runs).
        return Need(False, "break-glass: on the integration's list, reviewed afterwards")
    if kind not in (ONBOARD, INVITE_ONBOARD, SET_GROUPS, EXTEND_GRANT, EXTEND_ACCOUNT):
        raise ValueError(f"unknown request kind {kind!r}")
    privileged = [g for g in change.groups_added if privileges.group(g)]
    privileged += [p.rsplit("/", 1)[-1] for p in change.policies_added if privileges.policy(p)]
    if privileged:
        return Need(True, f"privileged grant: {', '.join(privileged)}", quorum)
    if change.self_service:
        return Need(True, "a person extending their own access needs an approver")
    if change.groups_removed:
        return Need(True, "removal from a group needs an approver")
    # A later end date keeps the account (with its groups and policies) as onboarding made it:
    # the same rules as that onboarding.
    onboarding = (ONBOARD, INVITE_ONBOARD, EXTEND_ACCOUNT)
    if kind in onboarding and any(i.approve_onboarding for i in integrations):
        return Need(True, "this integration wants onboarding approved")
    if change.groups_added and any(i.approve_group_grants for i in integrations):
        return Need(True, "this integration wants group grants approved")
    if kind == INVITE_ONBOARD:
        # The username and password were chosen by the new user: a person completes it.
        return Need(True, "an invite's answer is completed by a manager or an approver")
    return Need(False, "no approver needed")


class BreakGlassRoster(Protocol):
    name: str
    breakglass: list[str]


def may_break_glass(
    actor_id: str, integration: BreakGlassRoster, member_of: MemberOf, standing: Standing
) -> Decision:
    """May `actor_id` give themselves a break-glass grant on `integration`? Only someone on
    its break-glass list (directly or through a user group), never a guest or a deactivated
    account. Whoever else asks is refused outright: break-glass never waits for an approver."""
    refused = standing_refusal(standing)
    if refused is not None:
        return refused
    if is_listed(actor_id, integration.breakglass or [], member_of):
        return Decision(True, Reason.BREAKGLASS_LISTED)
    return Decision(
        False,
        Reason.NOT_BREAKGLASS_LISTED,
        text=f"You are not on the break-glass list of integration {integration.name}.",
    )


def as_onboarding(change: Change) -> Change:
    """The same change asked as /onboard (what a manager completing an invite may do)."""
    return Change(ONBOARD, change.groups_added, change.groups_removed, change.policies_added)


def managers_may_complete(
    change: Change, integrations: Sequence[ApprovalSettings], privileges: Privileges
) -> bool:
    """A manager may complete an invite only when the same /onboard needs no approver."""
    if change.kind != INVITE_ONBOARD:
        return False
    return not needs_approval(as_onboarding(change), integrations, privileges).required


def reason_required(integrations: Sequence[ApprovalSettings], kind: str | None = None) -> bool:
    """Must a request touching these integrations carry a reason? An invite's answer is exempt:
    the invitee is not asked, the reason was required of the invite's creator when it was made
    (and travels with the invite into its request). A grant's end and an account's expiry are
    exempt too: nobody asks for an expiry, and requiring a reason would keep the access for
    good."""
    if kind in (INVITE_ONBOARD, END_GRANT, EXPIRE_ACCOUNT):
        return False
    return any(i.require_reason for i in integrations)


# --- who may decide --------------------------------------------------------------------------
def deciders(
    kind: str,
    integration: ApprovalSettings,
    admins: Collection[str],
    *,
    managers_too: bool = False,
) -> list[str]:
    """Entries (Slack user or user group ids) who may decide a request on this integration."""
    entries = list(integration.approvers)
    if kind == INVITE_ONBOARD and managers_too:
        entries += integration.managers
    if kind == REMOVE_INTEGRATION:
        entries += sorted(admins)
    return _unique(entries)


@dataclass(frozen=True)
class RequestFacts:
    """What the policy reads of a request to say who may decide it."""

    kind: str
    requester: str
    invite_creator: str | None = None
    managers_too: bool = False  # an invite a manager may complete
    # The Slack people linked to the account whose access it gives or keeps: approving it
    # would be granting themselves access.
    beneficiaries: frozenset[str] = frozenset()


def may_decide(
    decider: str,
    request: RequestFacts,
    integrations: Sequence[ApprovalSettings],
    admins: Collection[str],
    member_of: MemberOf,
    standing: Standing,
) -> Decision:
    """May `decider` approve, deny or retry this request? It must be theirs to decide on every
    integration it touches, and never their own or their invite's."""
    refused = standing_refusal(standing)
    if refused is not None:
        return refused
    if decider == request.requester:
        return Decision(
            False,
            Reason.REQUESTER,
            text="You asked for this, so someone else has to approve it.",
        )
    if request.invite_creator and decider == request.invite_creator:
        return Decision(
            False,
            Reason.INVITE_CREATOR,
            text="You created this invite, so someone else has to approve it.",
        )
    if decider in request.beneficiaries:
        return Decision(
            False,
            Reason.OWN_ACCOUNT,
            text="This gives access to your own account, so someone else has to approve it.",
        )
    if not integrations:
        return Decision(
            False, Reason.NO_INTEGRATION, text="This request's integration no longer exists."
        )
    for integration in integrations:
        entries = deciders(request.kind, integration, admins, managers_too=request.managers_too)
        if not is_listed(decider, entries, member_of):
            return Decision(
                False,
                Reason.NOT_APPROVER,
                tuple(entries),
                text=f"Only the approvers of integration {integration.name} can decide "
                "this request.",
            )
    return Decision(True, Reason.APPROVER)


@dataclass(frozen=True)
class Tally:
    """The approvals that count towards a request's quorum, in the order they came."""

    counted: tuple[str, ...]
    required: int

    @property
    def reached(self) -> bool:
        return len(self.counted) >= self.required

    @property
    def missing(self) -> int:
        return max(self.required - len(self.counted), 0)


def tally(approvals: Iterable[str], required: int, request: RequestFacts) -> Tally:
    """Distinct approvers, never the requester, the invite's creator or the person whose own
    access it is (whoever else `may_decide` refuses never gets an approval recorded)."""
    barred = {request.requester, request.invite_creator or "", *request.beneficiaries}
    counted = _unique(a for a in approvals if a and a not in barred)
    return Tally(tuple(counted), max(int(required), 1))


@dataclass(frozen=True)
class Recipients:
    """Where an approval message goes: a channel, or else a DM to each listed person."""

    channels: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.channels and not self.people


def recipients(
    kind: str,
    integrations: Sequence[ApprovalSettings],
    admins: Collection[str],
    *,
    managers_too: bool = False,
    excluded: Collection[str] = (),
) -> Recipients:
    """The approvals channel of each integration; DMs to its deciders where it has none (never
    to people who may not decide it: the requester, the invite's creator)."""
    channels: list[str] = []
    people: list[str] = []
    for integration in integrations:
        if integration.approvals_channel:
            channels.append(integration.approvals_channel)
        else:
            entries = deciders(kind, integration, admins, managers_too=managers_too)
            people.extend(e for e in entries if e not in excluded)
    return Recipients(channels=_unique(channels), people=_unique(people))


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
