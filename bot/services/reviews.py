"""Access reviews: a campaign asks an integration's managers about every account within its
prefix, *Keep*, *Remove from a group* or *Offboard*, with evidence from AWS's credential report.

The feature is split by what a caller does: bot.services.review_start starts a campaign (the
credential report, the frozen items and their flags), bot.services.review_decisions records a
reviewer's decision (one guarded UPDATE each) and raises the requests, bot.services.review_jobs
reminds and closes, bot.services.review_export writes the evidence. This module holds what they
share (states, decisions, flags) and the reading side: a reviewer's open items for the App Home,
`/roleup review status`, and the drift a sync finds during a campaign.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bot.services import audit, policy
from bot.services.container import Core
from bot.services.errors import NotFound
from bot.services.policy import MemberOf
from storage.models import Account, Integration, ReviewCampaign, ReviewItem, utcnow

logger = logging.getLogger(__name__)

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
        "decided_at": iso(item.decided_at),
        "request_id": item.request_id,
    }


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


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def record_campaign(
    session: Session,
    campaign_id: int,
    integration: str,
    *,
    actor: str,
    action: str,
    outcome: str = "ok",
    **detail: Any,
) -> None:
    """An audit event about one campaign: its target and its detail name it."""
    audit.record(
        session,
        actor=actor,
        action=action,
        target=f"review #{campaign_id}",
        integration=integration,
        outcome=outcome,
        detail={"campaign": campaign_id, **detail},
    )
