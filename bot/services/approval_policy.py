"""Who must approve what, and who may decide: pure functions over data, tested by tables."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

ONBOARD = "onboard"
OFFBOARD = "offboard"
SET_GROUPS = "set_groups"
REMOVE_INTEGRATION = "remove_integration"
INVITE_ONBOARD = "invite_onboard"
KINDS = (ONBOARD, OFFBOARD, SET_GROUPS, REMOVE_INTEGRATION, INVITE_ONBOARD)

MemberOf = Callable[[str, str], bool]
"""member_of(user_id, usergroup_id): is the Slack user in that Slack user group?"""


class ApprovalSettings(Protocol):
    """What the policy reads of an integration (storage.models.Integration fits)."""

    name: str
    managers: list[str]
    approvers: list[str]
    approvals_channel: str | None
    approve_onboarding: bool
    approve_group_grants: bool


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class Recipients:
    """Where an approval message goes: a channel, or else a DM to each listed person."""

    channels: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.channels and not self.people


def approval_required(
    kind: str, integrations: Sequence[ApprovalSettings], payload: dict[str, Any]
) -> bool:
    """Destructive requests always wait for an approver; grants only if an integration says so."""
    if kind in (OFFBOARD, REMOVE_INTEGRATION, INVITE_ONBOARD):
        # An invite's username and password were chosen by the new user: a person checks them.
        return True
    if kind == ONBOARD:
        return any(i.approve_onboarding for i in integrations)
    if kind == SET_GROUPS:
        if payload.get("removed"):
            return True
        return bool(payload.get("added")) and any(i.approve_group_grants for i in integrations)
    raise ValueError(f"unknown request kind {kind!r}")


def deciders(kind: str, integration: ApprovalSettings, admins: Collection[str]) -> list[str]:
    """Entries (Slack user or user group ids) who may decide a request on this integration."""
    entries = list(integration.approvers)
    if kind == INVITE_ONBOARD:
        # "waits as pending until a manager or approver completes it" (PRODUCT.md, Public link)
        entries += integration.managers
    if kind == REMOVE_INTEGRATION:
        entries += sorted(admins)
    return _unique(entries)


def may_decide(
    *,
    approver: str,
    requester: str,
    kind: str,
    integrations: Sequence[ApprovalSettings],
    admins: Collection[str],
    member_of: MemberOf | None = None,
) -> Decision:
    """May `approver` approve, deny or retry this request? It must be theirs to decide on every
    integration it touches, and never their own."""
    if approver == requester:
        return Decision(False, "You asked for this, so someone else has to approve it.")
    if not integrations:
        return Decision(False, "This request's integration no longer exists.")
    for integration in integrations:
        if not _listed(approver, deciders(kind, integration, admins), member_of):
            return Decision(
                False,
                f"Only the approvers of integration {integration.name} can decide this request.",
            )
    return Decision(True)


def recipients(
    kind: str, integrations: Sequence[ApprovalSettings], admins: Collection[str]
) -> Recipients:
    """The approvals channel of each integration; DMs to its deciders where it has none."""
    channels: list[str] = []
    people: list[str] = []
    for integration in integrations:
        if integration.approvals_channel:
            channels.append(integration.approvals_channel)
        else:
            people.extend(deciders(kind, integration, admins))
    return Recipients(channels=_unique(channels), people=_unique(people))


def _listed(user: str, entries: Iterable[str], member_of: MemberOf | None) -> bool:
    for entry in entries:
        if entry == user:
            return True
        if is_usergroup(entry) and member_of is not None and member_of(user, entry):
            return True
    return False


def is_usergroup(entry: str) -> bool:
    """Slack user group ids start with S (users start with U or W)."""
    return entry.startswith("S")


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
