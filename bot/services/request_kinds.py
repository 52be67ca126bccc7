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
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from bot.logging_setup import SecretRegistryFull, secret_in_flight
from bot.services import integrations, lifecycle
from bot.services.errors import RoleUpError, TargetIsRoleUp
from bot.services.policy import (
    INVITE_ONBOARD,
    OFFBOARD,
    ONBOARD,
    REMOVE_INTEGRATION,
    SET_GROUPS,
    Change,
)

if TYPE_CHECKING:
    from bot.services.container import Core

StepCallback = Callable[[str, str], None]


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


@dataclass(frozen=True)
class SetGroupsPayload:
    integration_id: int
    integration: str
    user_name: str
    user_id: str | None = None  # the pinned IAM UserId
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RemoveIntegrationPayload:
    integration_id: int
    integration: str


Payload = OnboardPayload | OffboardPayload | SetGroupsPayload | RemoveIntegrationPayload
P = TypeVar("P", OnboardPayload, OffboardPayload, SetGroupsPayload, RemoveIntegrationPayload)


@dataclass
class RunContext:
    """What a running request may use of the state machine: per-account step reporting for the
    offboarding checklist, and whether an account already finished on an earlier run."""

    request_id: str
    actor: str
    on_step: Callable[[str], StepCallback]
    finished: Callable[[str], bool]
    mark_finished: Callable[[str], None]
    secret: Callable[[], str]


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

    def row_integration_id(self, payload: P) -> int | None:
        """The request row's foreign key (None when removing the integration must not cascade
        the request away, or when it spans several integrations)."""
        ids = self.integration_ids(payload)
        return ids[0] if len(ids) == 1 else None

    def invite_creator(self, payload: P) -> str | None:
        return None

    def describe(self, payload: P) -> str:
        raise NotImplementedError

    def target(self, payload: P) -> str:
        raise NotImplementedError

    def change(self, payload: P) -> Change:
        raise NotImplementedError

    def perform(self, core: Core, payload: P, run: RunContext) -> str:
        raise NotImplementedError


class Onboard(RequestKind[OnboardPayload]):
    name = ONBOARD
    payload_type = OnboardPayload

    def describe(self, payload: OnboardPayload) -> str:
        return f"to onboard {payload.username} in {payload.integration}"

    def target(self, payload: OnboardPayload) -> str:
        return payload.username

    def change(self, payload: OnboardPayload) -> Change:
        return Change(
            self.name,
            groups_added=tuple(payload.groups),
            policies_added=tuple(payload.policies),
        )

    def perform(self, core: Core, payload: OnboardPayload, run: RunContext) -> str:
        spec = lifecycle.OnboardSpec(
            username=payload.username,
            password=run.secret(),
            groups=list(payload.groups),
            policies=list(payload.policies),
            slack_user_id=payload.slack_user_id,
            created_by=payload.created_by or run.actor,
        )
        # Masked in every log line while AWS is asked to set it; a full registry fails the
        # request (Retry works) rather than let the password go by unmasked.
        try:
            with secret_in_flight(spec.password):
                lifecycle.onboard(
                    core, payload.integration_id, spec, actor=run.actor, request_id=run.request_id
                )
        except SecretRegistryFull:
            raise RoleUpError("RoleUp is too busy to hold a password now: Retry soon.") from None
        return f"IAM user {payload.username} created in {payload.integration}."


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
            )
        except (TypeError, AttributeError) as exc:
            raise RoleUpError("This offboarding request is damaged: make a new one.") from exc

    def integration_ids(self, payload: OffboardPayload) -> list[int]:
        return list(dict.fromkeys(int(a.integration_id) for a in payload.accounts))

    def describe(self, payload: OffboardPayload) -> str:
        return f"to offboard {', '.join(a.key for a in payload.accounts)}"

    def target(self, payload: OffboardPayload) -> str:
        return ", ".join(a.key for a in payload.accounts)

    def change(self, payload: OffboardPayload) -> Change:
        return Change(self.name)

    def perform(self, core: Core, payload: OffboardPayload, run: RunContext) -> str:
        done: list[str] = []
        for account in payload.accounts:
            if not run.finished(account.key):
                refuse_own_principal(core, account.integration_id, account.user_name)
                lifecycle.offboard(
                    core,
                    int(account.integration_id),
                    account.user_name,
                    actor=run.actor,
                    request_id=run.request_id,
                    on_step=run.on_step(account.key),
                    expected_user_id=account.user_id,
                )
                run.mark_finished(account.key)
            done.append(account.key)
        return f"Offboarded {', '.join(done)}: AWS confirms the user is gone."


class SetGroups(RequestKind[SetGroupsPayload]):
    name = SET_GROUPS
    payload_type = SetGroupsPayload

    def describe(self, payload: SetGroupsPayload) -> str:
        return f"to change the groups of {payload.user_name} in {payload.integration}"

    def target(self, payload: SetGroupsPayload) -> str:
        return payload.user_name

    def change(self, payload: SetGroupsPayload) -> Change:
        return Change(
            self.name,
            groups_added=tuple(payload.added),
            groups_removed=tuple(payload.removed),
        )

    def perform(self, core: Core, payload: SetGroupsPayload, run: RunContext) -> str:
        refuse_own_principal(core, payload.integration_id, payload.user_name)
        change = lifecycle.apply_group_change(
            core,
            payload.integration_id,
            payload.user_name,
            added=list(payload.added),
            removed=list(payload.removed),
            expected_user_id=payload.user_id,
            actor=run.actor,
            request_id=run.request_id,
        )
        added = ", ".join(change.added) or "none"
        removed = ", ".join(change.removed) or "none"
        return f"Groups of {payload.user_name} changed: added {added}; removed {removed}."


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

    def change(self, payload: RemoveIntegrationPayload) -> Change:
        return Change(self.name)

    def perform(self, core: Core, payload: RemoveIntegrationPayload, run: RunContext) -> str:
        integrations.remove_integration(
            core, payload.integration, actor=run.actor, request_id=run.request_id
        )
        return f"Integration {payload.integration} removed, with all its data and its key."


KINDS: dict[str, RequestKind[Any]] = {
    kind.name: kind
    for kind in (Onboard(), InviteOnboard(), Offboard(), SetGroups(), RemoveIntegration())
}
BY_PAYLOAD: dict[type[Any], RequestKind[Any]] = {
    OffboardPayload: KINDS[OFFBOARD],
    SetGroupsPayload: KINDS[SET_GROUPS],
    RemoveIntegrationPayload: KINDS[REMOVE_INTEGRATION],
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


def refuse_own_principal(core: Core, integration_id: int, user_name: str) -> None:
    """RoleUp never offboards or regroups the IAM user whose key it holds (its own principal),
    whatever the store says: the check reads the integration's recorded caller ARN."""
    integration = lifecycle.load_integration(core, integration_id)
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
