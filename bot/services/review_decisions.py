"""Deciding an item of an access review: *Keep* (with an optional note), *Remove from group…*
and *Offboard*. Every decision is one guarded UPDATE (`... WHERE decision IS NULL AND the
campaign is open`), so a double click or two reviewers at once decide an item once, and nothing
changes after the campaign closes. *Remove* and *Offboard* raise ordinary requests
(bot.services.requesting and offboard_requests), decided under the approval rules like any
other, and linked to the item. Who may review is the policy's to say (policy.may_review).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.services import audit, lifecycle, policy
from bot.services.container import Core
from bot.services.errors import (
    IntegrationNotFound,
    InvalidInput,
    NotAllowed,
    NotFound,
    OutsidePrefix,
    RequestConflict,
    UserNotFound,
)
from bot.services.policy import MemberOf
from bot.services.reasons import Justification, clean_reason
from bot.services.reviews import KEEP, OFFBOARD, OPEN, REMOVE, ItemView, item_detail, item_view
from storage.models import Account, Integration, ReviewCampaign, ReviewItem, utcnow
from storage.updates import guarded_update


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


def for_decision(
    core: Core, item_id: int, *, reviewer: str, member_of: MemberOf | None = None
) -> ItemView:
    """The item as the Keep and Remove modals show it (its access and evidence), only to a
    reviewer who may decide it now: refused in one sentence otherwise, as a decision is."""
    ctx = _context(core, item_id)
    _check(core, ctx, reviewer, member_of)
    return item_view(core, item_id)


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
        # A shared lock on the campaign row: a close (an UPDATE of that row) waits for this
        # decision to commit and then counts it, or this waits for the close and finds it
        # closed; without it, a close could read the items between this UPDATE and its commit
        # and sum the item up as undecided. (SQLite has one writer at a time anyway.)
        session.execute(
            select(ReviewCampaign.id)
            .where(ReviewCampaign.id == ctx.campaign.id)
            .with_for_update(read=True)
        )
        result = guarded_update(
            session,
            ReviewItem,
            [
                ReviewItem.id == ctx.item.id,
                ReviewItem.decision.is_(None),
                ReviewItem.campaign_id.in_(open_campaign),
            ],
            decision=decision,
            decided_by=reviewer,
            decided_at=now,
            **values,
        )
        won = result == 1
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
        guarded_update(
            session,
            ReviewItem,
            [
                ReviewItem.id == ctx.item.id,
                ReviewItem.decision == decision,
                ReviewItem.decided_by == reviewer,
                ReviewItem.request_id.is_(None),
            ],
            decision=None,
            decided_by=None,
            decided_at=None,
            removed_groups=[],
        )


def _record_decision(
    core: Core, ctx: _Context, reviewer: str, decision: str, request_id: str | None = None
) -> None:
    with core.sessions.begin() as session:
        if request_id is not None:
            guarded_update(
                session, ReviewItem, [ReviewItem.id == ctx.item.id], request_id=request_id
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
            reviewed_user_id=ctx.item.user_id,
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
        if _gone(core, ctx, reviewer):
            # Offboarded meanwhile (or deleted outside RoleUp): the decision is what happened,
            # and an approver is asked nothing, like a Remove from groups already left.
            _record_decision(core, ctx, reviewer, OFFBOARD)
            text = f"{ctx.item.user_name} is already gone from {ctx.integration.name}: "
            return Decided(
                item_id,
                ctx.item.user_name,
                ctx.campaign.integration,
                OFFBOARD,
                text=text + "nothing to offboard.",
            )
        request = request_offboard(
            core,
            requester=reviewer,
            targets=[
                OffboardTarget(
                    ctx.integration.id,
                    ctx.integration.name,
                    ctx.item.user_name,
                    reviewed_user_id=ctx.item.user_id,
                )
            ],
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


def _gone(core: Core, ctx: _Context, reviewer: str) -> bool:
    """Whether AWS has no user of the item's name at all (one moved outside the prefix is not
    gone: it is untouchable, and asking to offboard it is refused as usual)."""
    try:
        lifecycle.user_and_groups(core, ctx.integration.id, ctx.item.user_name, actor=reviewer)
    except OutsidePrefix:
        return False
    except UserNotFound:
        return True
    return False


def _why(ctx: _Context, what: str) -> Justification:
    """The request says it comes from the review (an integration may require a reason)."""
    return Justification(reason=f"Access review #{ctx.campaign.id}: {what}"[:500])
