"""Break-glass: a person on an integration's break-glass list gives their own linked IAM
account one group for at most 4 hours, with no approver, and the approvers review it afterwards.

It is a Grant like any other (bot.services.grants): it ends by itself, reminders and End now
work. What this module adds: who may use it (the policy's `may_break_glass`), which account and
integration it lands on, the audit events flagged as break-glass, the approvers' review
(Acknowledge here, Revoke in bot.services.expiry) and the re-announcement every 4 hours until
someone acknowledges it, each claimed by one guarded UPDATE so two processes never both post.

The request itself (policy, payload, submit) is `requesting.request_breakglass`; its kind is
`request_kinds.BreakGlass`. Nothing here talks to Slack: bot.notices renders and posts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.services import audit, grants, policy
from bot.services.errors import (
    GroupNotFound,
    IntegrationNotFound,
    InvalidInput,
    NotAllowed,
    NotFound,
    RequestConflict,
)
from bot.services.grants import ACTIVE, GrantRow
from bot.services.policy import BREAKGLASS, Reason, Recipients, RequestFacts
from storage.models import Account, Grant, Group, Integration, utcnow
from storage.updates import guarded_update

if TYPE_CHECKING:
    from bot.services.container import Core

MIN_LENGTH = timedelta(minutes=5)
MAX_LENGTH = timedelta(hours=4)
MAX_REASON = 500
# Unacknowledged, it is announced again this long after the last announcement.
ANNOUNCE_EVERY = timedelta(hours=4)


# --- what the person asks ----------------------------------------------------------------------
def check_length(seconds: int) -> int:
    if seconds > MAX_LENGTH.total_seconds():
        raise InvalidInput("Break-glass access lasts at most 4 hours.")
    if seconds < MIN_LENGTH.total_seconds():
        raise InvalidInput("Break-glass access lasts at least 5 minutes.")
    return seconds


def check_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("Break-glass access needs a reason.")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"A break-glass reason is at most {MAX_REASON} characters.")
    return reason


@dataclass(frozen=True)
class Target:
    """Where a break-glass grant lands: the caller's one linked account in one integration."""

    integration_id: int
    integration: str
    user_name: str
    user_id: str | None


def choose_target(core: Core, actor: str, integration_name: str | None) -> Target:
    """The integration whose list holds `actor` and where they have a linked account (the one
    named, or the only one), and that account; NotAllowed / InvalidInput in one sentence."""
    standing = core.people.standing(actor)
    with core.sessions() as session:
        rows = _integrations(session, integration_name)
        decisions = [
            policy.may_break_glass(actor, row, core.people.member_of, standing) for row in rows
        ]
        refused = policy.standing_refusal(standing)
        if refused is not None:
            raise NotAllowed(refused.text)
        listed = [row for row, decision in zip(rows, decisions, strict=True) if decision.allowed]
        if not listed:
            raise NotAllowed(
                decisions[0].text
                if integration_name is not None
                else "You are not on the break-glass list of any integration."
            )
        linked = {row.id: _linked(session, row.id, actor) for row in listed}
        having = [row for row in listed if linked[row.id]]
        if len(having) > 1:
            names = ", ".join(row.name for row in having)
            raise InvalidInput(
                f"You are on the break-glass list of {names}: start with integration:NAME."
            )
        if not having:
            names = ", ".join(row.name for row in listed)
            raise NotAllowed(f"You have no IAM account linked in {names}.")
        integration = having[0]
        accounts = linked[integration.id]
        if len(accounts) > 1:
            raise NotAllowed(
                f"You have {len(accounts)} IAM accounts linked in {integration.name} "
                f"({', '.join(a.user_name for a in accounts)}): break-glass needs exactly one."
            )
        return Target(integration.id, integration.name, accounts[0].user_name, accounts[0].user_id)


def _integrations(session: Session, name: str | None) -> list[Integration]:
    query = select(Integration).order_by(Integration.name)
    if name is not None:
        query = query.where(Integration.name == name)
    rows = list(session.scalars(query))
    if name is not None and not rows:
        raise IntegrationNotFound(f"There is no integration named {name}.")
    if not rows:
        raise NotAllowed("You are not on the break-glass list of any integration.")
    return rows


def _linked(session: Session, integration_id: int, actor: str) -> list[Account]:
    return list(
        session.scalars(
            select(Account)
            .where(Account.integration_id == integration_id, Account.slack_user_id == actor)
            .order_by(Account.user_name)
        )
    )


def require_group(core: Core, integration_id: int, integration: str, group: str) -> None:
    """The group must be one the integration has (as of its last sync)."""
    with core.sessions() as session:
        known = session.scalar(
            select(Group.id).where(Group.integration_id == integration_id, Group.name == group)
        )
    if known is None:
        raise GroupNotFound(f"There is no group {group} in integration {integration}.")


def require_listed(core: Core, actor: str, integration_id: int) -> None:
    """Asked again as the request runs: someone taken off the list meanwhile gets nothing."""
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise IntegrationNotFound("That integration no longer exists.")
        decision = policy.may_break_glass(
            actor, integration, core.people.member_of, core.people.standing(actor)
        )
    if not decision.allowed:
        raise NotAllowed(decision.text)


def recipients_of(core: Core, integration_id: int, grantee: str) -> Recipients:
    """Who hears of a break-glass grant: the approvals channel, else the approvers by DM."""
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            return Recipients()
        return policy.recipients(
            BREAKGLASS, [integration], core.settings.admins, excluded={grantee}
        )


# --- the audit trail ---------------------------------------------------------------------------
def record(
    session: Session,
    grant: Grant | GrantRow,
    *,
    actor: str,
    action: str,
    integration: str,
    outcome: str = "ok",
    request_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One `breakglass.*` event; every one carries `breakglass: true` and the grant id."""
    user_name = grant.user_name
    group = grant.group_name if isinstance(grant, Grant) else grant.group
    audit.record(
        session,
        actor=actor[:64],
        action=action,
        target=user_name,
        integration=integration[:64],
        outcome=outcome,
        request_id=request_id,
        detail={"breakglass": True, "grant_id": grant.id, "group": group, **(detail or {})},
    )


def record_refused(core: Core, actor: str, why: str, *, group: str | None) -> None:
    """A refused attempt is worth knowing about (someone not on the list trying it)."""
    with core.sessions.begin() as session:
        audit.record(
            session,
            actor=actor[:64],
            action="breakglass.refused",
            outcome="refused",
            detail={"breakglass": True, "why": why[:300], "group": (group or "")[:128]},
        )


def record_granted(core: Core, grant_id: int, *, request_id: str) -> None:
    _record_on(
        core,
        grant_id,
        actor=None,
        action="breakglass.granted",
        request_id=request_id,
        detail=lambda grant: {"ends_at": grant.ends_at.isoformat(), "reason": grant.reason or ""},
    )


def record_ended(core: Core, grant_id: int, *, actor: str, request_id: str) -> None:
    _record_on(
        core,
        grant_id,
        actor=actor,
        action="breakglass.ended",
        request_id=request_id,
        detail=lambda grant: {"end_reason": grant.end_reason or ""},
    )


def _record_on(
    core: Core,
    grant_id: int,
    *,
    actor: str | None,
    action: str,
    request_id: str,
    detail: Callable[[Grant], dict[str, Any]],
) -> None:
    """Audit a break-glass grant's event in a transaction of its own; `actor` None: the
    person who used it."""
    with core.sessions.begin() as session:
        grant = session.get(Grant, grant_id)
        assert grant is not None
        integration = session.get(Integration, grant.integration_id)
        assert integration is not None
        record(
            session,
            grant,
            actor=grant.requester if actor is None else actor,
            action=action,
            integration=integration.name,
            request_id=request_id,
            detail=detail(grant),
        )


def granted_by(core: Core, request_id: str) -> GrantRow | None:
    """The active break-glass grant a request made (none when nothing was granted)."""
    with core.sessions() as session:
        found = session.execute(
            select(Grant, Integration.name)
            .join(Integration, Integration.id == Grant.integration_id)
            .where(Grant.request_id == request_id, Grant.breakglass.is_(True))
            .where(Grant.state == ACTIVE)
        ).first()
        return grants.row_of(*found) if found is not None else None


# --- the approvers' review ---------------------------------------------------------------------
def require_reviewer(core: Core, actor: str, grant_id: int) -> tuple[GrantRow, str | None]:
    """The break-glass grant and its approvals channel, if `actor` may review it: an approver
    of its integration (the policy's `may_decide`), never the person who used it. The refusal
    is audited."""
    with core.sessions() as session:
        grant = session.get(Grant, grant_id)
        if grant is None or not grant.breakglass:
            raise NotFound("That break-glass grant does not exist.")
        integration = session.get(Integration, grant.integration_id)
        assert integration is not None  # the grant goes with its integration
        row = grants.row_of(grant, integration.name)
        facts = RequestFacts(kind=BREAKGLASS, requester=grant.requester)
        decision = policy.may_decide(
            actor,
            facts,
            [integration],
            core.settings.admins,
            core.people.member_of,
            core.people.standing(actor),
        )
        holder_asks = actor in {grant.requester, grant.slack_user_id}
        channel = integration.approvals_channel
    if decision.allowed and not holder_asks:
        return row, channel
    if holder_asks or decision.reason == Reason.REQUESTER:
        text = "You used this break-glass access, so another approver reviews it."
    else:
        text = f"Only the approvers of integration {row.integration} review break-glass access."
    with core.sessions.begin() as session:
        record(
            session,
            row,
            actor=actor,
            action="breakglass.review_refused",
            integration=row.integration,
            outcome="refused",
            detail={"reason": decision.reason.value if not holder_asks else "grantee"},
        )
    raise NotAllowed(text)


def acknowledge(core: Core, grant_id: int, *, actor: str, now: datetime | None = None) -> GrantRow:
    """Record that an approver reviewed the grant (once): it is not announced again."""
    require_reviewer(core, actor, grant_id)
    now = now or utcnow()
    with core.sessions.begin() as session:
        won = guarded_update(
            session,
            Grant,
            [Grant.id == grant_id, Grant.acknowledged_at.is_(None)],
            acknowledged_by=actor[:64],
            acknowledged_at=now,
        )
        grant = session.get(Grant, grant_id)
        assert grant is not None
        integration = session.get(Integration, grant.integration_id)
        assert integration is not None
        if won != 1:
            raise RequestConflict(
                f"This break-glass access was already acknowledged by <@{grant.acknowledged_by}>."
            )
        record(
            session,
            grant,
            actor=actor,
            action="breakglass.acknowledged",
            integration=integration.name,
            request_id=grant.request_id,
        )
        return grants.row_of(grant, integration.name)


# --- announcing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Announcement:
    """A break-glass grant to post (`again` when it is a re-announcement), where, and the
    moment it was claimed at (to hand the claim back when nothing could be posted)."""

    grant: GrantRow
    to: Recipients
    claimed_at: datetime
    again: bool = False


def first_announcement(core: Core, grant: GrantRow) -> Announcement:
    """The announcement its request claimed when it opened the grant."""
    with core.sessions() as session:
        row = session.get(Grant, grant.id)
        assert row is not None
        claimed_at, integration_id, grantee = row.announced_at, row.integration_id, row.requester
    assert claimed_at is not None
    return Announcement(grant, recipients_of(core, integration_id, grantee), claimed_at)


def announce_due(core: Core, *, now: datetime | None = None) -> list[Announcement]:
    """Active, unacknowledged break-glass grants last announced `ANNOUNCE_EVERY` ago (or whose
    announcement could not be posted), each claimed once across every process."""
    now = now or utcnow()
    due = _due(now)
    with core.sessions() as session:
        candidates = session.execute(
            select(Grant.id, Grant.announced_at).where(*due).order_by(Grant.id)
        ).all()
    found: list[Announcement] = []
    for grant_id, before in candidates:
        with core.sessions.begin() as session:
            won = guarded_update(session, Grant, [Grant.id == grant_id, *due], announced_at=now)
            if won != 1:
                continue  # another process claimed it
            grant = session.get(Grant, grant_id)
            assert grant is not None
            integration = session.get(Integration, grant.integration_id)
            assert integration is not None
            row = grants.row_of(grant, integration.name)
            record(
                session,
                grant,
                actor="roleup",
                action="breakglass.announced",
                integration=integration.name,
                request_id=grant.request_id,
            )
        to = _recipients_for(core, grant_id)
        found.append(Announcement(row, to, claimed_at=now, again=before is not None))
    return found


def _recipients_for(core: Core, grant_id: int) -> Recipients:
    with core.sessions() as session:
        grant = session.get(Grant, grant_id)
        assert grant is not None
        integration_id, grantee = grant.integration_id, grant.requester
    return recipients_of(core, integration_id, grantee)


def _due(now: datetime) -> Sequence[Any]:
    return (
        Grant.breakglass.is_(True),
        Grant.state == ACTIVE,
        Grant.acknowledged_at.is_(None),
        or_(Grant.announced_at.is_(None), Grant.announced_at <= now - ANNOUNCE_EVERY),
    )


def release(core: Core, announcement: Announcement) -> None:
    """Nothing could be posted: hand the claim back, so the next grants job tries again."""
    with core.sessions.begin() as session:
        guarded_update(
            session,
            Grant,
            [Grant.id == announcement.grant.id, Grant.announced_at == announcement.claimed_at],
            announced_at=None,
        )
