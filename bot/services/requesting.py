"""One entry point per request kind: check who asks (the policy), pin the target, build the
typed payload, submit. Handlers call these and only render what they raise; whether a change
needs an approver is decided by approvals.submit through the policy, never here or above.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import account_expiry, approvals, breakglass, grants, iam, lifecycle, policy
from bot.services.container import Core
from bot.services.errors import (
    IntegrationNotFound,
    InvalidInput,
    NotAllowed,
    Refused,
    RequestConflict,
    RoleUpError,
    TargetIsRoleUp,
)
from bot.services.integration_handle import IntegrationHandle
from bot.services.policy import Action, Roster
from bot.services.reasons import NONE, Justification
from bot.services.request_kinds import (
    BreakGlassPayload,
    ExtendAccountPayload,
    ExtendGrantPayload,
    OnboardPayload,
    RemoveIntegrationPayload,
    SetGroupsPayload,
    is_own_principal,
    refuse_own_principal,
)
from storage.models import (
    Account,
    AccountExpiry,
    AttachedPolicy,
    Grant,
    Group,
    Integration,
    Membership,
    Request,
    utcnow,
)


def require(
    core: Core,
    actor: str,
    action: Action,
    integration: Roster | None,
) -> policy.Decision:
    """The policy's yes, or Refused (saying why and who can help). Who the actor is (user
    groups, Slack standing) is asked of `core.people`, the one directory."""
    decision = policy.can(
        actor,
        action,
        integration,
        core.settings.admins,
        core.people.member_of,
        core.people.standing(actor),
    )
    if not decision.allowed:
        where = f" for {integration.name}" if integration is not None else ""
        message = decision.text or f"not allowed to {policy.WHAT[action]}{where}"
        raise Refused(message, decision=decision, action=action, integration=integration)
    return decision


def _integration(core: Core, integration_id: int) -> Integration:
    return lifecycle.load_integration(core, integration_id)


# --- onboarding ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnboardAsk:
    username: str
    password: str
    groups: Sequence[str] = ()
    policies: Sequence[str] = ()
    slack_user_id: str | None = None
    term: grants.Term | None = None  # how long the groups last; None: permanent
    why: Justification = NONE
    account_expires: datetime | None = None  # 00:00 UTC of the date it is offboarded

    def __repr__(self) -> str:  # never the password
        return f"OnboardAsk(username={self.username!r})"


def request_onboard(
    core: Core,
    *,
    actor: str,
    integration_id: int,
    ask: OnboardAsk,
    response_url: str | None = None,
    handle: IntegrationHandle | None = None,
) -> Request:
    """A manager asks to create an IAM user: run at once, or held for an approver. `handle`,
    the integration as the command's checks opened it (for this actor and a request id chosen
    beforehand), lets a request run at once go on with what those checks read."""
    if handle is not None and (handle.id != integration_id or handle.actor != actor):
        raise ValueError("the handle was opened for another integration or actor")
    integration = handle.integration if handle else _integration(core, integration_id)
    require(core, actor, Action.ONBOARD, integration)
    iam.require_writable(integration, "onboard users")
    if ask.account_expires is not None:
        account_expiry.check(ask.account_expires)
    payload = OnboardPayload(
        integration_id=integration.id,
        integration=integration.name,
        username=ask.username,
        groups=list(dict.fromkeys(ask.groups)),
        policies=list(dict.fromkeys(ask.policies)),
        slack_user_id=ask.slack_user_id,
        created_by=actor,
        **(ask.term or grants.Term()).dump(),
        account_expires=account_expiry.dump(ask.account_expires),
    )
    return approvals.submit(
        core,
        payload,
        requester=actor,
        secret=ask.password,
        response_url=response_url,
        why=ask.why,
        request_id=handle.request_id if handle else None,
        handles=[handle] if handle else [],
    )


# --- groups ----------------------------------------------------------------------------------
def request_set_groups(
    core: Core,
    *,
    actor: str,
    integration_id: int,
    user_name: str,
    wanted: Sequence[str],
    term: grants.Term | None = None,
    response_url: str | None = None,
    why: Justification = NONE,
    reviewed_user_id: str | None = None,
) -> Request | None:
    """Ask to make the user's groups `wanted`: the request carries only the difference with
    what AWS has now, and the user's UserId. Groups added last for `term` (permanent when
    None). None when there is nothing to change. With `reviewed_user_id` (an access review's
    item), a user re-created under the name since the review started is refused."""
    integration = _integration(core, integration_id)
    require(core, actor, Action.CHANGE_GROUPS, integration)
    iam.require_writable(integration, "change groups")
    for group in wanted:
        iam.validate_group_name(group)
    refuse_own_principal(core, integration.id, user_name)
    user, groups = lifecycle.user_and_groups(core, integration.id, user_name, actor=actor)
    iam.check_same_user(
        user, user_name, reviewed_user_id, since=iam.REVIEW_STARTED, then=iam.NOT_ASKED
    )
    current = set(groups)
    added = sorted(set(wanted) - current)
    removed = sorted(current - set(wanted))
    if not added and not removed:
        return None
    payload = SetGroupsPayload(
        integration_id=integration.id,
        integration=integration.name,
        user_name=user_name,
        user_id=iam.user_id_of(user),
        added=added,
        removed=removed,
        **(term or grants.Term()).dump(),
    )
    return approvals.submit(core, payload, requester=actor, response_url=response_url, why=why)


def request_extend_grant(
    core: Core,
    *,
    actor: str,
    grant_id: int,
    term: grants.Term,
    response_url: str | None = None,
    why: Justification = NONE,
) -> Request:
    """Ask for a later end of a grant: its holder, its requester, or whoever may change the
    integration's groups. The holder always needs an approver, even when a manager."""
    if term.permanent:
        raise InvalidInput("Choose how long the access lasts.", field="for")
    with core.sessions() as session:
        grant = session.get(Grant, grant_id)
        if grant is None or grant.state != grants.ACTIVE:
            raise RequestConflict(
                "That grant has ended (or is ending): ask for the group again with /groups."
            )
        if grant.breakglass:
            # Boxed at 4 hours: a longer need is a new break-glass, announced again.
            raise InvalidInput("Break-glass access is not extended: use /roleup breakglass again.")
        integration = session.get(Integration, grant.integration_id)
        assert integration is not None  # the grant goes with its integration
        session.expunge(integration)
        holder, requester = grant.slack_user_id, grant.requester
        # Whoever the account is linked to now holds it too (a link made since the grant).
        holders = {holder, _linked_to(session, grant.integration_id, grant.user_name)} - {None}
        current = grant.ends_at
        payload = ExtendGrantPayload(
            **grants.payload_fields(grant, integration),
            **term.dump(),
            holder=holder,
        )
    new_end = term.end_from(utcnow())
    if new_end is not None and new_end <= current:
        raise InvalidInput(
            f"That ends before the grant already does ({grants.shown(current)}).",
            field="for" if term.until is None else "until",
        )
    iam.require_writable(integration, "change groups")
    may_change = policy.can(
        actor,
        Action.CHANGE_GROUPS,
        integration,
        core.settings.admins,
        core.people.member_of,
        core.people.standing(actor),
    )
    if not may_change.allowed:
        if actor not in {*holders, requester}:
            require(core, actor, Action.CHANGE_GROUPS, integration)
        # Slack guests and deactivated accounts are refused whoever they are.
        if policy.standing_refusal(core.people.standing(actor)) is not None:
            require(core, actor, Action.CHANGE_GROUPS, integration)
    # Extending one's own access always needs an approver, even for a manager (README).
    own = actor in holders
    payload = dataclasses.replace(payload, self_service=own or not may_change.allowed)
    return approvals.submit(core, payload, requester=actor, response_url=response_url, why=why)


# --- expiring accounts -----------------------------------------------------------------------
def request_extend_account(
    core: Core,
    *,
    actor: str,
    expiry_id: int,
    expires_at: datetime,
    response_url: str | None = None,
    why: Justification = NONE,
) -> Request:
    """Ask for a later end date of an expiring account: its requester, or whoever may onboard
    into the integration. Judged as onboarding the account with what it holds now; the
    account's own person asking always needs an approver, even when a manager."""
    account_expiry.check(expires_at)
    with core.sessions() as session:
        row = session.get(AccountExpiry, expiry_id)
        if row is None or row.state != account_expiry.SCHEDULED:
            raise RequestConflict("That account has been offboarded (or is being offboarded).")
        integration = session.get(Integration, row.integration_id)
        assert integration is not None  # the expiry goes with its integration
        session.expunge(integration)
        holder, requester, current = row.slack_user_id, row.requester, row.expires_at
        holders = {holder, _linked_to(session, row.integration_id, row.user_name)} - {None}
        groups, policies = _held_by(session, row.integration_id, row.user_name)
        payload = ExtendAccountPayload(
            expiry_id=row.id,
            integration_id=integration.id,
            integration=integration.name,
            user_name=row.user_name,
            expires=account_expiry.dump(expires_at) or "",
            was=account_expiry.dump(current) or "",
            groups=groups,
            policies=policies,
            holder=holder,
        )
    if expires_at <= current:
        raise InvalidInput(
            f"That is not later than the date the account has ({account_expiry.shown(current)}).",
            field="account_expires",
        )
    may_onboard = policy.can(
        actor,
        Action.ONBOARD,
        integration,
        core.settings.admins,
        core.people.member_of,
        core.people.standing(actor),
    )
    if not may_onboard.allowed and (
        actor != requester or policy.standing_refusal(core.people.standing(actor)) is not None
    ):
        require(core, actor, Action.ONBOARD, integration)
    own = actor in holders
    payload = dataclasses.replace(payload, self_service=own or not may_onboard.allowed)
    return approvals.submit(core, payload, requester=actor, response_url=response_url, why=why)


def _linked_to(session: Session, integration_id: int, user_name: str) -> str | None:
    """The Slack person the account is linked to now."""
    return session.scalar(
        select(Account.slack_user_id).where(
            Account.integration_id == integration_id, Account.user_name == user_name
        )
    )


def _held_by(session: Session, integration_id: int, user_name: str) -> tuple[list[str], list[str]]:
    """The account's groups and managed policies as the store has them."""
    account_id = session.scalar(
        select(Account.id).where(
            Account.integration_id == integration_id, Account.user_name == user_name
        )
    )
    if account_id is None:
        return [], []
    groups = session.scalars(
        select(Group.name)
        .join(Membership, Membership.group_id == Group.id)
        .where(Membership.account_id == account_id)
        .order_by(Group.name)
    ).all()
    policies = session.scalars(
        select(AttachedPolicy.policy_arn)
        .where(AttachedPolicy.account_id == account_id)
        .order_by(AttachedPolicy.policy_arn)
    ).all()
    return list(groups), list(policies)


# --- break-glass ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BreakGlassAsk:
    group: str
    seconds: int
    reason: str
    integration: str | None = None  # `integration:NAME`, when the caller is on several lists


@dataclass(frozen=True)
class BreakGlassGiven:
    request: Request
    grant: grants.GrantRow | None  # None when the account already had the group


def request_breakglass(
    core: Core, *, actor: str, ask: BreakGlassAsk, response_url: str | None = None
) -> BreakGlassGiven:
    """Someone on an integration's break-glass list gives their own linked account a group
    for at most 4 hours, at once (the policy needs no approver for them, and only for them).
    Every refusal says why in one sentence and is audited."""
    try:
        payload = _breakglass_payload(core, actor, ask)
    except RoleUpError as err:
        breakglass.record_refused(core, actor, err.user_message, group=ask.group)
        raise
    # The break-glass reason is the request's reason (an integration may require one).
    why = Justification(reason=payload.reason)
    request = approvals.submit(core, payload, requester=actor, response_url=response_url, why=why)
    return BreakGlassGiven(request, breakglass.granted_by(core, request.id))


def _breakglass_payload(core: Core, actor: str, ask: BreakGlassAsk) -> BreakGlassPayload:
    target = breakglass.choose_target(core, actor, ask.integration)
    reason = breakglass.check_reason(ask.reason)
    seconds = breakglass.check_length(ask.seconds)
    integration = _integration(core, target.integration_id)
    iam.require_writable(integration, "grant break-glass access")
    iam.validate_group_name(ask.group)
    if is_own_principal(integration.principal_arn, target.user_name):
        raise TargetIsRoleUp(
            f"{target.user_name} is the IAM user RoleUp itself signs in as for "
            f"{integration.name}, which break-glass never regroups."
        )
    breakglass.require_group(core, integration.id, integration.name, ask.group)
    # Told is not enough: someone other than the grantee must be able to review it.
    reviewers = [a for a in integration.approvers or [] if a != actor]
    if not reviewers or breakglass.recipients_of(core, integration.id, actor).empty:
        raise NotAllowed(
            f"Nobody would review break-glass access in {integration.name}: "
            "ask an admin to set its approvers or approvals channel."
        )
    return BreakGlassPayload(
        integration_id=integration.id,
        integration=integration.name,
        user_name=target.user_name,
        group=ask.group,
        for_seconds=seconds,
        reason=reason,
        user_id=target.user_id,
    )


# --- integrations ----------------------------------------------------------------------------
def request_remove_integration(
    core: Core,
    *,
    actor: str,
    integration_id: int,
    response_url: str | None = None,
    why: Justification = NONE,
) -> Request:
    """An admin asks to remove an integration; another admin or an approver decides."""
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise IntegrationNotFound("That integration no longer exists.")
        session.expunge(integration)
    require(core, actor, Action.MANAGE_INTEGRATIONS, integration)
    payload = RemoveIntegrationPayload(integration_id=integration.id, integration=integration.name)
    return approvals.submit(core, payload, requester=actor, response_url=response_url, why=why)
