"""Access reviews: a campaign asks an integration's managers about every account within its
prefix, *Keep*, *Remove from a group* or *Offboard*, with evidence from AWS's credential report.

A campaign freezes each account when it starts (groups, managed and inline policies, keys,
console and key use, MFA, the linked Slack person) and flags what needs a look. Every decision
is one guarded UPDATE (`... WHERE decision IS NULL AND the campaign is open`), so a double click
or two reviewers at once decide an item once, and nothing changes after the campaign closes.
*Remove* and *Offboard* raise ordinary requests (bot.services.requesting and
offboard_requests), decided under the approval rules like any other, and linked to the item.
Who may review is the policy's to say (policy.may_review); Slack is not known here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.services import approvals, audit, credential_report, lifecycle, policy
from bot.services.container import Core
from bot.services.credential_report import CredentialReport, UserCredentials
from bot.services.errors import (
    IntegrationNotFound,
    InvalidInput,
    NotAllowed,
    NotFound,
    Refused,
    RequestConflict,
    RoleUpError,
)
from bot.services.policy import Action, MemberOf
from bot.services.reasons import Justification, clean_reason
from storage.models import (
    Account,
    AttachedPolicy,
    Group,
    Integration,
    Membership,
    ReviewCampaign,
    ReviewItem,
    utcnow,
)

logger = logging.getLogger(__name__)

STARTING, OPEN, CLOSED, FAILED = "starting", "open", "closed", "failed"
KEEP, REMOVE, OFFBOARD = "keep", "remove", "offboard"
DECISIONS = (KEEP, REMOVE, OFFBOARD)
DEFAULT_DUE_DAYS = 14
MAX_DUE_DAYS = 90
STALE = timedelta(days=90)
MAX_NOTE = 500
PAGE = 10  # items the App Home shows at a time

# Flags, in the order they are shown; the words are what reviewers and auditors read.
NEVER_USED = "never_used"
UNUSED_90 = "unused_90_days"
NO_MFA = "no_mfa"
OLD_KEY = "key_older_than_90_days"
NOT_LINKED = "not_linked"
PRIVILEGED = "privileged"
FLAG_WORDS = {
    NEVER_USED: "never used",
    UNUSED_90: "unused for 90 days",
    NO_MFA: "console password without MFA",
    OLD_KEY: "access key older than 90 days",
    NOT_LINKED: "not linked to a Slack person",
    PRIVILEGED: "privileged access",
}
GONE = "gone since the campaign started"

Fetch = Callable[[Any], CredentialReport]


class ReviewStartFailed(RoleUpError):
    """The campaign could not start (the credential report, or the store); the message says
    why in one sentence."""


# --- starting ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    campaign_id: int
    integration: str
    due_at: datetime
    items: int
    flagged: int
    reviewers: list[str]  # the integration's managers (Slack users or user groups)


def check_due_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DUE_DAYS:
        raise InvalidInput(f"A review is due in 1 to {MAX_DUE_DAYS} days.", field="days")
    return days


def request_start(
    core: Core,
    *,
    actor: str,
    integration_name: str | None,
    due_days: int = DEFAULT_DUE_DAYS,
    member_of: MemberOf | None = None,
    fetch: Fetch | None = None,
) -> Started:
    """`/roleup review start [integration] [days]`: a manager of the integration or an admin.
    Without a name, the one integration the actor manages (or is refused, naming them)."""
    check_due_days(due_days)
    integration = _chosen_integration(core, actor, integration_name, member_of)
    return start_campaign(
        core, integration_id=integration.id, actor=actor, due_days=due_days, fetch=fetch
    )


def _chosen_integration(
    core: Core, actor: str, name: str | None, member_of: MemberOf | None
) -> Integration:
    who = member_of or core.people.member_of
    with core.sessions() as session:
        rows = list(session.scalars(select(Integration).order_by(Integration.name)))
        for row in rows:
            session.expunge(row)
    if name is not None:
        found = [r for r in rows if r.name == name]
        if not found:
            raise IntegrationNotFound(f"There is no integration {name}.")
        _require_start(core, actor, found[0], who)
        return found[0]
    standing = core.people.standing(actor)
    mine = [
        r
        for r in rows
        if policy.can(actor, Action.START_REVIEW, r, core.settings.admins, who, standing).allowed
    ]
    if len(mine) == 1:
        return mine[0]
    if not mine:
        refused = policy.standing_refusal(standing)
        if refused is not None:
            raise Refused(
                refused.text, decision=refused, action=Action.START_REVIEW, integration=None
            )
        raise NotFound("You manage no integration to review: name one, or ask its managers.")
    names = ", ".join(r.name for r in mine)
    raise InvalidInput(f"Say which integration to review: {names}.")


def _require_start(core: Core, actor: str, integration: Integration, who: MemberOf) -> None:
    decision = policy.can(
        actor,
        Action.START_REVIEW,
        integration,
        core.settings.admins,
        who,
        core.people.standing(actor),
    )
    if not decision.allowed:
        message = decision.text or f"not allowed to start access reviews for {integration.name}"
        raise Refused(
            message, decision=decision, action=Action.START_REVIEW, integration=integration
        )


def start_campaign(
    core: Core,
    *,
    integration_id: int,
    actor: str,
    due_days: int = DEFAULT_DUE_DAYS,
    scheduled: bool = False,
    now: datetime | None = None,
    fetch: Fetch | None = None,
) -> Started:
    """Claim the integration's one open campaign, read the credential report (one bulk call),
    freeze every account of the store within the prefix and open the campaign. Refused, naming
    it, while another campaign of the integration is open; ReviewStartFailed when AWS's report
    cannot be had within the bounded wait (the campaign is recorded as failed, with why)."""
    check_due_days(due_days)
    now = now or utcnow()
    integration = lifecycle.load_integration(core, integration_id)
    campaign_id = _claim(core, integration, actor, now, now + timedelta(days=due_days), scheduled)
    try:
        iam = lifecycle.iam_client(core, integration, actor=actor)
        report = (fetch or credential_report.fetch)(iam)
        counts = _freeze(core, campaign_id, integration, report, now)
    except Exception as exc:
        reason = (
            exc.user_message
            if isinstance(exc, RoleUpError)
            else f"an unexpected error ({type(exc).__name__})"
        )
        if not isinstance(exc, RoleUpError):
            logger.exception("starting access review %s failed", campaign_id)
        _fail(core, campaign_id, integration.name, actor, reason)
        raise ReviewStartFailed(
            f"The access review of {integration.name} could not start: {reason}"
        ) from None
    items, flagged = counts
    return Started(
        campaign_id,
        integration.name,
        now + timedelta(days=due_days),
        items,
        flagged,
        list(integration.managers or []),
    )


def _claim(
    core: Core,
    integration: Integration,
    actor: str,
    now: datetime,
    due_at: datetime,
    scheduled: bool,
) -> int:
    """Insert the campaign as starting; the unique `open_for` refuses a second open one."""
    try:
        with core.sessions.begin() as session:
            row = ReviewCampaign(
                integration_id=integration.id,
                integration=integration.name,
                state=STARTING,
                open_for=integration.id,
                started_by=actor,
                scheduled=scheduled,
                started_at=now,
                due_at=due_at,
            )
            session.add(row)
            session.flush()
            return int(row.id)
    except IntegrityError:
        pass
    with core.sessions() as session:
        other = session.scalar(
            select(ReviewCampaign).where(ReviewCampaign.open_for == integration.id)
        )
        if other is None:  # closed in between: one more try is enough
            return _claim(core, integration, actor, now, due_at, scheduled)
        word = "is still starting" if other.state == STARTING else "is still open"
        raise RequestConflict(
            f"Access review #{other.id} of {integration.name} {word} "
            f"(due {shown(other.due_at)}): close it before starting another."
        )


def _fail(core: Core, campaign_id: int, integration: str, actor: str, reason: str) -> None:
    with core.sessions.begin() as session:
        session.execute(
            update(ReviewCampaign)
            .where(ReviewCampaign.id == campaign_id, ReviewCampaign.state == STARTING)
            .values(state=FAILED, open_for=None, failure=reason[:1000], closed_at=utcnow())
        )
        audit.record(
            session,
            actor=actor,
            action="review.start_failed",
            target=f"review #{campaign_id}",
            integration=integration,
            outcome="error",
            detail={"campaign": campaign_id, "error": reason[:500]},
        )


@dataclass
class _Frozen:
    user_name: str
    user_id: str | None
    arn: str | None
    slack_user_id: str | None
    groups: set[str] = field(default_factory=set)
    policies: set[str] = field(default_factory=set)
    inline: list[str] = field(default_factory=list)


def _accounts(session: Session, integration_id: int) -> dict[str, _Frozen]:
    """Every account the store holds for the integration (the sync keeps only the prefix's)."""
    found = {
        name: _Frozen(name, user_id, arn, slack, inline=sorted(inline or []))
        for name, user_id, arn, slack, inline in session.execute(
            select(
                Account.user_name,
                Account.user_id,
                Account.arn,
                Account.slack_user_id,
                Account.inline_policies,
            ).where(Account.integration_id == integration_id)
        )
    }
    for name, group in session.execute(
        select(Account.user_name, Group.name)
        .join(Membership, Membership.account_id == Account.id)
        .join(Group, Group.id == Membership.group_id)
        .where(Account.integration_id == integration_id)
    ):
        found[name].groups.add(group)
    for name, policy_name in session.execute(
        select(Account.user_name, AttachedPolicy.policy_name)
        .join(AttachedPolicy, AttachedPolicy.account_id == Account.id)
        .where(Account.integration_id == integration_id)
    ):
        found[name].policies.add(policy_name)
    return found


def _freeze(
    core: Core,
    campaign_id: int,
    integration: Integration,
    report: CredentialReport,
    now: datetime,
) -> tuple[int, int]:
    """Write one item per account and open the campaign, in one transaction."""
    with core.sessions.begin() as session:
        row = session.get(Integration, integration.id)
        if row is None:
            raise IntegrationNotFound("That integration no longer exists.")
        privileges = approvals.privileges_of(session, [row])
        accounts = _accounts(session, integration.id)
        items = []
        for name in sorted(accounts):
            account = accounts[name]
            creds = report.users.get(name)
            if creds is not None and account.arn and creds.arn != account.arn:
                creds = None  # another user of that name since the last sync: no evidence
            flags = flags_for(account, creds, privileges, now)
            items.append(
                {
                    "campaign_id": campaign_id,
                    "user_name": name,
                    "user_id": account.user_id,
                    "arn": account.arn,
                    "slack_user_id": account.slack_user_id,
                    "groups": sorted(account.groups),
                    "policies": sorted(account.policies),
                    "inline_policies": account.inline,
                    "evidence": evidence_of(creds),
                    "flags": flags,
                    "flagged": bool(flags),
                    "removed_groups": [],
                }
            )
        for start in range(0, len(items), 1000):
            session.execute(insert(ReviewItem), items[start : start + 1000])
        flagged = sum(1 for item in items if item["flagged"])
        session.execute(
            update(ReviewCampaign)
            .where(ReviewCampaign.id == campaign_id, ReviewCampaign.state == STARTING)
            .values(
                state=OPEN,
                items_total=len(items),
                report_generated_at=report.generated_at,
            )
        )
        audit.record(
            session,
            actor=_actor_of(session, campaign_id),
            action="review.started",
            target=f"review #{campaign_id}",
            integration=integration.name,
            detail={
                "campaign": campaign_id,
                "items": len(items),
                "flagged": flagged,
                "due_at": _iso(_due_of(session, campaign_id)),
                "report_generated_at": _iso(report.generated_at),
                "report_rows_dropped": report.dropped,
            },
        )
    return len(items), flagged


def _actor_of(session: Session, campaign_id: int) -> str:
    return str(
        session.scalar(select(ReviewCampaign.started_by).where(ReviewCampaign.id == campaign_id))
    )


def _due_of(session: Session, campaign_id: int) -> datetime | None:
    return session.scalar(select(ReviewCampaign.due_at).where(ReviewCampaign.id == campaign_id))


def flags_for(
    account: _Frozen,
    creds: UserCredentials | None,
    privileges: policy.Privileges,
    now: datetime,
) -> list[str]:
    """What a reviewer should look at first; evidence missing from the report flags nothing
    it cannot show."""
    flags = []
    if creds is not None:
        last = creds.last_used
        if last is None:
            flags.append(NEVER_USED)
        elif now - last > STALE:
            flags.append(UNUSED_90)
        if creds.password_enabled and not creds.mfa_active:
            flags.append(NO_MFA)
        if any(k.active and k.last_rotated and now - k.last_rotated > STALE for k in creds.keys):
            flags.append(OLD_KEY)
    if not account.slack_user_id:
        flags.append(NOT_LINKED)
    if any(privileges.group(g) for g in account.groups) or any(
        privileges.policy(p) for p in account.policies
    ):
        flags.append(PRIVILEGED)
    return flags


def evidence_of(creds: UserCredentials | None) -> dict[str, Any]:
    if creds is None:
        return {"in_report": False}
    return {
        "in_report": True,
        "created": _iso(creds.created),
        "password_enabled": creds.password_enabled,
        "password_last_used": _iso(creds.password_last_used),
        "password_last_changed": _iso(creds.password_last_changed),
        "mfa_active": creds.mfa_active,
        "keys": [
            {
                "active": k.active,
                "last_rotated": _iso(k.last_rotated),
                "last_used": _iso(k.last_used),
            }
            for k in creds.keys
        ],
        "last_used": _iso(creds.last_used),
    }


# --- deciding ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decided:
    item_id: int
    user_name: str
    integration: str
    decision: str
    request_id: str | None = None
    request_state: str | None = None
    text: str = ""


@dataclass(frozen=True)
class _Context:
    item: ReviewItem
    campaign: ReviewCampaign
    integration: Integration
    linked_now: str | None  # the account's Slack person as the store links it now


def _context(core: Core, item_id: int) -> _Context:
    with core.sessions() as session:
        item = session.get(ReviewItem, item_id)
        campaign = session.get(ReviewCampaign, item.campaign_id) if item is not None else None
        if item is None or campaign is None:
            raise NotFound("That review item no longer exists.")
        integration = session.get(Integration, campaign.integration_id)
        if integration is None:
            raise IntegrationNotFound("That integration no longer exists.")
        linked_now = session.scalar(
            select(Account.slack_user_id).where(
                Account.integration_id == integration.id, Account.user_name == item.user_name
            )
        )
        for row in (item, campaign, integration):
            session.expunge(row)
    return _Context(item, campaign, integration, linked_now)


def _check(core: Core, ctx: _Context, reviewer: str, member_of: MemberOf | None) -> None:
    """Refusals in one sentence: closed campaign, not a reviewer here, own account, decided."""
    if ctx.campaign.state != OPEN:
        raise RequestConflict(
            f"Access review #{ctx.campaign.id} of {ctx.campaign.integration} is closed: "
            "its decisions can no longer change."
        )
    linked = {ctx.item.slack_user_id, ctx.linked_now}
    decision = policy.may_review(
        reviewer,
        ctx.integration,
        linked,
        member_of or core.people.member_of,
        core.people.standing(reviewer),
    )
    if not decision.allowed:
        _audit_refusal(core, ctx, reviewer, decision.text)
        raise NotAllowed(decision.text)
    if ctx.item.decision is not None:
        raise RequestConflict(already_text(ctx.item))


def already_text(item: ReviewItem) -> str:
    who = f"<@{item.decided_by}>" if item.decided_by else "someone"
    return f"{item.user_name} was already decided: {word_of(item.decision)} by {who}."


def word_of(decision: str | None) -> str:
    return {KEEP: "keep", REMOVE: "remove from groups", OFFBOARD: "offboard"}.get(
        decision or "", "undecided"
    )


def _audit_refusal(core: Core, ctx: _Context, reviewer: str, text: str) -> None:
    with core.sessions.begin() as session:
        audit.record(
            session,
            actor=reviewer,
            action="review.refused",
            target=ctx.item.user_name,
            integration=ctx.campaign.integration,
            outcome="refused",
            detail={"campaign": ctx.campaign.id, "item": ctx.item.id, "why": text},
        )


def _claim_item(
    core: Core, ctx: _Context, reviewer: str, decision: str, now: datetime, **values: Any
) -> None:
    """The one guarded UPDATE: an undecided item of an open campaign gets this decision."""
    open_campaign = select(ReviewCampaign.id).where(
        ReviewCampaign.id == ctx.campaign.id, ReviewCampaign.state == OPEN
    )
    with core.sessions.begin() as session:
        result = session.execute(
            update(ReviewItem)
            .where(
                ReviewItem.id == ctx.item.id,
                ReviewItem.decision.is_(None),
                ReviewItem.campaign_id.in_(open_campaign),
            )
            .values(decision=decision, decided_by=reviewer, decided_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        won = result.rowcount == 1  # type: ignore[attr-defined]
    if not won:
        fresh = _context(core, ctx.item.id)
        if fresh.campaign.state != OPEN:
            raise RequestConflict(
                f"Access review #{ctx.campaign.id} of {ctx.campaign.integration} is closed: "
                "its decisions can no longer change."
            )
        raise RequestConflict(already_text(fresh.item))


def _release(core: Core, ctx: _Context, reviewer: str, decision: str) -> None:
    """Undo a claim whose request could not be raised, so the item can be decided again."""
    with core.sessions.begin() as session:
        session.execute(
            update(ReviewItem)
            .where(
                ReviewItem.id == ctx.item.id,
                ReviewItem.decision == decision,
                ReviewItem.decided_by == reviewer,
                ReviewItem.request_id.is_(None),
            )
            .values(decision=None, decided_by=None, decided_at=None, removed_groups=[])
            .execution_options(synchronize_session=False)
        )


def _record_decision(
    core: Core, ctx: _Context, reviewer: str, decision: str, request_id: str | None = None
) -> None:
    with core.sessions.begin() as session:
        if request_id is not None:
            session.execute(
                update(ReviewItem)
                .where(ReviewItem.id == ctx.item.id)
                .values(request_id=request_id)
                .execution_options(synchronize_session=False)
            )
        item = session.get(ReviewItem, ctx.item.id)
        assert item is not None
        audit.record(
            session,
            actor=reviewer,
            action="review.decided",
            target=item.user_name,
            integration=ctx.campaign.integration,
            request_id=request_id,
            detail=item_detail(item, ctx.campaign),
        )


def item_detail(item: ReviewItem, campaign: ReviewCampaign) -> dict[str, Any]:
    """An item as the audit log and the export carry it."""
    return {
        "campaign": campaign.id,
        "item": item.id,
        "account": item.user_name,
        "user_id": item.user_id,
        "linked_person": item.slack_user_id,
        "groups": list(item.groups or []),
        "policies": list(item.policies or []),
        "inline_policies": list(item.inline_policies or []),
        "evidence": dict(item.evidence or {}),
        "flags": list(item.flags or []),
        "drift": item.drift,
        "decision": item.decision,
        "note": item.note,
        "removed_groups": list(item.removed_groups or []),
        "decided_by": item.decided_by,
        "decided_at": _iso(item.decided_at),
        "request_id": item.request_id,
    }


def keep(
    core: Core,
    item_id: int,
    *,
    reviewer: str,
    note: str | None = None,
    member_of: MemberOf | None = None,
    now: datetime | None = None,
) -> Decided:
    """Keep the account as it is, with an optional note (checked like a request's reason)."""
    try:
        cleaned = clean_reason(note)
    except InvalidInput as exc:
        raise InvalidInput(str(exc).replace("reason", "note"), field="note") from None
    ctx = _context(core, item_id)
    _check(core, ctx, reviewer, member_of)
    _claim_item(core, ctx, reviewer, KEEP, now or utcnow(), note=cleaned)
    _record_decision(core, ctx, reviewer, KEEP)
    return Decided(
        item_id,
        ctx.item.user_name,
        ctx.campaign.integration,
        KEEP,
        text=f"Kept {ctx.item.user_name} in {ctx.campaign.integration}.",
    )


def remove_from_groups(
    core: Core,
    item_id: int,
    *,
    reviewer: str,
    groups: Sequence[str],
    member_of: MemberOf | None = None,
    now: datetime | None = None,
) -> Decided:
    """Raise an ordinary group-change request taking the account out of `groups` (a removal:
    it waits for an approver), linked to the item."""
    from bot.services.requesting import request_set_groups

    ctx = _context(core, item_id)
    chosen = sorted(set(groups))
    if not chosen:
        raise InvalidInput("Choose at least one group to remove.", field="groups")
    unknown = [g for g in chosen if g not in (ctx.item.groups or [])]
    if unknown:
        raise InvalidInput(
            f"{unknown[0]} is not one of the groups this account had when the review started.",
            field="groups",
        )
    _check(core, ctx, reviewer, member_of)
    _claim_item(core, ctx, reviewer, REMOVE, now or utcnow(), removed_groups=chosen)
    try:
        _, current = lifecycle.user_and_groups(
            core, ctx.integration.id, ctx.item.user_name, actor=reviewer
        )
        request = request_set_groups(
            core,
            actor=reviewer,
            integration_id=ctx.integration.id,
            user_name=ctx.item.user_name,
            wanted=[g for g in current if g not in chosen],
            why=_why(ctx, f"remove from {', '.join(chosen)}"),
        )
    except BaseException:
        _release(core, ctx, reviewer, REMOVE)
        raise
    _record_decision(core, ctx, reviewer, REMOVE, request.id if request else None)
    if request is None:
        text = f"{ctx.item.user_name} is already out of {', '.join(chosen)}: nothing to remove."
        return Decided(item_id, ctx.item.user_name, ctx.campaign.integration, REMOVE, text=text)
    return Decided(
        item_id,
        ctx.item.user_name,
        ctx.campaign.integration,
        REMOVE,
        request.id,
        request.state,
        text=f"Asked to remove {ctx.item.user_name} from {', '.join(chosen)}.",
    )


def offboard(
    core: Core,
    item_id: int,
    *,
    reviewer: str,
    member_of: MemberOf | None = None,
    now: datetime | None = None,
) -> Decided:
    """Raise an ordinary offboarding request for the account (it always needs an approver),
    linked to the item."""
    from bot.services.offboard_requests import OffboardTarget, request_offboard

    ctx = _context(core, item_id)
    _check(core, ctx, reviewer, member_of)
    _claim_item(core, ctx, reviewer, OFFBOARD, now or utcnow())
    try:
        request = request_offboard(
            core,
            requester=reviewer,
            targets=[OffboardTarget(ctx.integration.id, ctx.integration.name, ctx.item.user_name)],
            asked_for=ctx.item.user_name,
            why=_why(ctx, "offboard"),
        )
    except BaseException:
        _release(core, ctx, reviewer, OFFBOARD)
        raise
    _record_decision(core, ctx, reviewer, OFFBOARD, request.id)
    return Decided(
        item_id,
        ctx.item.user_name,
        ctx.campaign.integration,
        OFFBOARD,
        request.id,
        request.state,
        text=f"Asked to offboard {ctx.item.user_name} from {ctx.campaign.integration}.",
    )


def _why(ctx: _Context, what: str) -> Justification:
    """The request says it comes from the review (an integration may require a reason)."""
    return Justification(reason=f"Access review #{ctx.campaign.id}: {what}"[:500])


# --- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemView:
    id: int
    campaign_id: int
    integration: str
    due_at: datetime
    user_name: str
    slack_user_id: str | None
    groups: list[str]
    policies: list[str]
    inline_policies: list[str]
    evidence: dict[str, Any]
    flags: list[str]
    drift: str | None


@dataclass(frozen=True)
class Page:
    items: list[ItemView]
    total: int
    offset: int


def open_items_for(
    core: Core,
    reviewer: str,
    member_of: MemberOf | None = None,
    *,
    offset: int = 0,
    limit: int = PAGE,
) -> Page:
    """The undecided items of open campaigns `reviewer` may decide, flagged first."""
    who = member_of or core.people.member_of
    with core.sessions() as session:
        campaigns = _reviewable(session, core, reviewer, who)
        if not campaigns:
            return Page([], 0, 0)
        ids = list(campaigns)
        linked_now = (
            select(Account.slack_user_id)
            .where(
                Account.integration_id == ReviewCampaign.integration_id,
                Account.user_name == ReviewItem.user_name,
            )
            .scalar_subquery()
        )
        mine = and_(
            ReviewItem.campaign_id.in_(ids),
            ReviewItem.decision.is_(None),
            or_(ReviewItem.slack_user_id.is_(None), ReviewItem.slack_user_id != reviewer),
            or_(linked_now.is_(None), linked_now != reviewer),
        )
        base = select(ReviewItem).join(ReviewCampaign, ReviewCampaign.id == ReviewItem.campaign_id)
        total = int(
            session.scalar(
                select(func.count(ReviewItem.id))
                .join(ReviewCampaign, ReviewCampaign.id == ReviewItem.campaign_id)
                .where(mine)
            )
            or 0
        )
        offset = max(0, min(offset, max(total - 1, 0)))
        rows = session.scalars(
            base.where(mine)
            .order_by(
                ReviewItem.flagged.desc(),
                ReviewCampaign.due_at,
                ReviewItem.user_name,
            )
            .offset(offset)
            .limit(limit)
        ).all()
        return Page([_view(row, campaigns[row.campaign_id]) for row in rows], total, offset)


def _reviewable(
    session: Session, core: Core, reviewer: str, member_of: MemberOf
) -> dict[int, ReviewCampaign]:
    found = {}
    for campaign, integration in session.execute(
        select(ReviewCampaign, Integration)
        .join(Integration, Integration.id == ReviewCampaign.integration_id)
        .where(ReviewCampaign.state == OPEN)
    ):
        if policy.is_listed(reviewer, integration.managers or [], member_of):
            found[campaign.id] = campaign
    return found


def _view(item: ReviewItem, campaign: ReviewCampaign) -> ItemView:
    return ItemView(
        id=item.id,
        campaign_id=campaign.id,
        integration=campaign.integration,
        due_at=campaign.due_at,
        user_name=item.user_name,
        slack_user_id=item.slack_user_id,
        groups=list(item.groups or []),
        policies=list(item.policies or []),
        inline_policies=list(item.inline_policies or []),
        evidence=dict(item.evidence or {}),
        flags=list(item.flags or []),
        drift=item.drift,
    )


def item_view(core: Core, item_id: int) -> ItemView:
    with core.sessions() as session:
        item = session.get(ReviewItem, item_id)
        campaign = session.get(ReviewCampaign, item.campaign_id) if item else None
        if item is None or campaign is None:
            raise NotFound("That review item no longer exists.")
        return _view(item, campaign)


@dataclass(frozen=True)
class ReviewerProgress:
    reviewer: str  # a Slack user id, or a user group id for a group of managers
    decided: int
    open: int
    flagged_open: int


@dataclass(frozen=True)
class CampaignStatus:
    id: int
    integration: str
    due_at: datetime
    total: int
    decided: int
    reviewers: list[ReviewerProgress]


def status(core: Core) -> list[CampaignStatus]:
    """Each open campaign: decided / open / flagged-open per reviewer (each manager entry, and
    whoever else decided). An item linked to a reviewer is not open for them."""
    found = []
    with core.sessions() as session:
        for campaign, integration in session.execute(
            select(ReviewCampaign, Integration)
            .join(Integration, Integration.id == ReviewCampaign.integration_id)
            .where(ReviewCampaign.state == OPEN)
            .order_by(ReviewCampaign.due_at)
        ):
            items = session.execute(
                select(
                    ReviewItem.decision,
                    ReviewItem.decided_by,
                    ReviewItem.slack_user_id,
                    ReviewItem.flagged,
                ).where(ReviewItem.campaign_id == campaign.id)
            ).all()
            reviewers = list(dict.fromkeys([*(integration.managers or [])]))
            reviewers += sorted({str(d) for _, d, _, _ in items if d and d not in reviewers})
            progress = [
                ReviewerProgress(
                    who,
                    sum(1 for decision, by, _, _ in items if decision and by == who),
                    sum(1 for decision, _, linked, _ in items if not decision and linked != who),
                    sum(
                        1
                        for decision, _, linked, flagged in items
                        if not decision and linked != who and flagged
                    ),
                )
                for who in reviewers
            ]
            found.append(
                CampaignStatus(
                    campaign.id,
                    campaign.integration,
                    campaign.due_at,
                    len(items),
                    sum(1 for decision, _, _, _ in items if decision),
                    progress,
                )
            )
    return found


def open_campaign_of(session: Session, integration_id: int) -> ReviewCampaign | None:
    return session.scalar(
        select(ReviewCampaign).where(
            ReviewCampaign.integration_id == integration_id, ReviewCampaign.state == OPEN
        )
    )


# --- drift --------------------------------------------------------------------------------------
def note_drift(
    core: Core, integration_id: int, changes: Iterable[Any], now: datetime | None = None
) -> int:
    """Mark the items of the integration's open campaign whose account was deleted or changed
    outside RoleUp (as a sync found it); returns how many were marked."""
    changes = [c for c in changes if not getattr(c, "by_app", False)]
    if not changes:
        return 0
    now = now or utcnow()
    marked = 0
    with core.sessions.begin() as session:
        campaign = open_campaign_of(session, integration_id)
        if campaign is None:
            return 0
        items = {
            item.user_name: item
            for item in session.scalars(
                select(ReviewItem).where(
                    ReviewItem.campaign_id == campaign.id,
                    ReviewItem.user_name.in_([c.user_name for c in changes]),
                )
            )
        }
        for change in changes:
            item = items.get(change.user_name)
            if item is None or (item.drift == GONE and change.kind != "added"):
                continue
            item.drift = _drift_text(change)[:500]
            item.drift_at = now
            marked += 1
    return marked


def _drift_text(change: Any) -> str:
    if change.kind == "removed":
        return GONE
    if change.kind == "added":
        return "deleted and created again since the campaign started"
    moves = [f"+{g}" for g in change.groups_added] + [f"-{g}" for g in change.groups_removed]
    moves += [f"+{p}" for p in change.policies_added] + [f"-{p}" for p in change.policies_removed]
    return "changed outside RoleUp since the campaign started: " + " ".join(moves)


# --- small helpers ------------------------------------------------------------------------------
def shown(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
