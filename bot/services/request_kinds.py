"""The kinds of request RoleUp runs, each one object: its payload, how it reads, what it targets,
what it changes (for the approval policy) and how it is performed.

A payload carries the change itself, never a wanted end state: groups to add and to remove,
and the IAM UserId of the target as it was when the request was made. Performing a request
applies exactly that change to exactly that user; a change made meanwhile outside RoleUp is left
alone, and a target that is gone or was replaced fails with a plain reason.

Payloads are stored as JSON in the request row; `load` ignores the keys the state machine adds
(the posted messages, the approval reason).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from bot.logging_setup import SecretRegistryFull, secret_in_flight
from bot.services import account_expiry, breakglass, grants, integrations, lifecycle
from bot.services.errors import InvalidInput, RoleUpError, TargetIsRoleUp, TargetReplaced
from bot.services.integration_handle import IntegrationHandle, IntegrationRef
from bot.services.policy import (
    BREAKGLASS,
    END_GRANT,
    EXPIRE_ACCOUNT,
    EXTEND_ACCOUNT,
    EXTEND_GRANT,
    INVITE_ONBOARD,
    OFFBOARD,
    ONBOARD,
    REMOVE_INTEGRATION,
    SET_GROUPS,
    Change,
)
from storage.models import utcnow

if TYPE_CHECKING:
    from bot.services.container import Core

StepCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class AccessFor:
    """The account whose access a request gives or keeps, and the Slack person it was asked
    for (when the payload names one): that person never decides it (bot.services.policy)."""

    integration_id: int
    user_name: str
    slack_user_id: str | None = None


@dataclass(frozen=True)
class OnboardPayload:
    integration_id: int
    integration: str
    username: str
    groups: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    slack_user_id: str | None = None
    created_by: str = ""
    # Set when the request answers an invite: who made the invite never decides it.
    invite_id: int | None = None
    invite_creator: str | None = None
    # How long the groups last (bot.services.grants.Term); policies are always permanent.
    for_seconds: int | None = None
    until: str | None = None
    # When the account is offboarded by itself (00:00 UTC of a date, ISO); None: never.
    account_expires: str | None = None

    @property
    def term(self) -> grants.Term:
        return grants.Term.load(self.for_seconds, self.until)

    @property
    def expires_at(self) -> datetime | None:
        return account_expiry.load(self.account_expires)


@dataclass(frozen=True)
class OffboardAccount:
    integration_id: int
    integration: str
    user_name: str
    user_id: str | None = None  # the pinned IAM UserId
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.integration}/{self.user_name}"


@dataclass(frozen=True)
class OffboardPayload:
    target: str  # what was asked for: an IAM username or a Slack mention
    accounts: list[OffboardAccount]
    # Linked accounts in read-only integrations, shown as "not touched (read-only)".
    read_only: list[str] = field(default_factory=list)
    # Accounts included because an IAM tag (read at a first sync) links them to the person,
    # not a link RoleUp made: the approver is told to check them.
    tag_links: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SetGroupsPayload:
    integration_id: int
    integration: str
    user_name: str
    user_id: str | None = None  # the pinned IAM UserId
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # How long the added groups last (bot.services.grants.Term); neither means permanent.
    for_seconds: int | None = None
    until: str | None = None

    @property
    def term(self) -> grants.Term:
        return grants.Term.load(self.for_seconds, self.until)


@dataclass(frozen=True)
class EndGrantPayload:
    """Remove exactly the membership one time-bound grant gave."""

    grant_id: int
    integration_id: int
    integration: str
    user_name: str
    group: str
    user_id: str | None = None
    reason: str = grants.EXPIRED
    breakglass: bool = False  # its end is flagged in the audit as break-glass too


@dataclass(frozen=True)
class ExtendGrantPayload:
    """Give one active grant a later end (counted from when it runs, or until a moment)."""

    grant_id: int
    integration_id: int
    integration: str
    user_name: str
    group: str
    for_seconds: int | None = None
    until: str | None = None
    # Asked by the holder (or by someone who may not change the integration's groups).
    self_service: bool = False
    holder: str | None = None  # the grant's person when it was asked

    @property
    def term(self) -> grants.Term:
        return grants.Term.load(self.for_seconds, self.until)


@dataclass(frozen=True)
class BreakGlassPayload:
    """Add one group to the requester's own linked account, for at most 4 hours, with no
    approver: the requester is on the integration's break-glass list."""

    integration_id: int
    integration: str
    user_name: str
    group: str
    for_seconds: int
    reason: str
    user_id: str | None = None  # the pinned IAM UserId

    @property
    def term(self) -> grants.Term:
        return grants.Term(seconds=self.for_seconds)

    @property
    def removed(self) -> list[str]:
        return []


@dataclass(frozen=True)
class RemoveIntegrationPayload:
    integration_id: int
    integration: str


@dataclass(frozen=True)
class ExpireAccountPayload:
    """Offboard an account whose approved end date has come (no approver: it was approved
    with the account), with the offboarding's own steps and checklist."""

    expiry_id: int
    integration_id: int
    integration: str
    user_name: str
    user_id: str | None = None  # the pinned IAM UserId
    expires: str = ""  # the date, as approved (ISO)
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.integration}/{self.user_name}"


@dataclass(frozen=True)
class ExtendAccountPayload:
    """Give an expiring account a later date: the same rules as onboarding it."""

    expiry_id: int
    integration_id: int
    integration: str
    user_name: str
    expires: str  # the new date (ISO)
    was: str = ""  # the date it had when asked (ISO)
    # What the account holds now (from the store): extending it is judged like onboarding it
    # with these, so a privileged account needs an approver to live longer.
    groups: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    # Asked by the account's own person (or someone who may not onboard there).
    self_service: bool = False
    holder: str | None = None  # the account's person when it was asked


Payload = (
    OnboardPayload
    | OffboardPayload
    | SetGroupsPayload
    | RemoveIntegrationPayload
    | EndGrantPayload
    | ExtendGrantPayload
    | BreakGlassPayload
    | ExpireAccountPayload
    | ExtendAccountPayload
)
P = TypeVar(
    "P",
    OnboardPayload,
    OffboardPayload,
    SetGroupsPayload,
    RemoveIntegrationPayload,
    EndGrantPayload,
    ExtendGrantPayload,
    BreakGlassPayload,
    ExpireAccountPayload,
    ExtendAccountPayload,
)


@dataclass
class RunContext:
    """What a running request may use of the state machine: per-account step reporting for the
    offboarding checklist, and whether an account already finished on an earlier run."""

    request_id: str
    actor: str
    requester: str
    on_step: Callable[[str], StepCallback]
    finished: Callable[[str], bool]
    mark_finished: Callable[[str], None]
    secret: Callable[[], str]
    #: The integration opened for this run (its actor and request), once per integration.
    handle: Callable[[int], IntegrationHandle]


# The payloads of the kinds about one account, which they target by its user name.
A = TypeVar(
    "A",
    SetGroupsPayload,
    EndGrantPayload,
    ExtendGrantPayload,
    BreakGlassPayload,
    ExtendAccountPayload,
)


class RequestKind(Generic[P]):
    """One kind of request: subclasses name their payload type and fill in the behaviour."""

    name: ClassVar[str]
    payload_type: type[P]

    def load(self, data: dict[str, Any]) -> P:
        known = {f.name for f in dataclasses.fields(self.payload_type)}
        try:
            return self.payload_type(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise RoleUpError(f"This {self.name} request is damaged: make a new one.") from exc

    def dump(self, payload: P) -> dict[str, Any]:
        return dataclasses.asdict(payload)

    def integration_ids(self, payload: P) -> list[int]:
        if isinstance(payload, OffboardPayload):
            return list(dict.fromkeys(int(a.integration_id) for a in payload.accounts))
        return [payload.integration_id]

    def integration_refs(self, payload: P) -> list[tuple[int, str]]:
        """(id, name) of each integration the request was made for, as the payload pins them."""
        if isinstance(payload, OffboardPayload):
            return list(
                dict.fromkeys((int(a.integration_id), a.integration) for a in payload.accounts)
            )
        return [(int(payload.integration_id), payload.integration)]

    def row_integration_id(self, payload: P) -> int | None:
        """The request row's foreign key (None when removing the integration must not cascade
        the request away, or when it spans several integrations)."""
        ids = self.integration_ids(payload)
        return ids[0] if len(ids) == 1 else None

    def invite_creator(self, payload: P) -> str | None:
        return None

    def audit_detail(self, payload: P) -> dict[str, Any]:
        """What of the change the audit's request.created event names besides its kind."""
        return {}

    def access_for(self, payload: P) -> AccessFor | None:
        """The account this request gives (or keeps) access to; None when it only takes
        access away or gives none."""
        return None

    # Posted to the approvals channel (with its checklist) even when it needs no approver.
    announced: ClassVar[bool] = False

    def describe(self, payload: P) -> str:
        raise NotImplementedError

    def target(self, payload: P) -> str:
        raise NotImplementedError

    def change(self, payload: P) -> Change:
        """What the approval policy weighs; by default the kind alone (a request that only
        takes access away, or gives none)."""
        return Change(self.name)

    def perform(self, core: Core, payload: P, run: RunContext) -> str:
        raise NotImplementedError


class OneAccountKind(RequestKind[A]):
    """A kind about one existing account: it targets the account's user name."""

    def target(self, payload: A) -> str:
        return payload.user_name


class Onboard(RequestKind[OnboardPayload]):
    name = ONBOARD
    payload_type = OnboardPayload

    def describe(self, payload: OnboardPayload) -> str:
        term = payload.term
        lasting = "" if term.permanent or not payload.groups else f", groups {term.describe()}"
        expires = payload.expires_at
        if expires is not None:
            lasting += f", account expires {account_expiry.shown(expires)}"
        return f"to onboard {payload.username} in {payload.integration}{lasting}"

    def audit_detail(self, payload: OnboardPayload) -> dict[str, Any]:
        expires = payload.expires_at
        return {"account_expires": account_expiry.shown(expires)} if expires else {}

    def target(self, payload: OnboardPayload) -> str:
        return payload.username

    def access_for(self, payload: OnboardPayload) -> AccessFor | None:
        return AccessFor(payload.integration_id, payload.username, payload.slack_user_id)

    def change(self, payload: OnboardPayload) -> Change:
        return Change(
            self.name,
            groups_added=tuple(payload.groups),
            policies_added=tuple(payload.policies),
        )

    def perform(self, core: Core, payload: OnboardPayload, run: RunContext) -> str:
        expires = payload.expires_at
        if expires is not None and expires <= utcnow():
            # Approved too late: an account that would be offboarded at once is not made.
            raise InvalidInput(
                f"The account was asked to expire on {account_expiry.shown(expires)}, which "
                "has come: ask again with a later date."
            )
        spec = lifecycle.OnboardSpec(
            username=payload.username,
            password=run.secret(),
            groups=list(payload.groups),
            policies=list(payload.policies),
            slack_user_id=payload.slack_user_id,
            created_by=payload.created_by or run.actor,
        )
        target = grants.GrantTarget(
            payload.integration_id,
            payload.username,
            None,  # pinned once the user exists
            run.requester,
            run.request_id,
            slack_user_id=payload.slack_user_id,
        )
        opened = grants.open_for(core, target, payload.groups, payload.term)
        try:
            # Masked in every log line while AWS is asked to set it; a full registry fails the
            # request (Retry works) rather than let the password go by unmasked.
            with secret_in_flight(spec.password):
                lifecycle.onboard(
                    core,
                    run.handle(payload.integration_id),
                    spec,
                    actor=run.actor,
                    request_id=run.request_id,
                )
        except BaseException as exc:
            with core.sessions.begin() as session:
                grants.close(session, opened.values(), grants.NOT_GRANTED)
            if isinstance(exc, SecretRegistryFull):
                raise RoleUpError(
                    "RoleUp is too busy to hold a password now: Retry soon."
                ) from None
            raise
        grants.pin(core, opened, payload.integration_id, payload.username)
        lasting = f" (groups {payload.term.describe()})" if opened else ""
        if expires is not None:
            new = account_expiry.NewExpiry(
                payload.integration_id, payload.username, run.requester, run.request_id, expires
            )
            account_expiry.schedule(core, new)
            lasting += f"; it expires on {account_expiry.shown(expires)} (00:00 UTC)"
        return f"IAM user {payload.username} created in {payload.integration}{lasting}."


class InviteOnboard(Onboard):
    name = INVITE_ONBOARD

    def invite_creator(self, payload: OnboardPayload) -> str | None:
        return payload.invite_creator or payload.created_by or None


class Offboard(RequestKind[OffboardPayload]):
    name = OFFBOARD
    payload_type = OffboardPayload

    def load(self, data: dict[str, Any]) -> OffboardPayload:
        known = {f.name for f in dataclasses.fields(OffboardAccount)}
        try:
            accounts = [
                OffboardAccount(**{k: v for k, v in a.items() if k in known})
                for a in data.get("accounts") or []
            ]
            return OffboardPayload(
                target=str(data.get("target", "")),
                accounts=accounts,
                read_only=list(data.get("read_only") or []),
                tag_links=list(data.get("tag_links") or []),
            )
        except (TypeError, AttributeError) as exc:
            raise RoleUpError("This offboarding request is damaged: make a new one.") from exc

    def integration_ids(self, payload: OffboardPayload) -> list[int]:
        return list(dict.fromkeys(int(a.integration_id) for a in payload.accounts))

    def describe(self, payload: OffboardPayload) -> str:
        return f"to offboard {', '.join(a.key for a in payload.accounts)}"

    def target(self, payload: OffboardPayload) -> str:
        return ", ".join(a.key for a in payload.accounts)

    def perform(self, core: Core, payload: OffboardPayload, run: RunContext) -> str:
        done: list[str] = []
        for account in payload.accounts:
            if not run.finished(account.key):
                handle = run.handle(int(account.integration_id))
                refuse_own_principal(core, handle, account.user_name)
                lifecycle.offboard(
                    core,
                    handle,
                    account.user_name,
                    actor=run.actor,
                    request_id=run.request_id,
                    on_step=run.on_step(account.key),
                    expected_user_id=account.user_id,
                )
                with core.sessions.begin() as session:
                    account_expiry.close_for_account(
                        session,
                        int(account.integration_id),
                        account.user_name,
                        account_expiry.OFFBOARDED,
                        request_id=run.request_id,
                    )
                run.mark_finished(account.key)
            done.append(account.key)
        return f"Offboarded {', '.join(done)}: AWS confirms the user is gone."


class SetGroups(OneAccountKind[SetGroupsPayload]):
    name = SET_GROUPS
    payload_type = SetGroupsPayload

    def describe(self, payload: SetGroupsPayload) -> str:
        term = payload.term
        lasting = "" if term.permanent or not payload.added else f" ({term.describe()})"
        return f"to change the groups of {payload.user_name} in {payload.integration}{lasting}"

    def access_for(self, payload: SetGroupsPayload) -> AccessFor | None:
        if not payload.added:
            return None
        return AccessFor(payload.integration_id, payload.user_name)

    def change(self, payload: SetGroupsPayload) -> Change:
        return Change(
            self.name,
            groups_added=tuple(payload.added),
            groups_removed=tuple(payload.removed),
        )

    def perform(self, core: Core, payload: SetGroupsPayload, run: RunContext) -> str:
        change, until, _ = _change_with_grants(
            core, run, payload, list(payload.added), list(payload.removed)
        )
        added = ", ".join(change.added) or "none"
        removed = ", ".join(change.removed) or "none"
        lasting = f" ({until})" if until and change.added else ""
        return f"Groups of {payload.user_name} changed: added {added}{lasting}; removed {removed}."


class RemoveIntegration(RequestKind[RemoveIntegrationPayload]):
    name = REMOVE_INTEGRATION
    payload_type = RemoveIntegrationPayload

    def row_integration_id(self, payload: RemoveIntegrationPayload) -> int | None:
        # Kept in the payload, not the foreign key: removing the integration must not cascade
        # away the request that removes it.
        return None

    def describe(self, payload: RemoveIntegrationPayload) -> str:
        return f"to remove integration {payload.integration}"

    def target(self, payload: RemoveIntegrationPayload) -> str:
        return payload.integration

    def perform(self, core: Core, payload: RemoveIntegrationPayload, run: RunContext) -> str:
        # Removal goes by name: a name now worn by a later integration is not the one approved.
        lifecycle.require_same_integration(core, payload.integration_id, payload.integration)
        integrations.remove_integration(
            core, payload.integration, actor=run.actor, request_id=run.request_id
        )
        return f"Integration {payload.integration} removed, with all its data and its key."


class EndGrant(OneAccountKind[EndGrantPayload]):
    name = END_GRANT
    payload_type = EndGrantPayload

    def describe(self, payload: EndGrantPayload) -> str:
        return (
            f"to end the grant of {payload.group} to {payload.user_name} in "
            f"{payload.integration} ({payload.reason})"
        )

    def perform(self, core: Core, payload: EndGrantPayload, run: RunContext) -> str:
        text = grants.remove_granted(core, payload, actor=run.actor, request_id=run.request_id)
        if payload.breakglass:
            breakglass.record_ended(
                core, payload.grant_id, actor=run.actor, request_id=run.request_id
            )
        return text


class ExtendGrant(OneAccountKind[ExtendGrantPayload]):
    name = EXTEND_GRANT
    payload_type = ExtendGrantPayload

    def describe(self, payload: ExtendGrantPayload) -> str:
        return (
            f"to extend {payload.group} of {payload.user_name} in {payload.integration} "
            f"({payload.term.describe()})"
        )

    def access_for(self, payload: ExtendGrantPayload) -> AccessFor | None:
        return AccessFor(payload.integration_id, payload.user_name, payload.holder)

    def change(self, payload: ExtendGrantPayload) -> Change:
        # A later end is a grant again: the same rules as adding the group.
        return Change(self.name, groups_added=(payload.group,), self_service=payload.self_service)

    def perform(self, core: Core, payload: ExtendGrantPayload, run: RunContext) -> str:
        ends = grants.extend(core, payload.grant_id, payload.term, request_id=run.request_id)
        return (
            f"{payload.group} of {payload.user_name} in {payload.integration} now lasts "
            f"until {grants.shown(ends)}."
        )


class BreakGlass(OneAccountKind[BreakGlassPayload]):
    name = BREAKGLASS
    payload_type = BreakGlassPayload

    def describe(self, payload: BreakGlassPayload) -> str:
        return (
            f"break-glass: {payload.group} for {payload.user_name} in {payload.integration} "
            f"({payload.term.describe()})"
        )

    def change(self, payload: BreakGlassPayload) -> Change:
        return Change(self.name, groups_added=(payload.group,))

    def perform(self, core: Core, payload: BreakGlassPayload, run: RunContext) -> str:
        # Checked again as it runs: the list may have changed since the command was typed.
        breakglass.require_listed(core, run.requester, payload.integration_id)
        change, until, opened = _change_with_grants(
            core,
            run,
            payload,
            [payload.group],
            [],
            slack_user_id=run.requester,
            breakglass=True,
            reason=payload.reason,
        )
        if not change.added:
            return (
                f"{payload.user_name} is already in {payload.group} in {payload.integration}: "
                "nothing was granted."
            )
        breakglass.record_granted(core, opened[payload.group], request_id=run.request_id)
        return (
            f"Break-glass: {payload.group} added to {payload.user_name} in "
            f"{payload.integration} ({until})."
        )


class ExpireAccount(RequestKind[ExpireAccountPayload]):
    name = EXPIRE_ACCOUNT
    payload_type = ExpireAccountPayload
    announced = True

    def describe(self, payload: ExpireAccountPayload) -> str:
        day = account_expiry.load(payload.expires)
        when = f" (expired {account_expiry.shown(day)})" if day else ""
        return f"to offboard {payload.key}{when}"

    def target(self, payload: ExpireAccountPayload) -> str:
        return payload.key

    def perform(self, core: Core, payload: ExpireAccountPayload, run: RunContext) -> str:
        """The ordinary offboarding (resumable, step by step), then the expiry ends."""
        reason = account_expiry.EXPIRED
        if not run.finished(payload.key):
            refuse_own_principal(core, payload.integration_id, payload.user_name)
            try:
                result = lifecycle.offboard(
                    core,
                    payload.integration_id,
                    payload.user_name,
                    actor=run.actor,
                    request_id=run.request_id,
                    on_step=run.on_step(payload.key),
                    expected_user_id=payload.user_id,
                )
                if result.already_gone:
                    reason = account_expiry.DELETED_OUTSIDE
            except TargetReplaced:
                reason = account_expiry.REPLACED_OUTSIDE
            run.mark_finished(payload.key)
        with core.sessions.begin() as session:
            account_expiry.close(session, payload.expiry_id, reason, request_id=run.request_id)
        if reason == account_expiry.REPLACED_OUTSIDE:
            return (
                f"{payload.key} was deleted and re-created outside RoleUp: the new account was "
                "left alone."
            )
        if reason == account_expiry.DELETED_OUTSIDE:
            return f"{payload.key} had already been deleted outside RoleUp."
        return f"Offboarded {payload.key} at its expiry date: AWS confirms the user is gone."


class ExtendAccount(OneAccountKind[ExtendAccountPayload]):
    name = EXTEND_ACCOUNT
    payload_type = ExtendAccountPayload

    def describe(self, payload: ExtendAccountPayload) -> str:
        day = account_expiry.load(payload.expires)
        until = account_expiry.shown(day) if day else "?"
        return f"to keep {payload.user_name} in {payload.integration} until {until}"

    def access_for(self, payload: ExtendAccountPayload) -> AccessFor | None:
        return AccessFor(payload.integration_id, payload.user_name, payload.holder)

    def audit_detail(self, payload: ExtendAccountPayload) -> dict[str, Any]:
        day = account_expiry.load(payload.expires)
        return {"account_expires": account_expiry.shown(day)} if day else {}

    def change(self, payload: ExtendAccountPayload) -> Change:
        return Change(
            self.name,
            groups_added=tuple(payload.groups),
            policies_added=tuple(payload.policies),
            self_service=payload.self_service,
        )

    def perform(self, core: Core, payload: ExtendAccountPayload, run: RunContext) -> str:
        day = account_expiry.load(payload.expires)
        if day is None:
            raise RoleUpError("This extension request is damaged: make a new one.")
        account_expiry.extend(core, payload.expiry_id, day, request_id=run.request_id)
        return (
            f"{payload.user_name} in {payload.integration} now expires on "
            f"{account_expiry.shown(day)} (00:00 UTC)."
        )


KINDS: dict[str, RequestKind[Any]] = {
    kind.name: kind
    for kind in (
        Onboard(),
        InviteOnboard(),
        Offboard(),
        SetGroups(),
        RemoveIntegration(),
        EndGrant(),
        ExtendGrant(),
        BreakGlass(),
        ExpireAccount(),
        ExtendAccount(),
    )
}
BY_PAYLOAD: dict[type[Any], RequestKind[Any]] = {
    OffboardPayload: KINDS[OFFBOARD],
    SetGroupsPayload: KINDS[SET_GROUPS],
    RemoveIntegrationPayload: KINDS[REMOVE_INTEGRATION],
    EndGrantPayload: KINDS[END_GRANT],
    ExtendGrantPayload: KINDS[EXTEND_GRANT],
    BreakGlassPayload: KINDS[BREAKGLASS],
    ExpireAccountPayload: KINDS[EXPIRE_ACCOUNT],
    ExtendAccountPayload: KINDS[EXTEND_ACCOUNT],
}


def kind_of(name: str) -> RequestKind[Any]:
    found = KINDS.get(name)
    if found is None:
        raise RoleUpError(f"Unknown request kind {name!r}.")
    return found


def kind_for(payload: Payload) -> RequestKind[Any]:
    """The kind a payload belongs to (an onboarding with an invite id answers an invite)."""
    if isinstance(payload, OnboardPayload):
        return KINDS[INVITE_ONBOARD if payload.invite_id is not None else ONBOARD]
    return BY_PAYLOAD[type(payload)]


def _change_with_grants(
    core: Core,
    run: RunContext,
    payload: SetGroupsPayload | BreakGlassPayload,
    added: list[str],
    removed: list[str],
    *,
    slack_user_id: str | None = None,
    breakglass: bool = False,
    reason: str | None = None,
) -> tuple[lifecycle.GroupChange, str | None, dict[str, int]]:
    """Change the account's groups with the grants of those added (for a while): the change,
    how long they last, and the grants by group. The grants are written before IAM is touched:
    a crash in between leaves a grant without its membership, never a membership nobody will
    remove."""
    handle = run.handle(payload.integration_id)
    refuse_own_principal(core, handle, payload.user_name)
    target = grants.GrantTarget(
        payload.integration_id,
        payload.user_name,
        payload.user_id,
        run.requester,
        run.request_id,
        slack_user_id=slack_user_id,
    )
    opened = grants.open_for(
        core, target, added, payload.term, breakglass=breakglass, reason=reason
    )
    try:
        change = lifecycle.apply_group_change(
            core,
            handle,
            payload.user_name,
            added=added,
            removed=removed,
            expected_user_id=payload.user_id,
            actor=run.actor,
            request_id=run.request_id,
        )
    except BaseException:
        grants.settle(core, payload, opened, granted=None, request_id=run.request_id)
        raise
    until = grants.settle(core, payload, opened, granted=change.added, request_id=run.request_id)
    return change, until, opened


def refuse_own_principal(core: Core, integration_ref: IntegrationRef, user_name: str) -> None:
    """RoleUp never offboards or regroups the IAM user whose key it holds (its own principal),
    whatever the store says: the check reads the integration's recorded caller ARN."""
    integration = (
        integration_ref.integration
        if isinstance(integration_ref, IntegrationHandle)
        else lifecycle.load_integration(core, integration_ref)
    )
    if is_own_principal(integration.principal_arn, user_name):
        raise TargetIsRoleUp(
            f"{user_name} is the IAM user RoleUp itself signs in as for {integration.name}: "
            "RoleUp never offboards or regroups its own principal. Do it in the AWS console."
        )


def is_own_principal(principal_arn: str | None, user_name: str) -> bool:
    """Is `user_name` the IAM user of `principal_arn` (arn:aws:iam::ACCOUNT:user/path/NAME)?
    IAM user names are unique in an account whatever their path or case."""
    if not principal_arn or ":user/" not in principal_arn:
        return False
    own = principal_arn.rsplit("/", 1)[-1]
    return own.lower() == user_name.strip().lower()


__all__ = [
    "KINDS",
    "AccessFor",
    "BreakGlass",
    "BreakGlassPayload",
    "EndGrant",
    "EndGrantPayload",
    "ExpireAccount",
    "ExpireAccountPayload",
    "ExtendAccount",
    "ExtendAccountPayload",
    "ExtendGrant",
    "ExtendGrantPayload",
    "InviteOnboard",
    "Offboard",
    "OffboardAccount",
    "OffboardPayload",
    "Onboard",
    "OnboardPayload",
    "Payload",
    "RemoveIntegration",
    "RemoveIntegrationPayload",
    "RequestKind",
    "RunContext",
    "SetGroups",
    "SetGroupsPayload",
    "kind_for",
    "kind_of",
]
