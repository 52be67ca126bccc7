"""The scheduled side of access reviews: campaigns started on an integration's schedule,
reminders every 3 days to reviewers with open items, and closing campaigns at their due date.

Each move is a guarded UPDATE on the campaign's row (reminded_at, state), so whichever process
runs the job (the scheduler's claim already makes that one), a campaign is reminded or closed
once. Nothing here talks to Slack: the caller tells people what these return.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bot.services import review_start, reviews
from bot.services.container import Core
from bot.services.errors import RoleUpError
from bot.services.review_start import Started
from bot.services.reviews import CLOSED, KEEP, OFFBOARD, OPEN, REMOVE
from storage.models import Integration, ReviewCampaign, ReviewItem, utcnow
from storage.updates import guarded_update

logger = logging.getLogger(__name__)

REMIND_EVERY = timedelta(days=3)
SCHEDULER = "scheduler"


# --- scheduled starts -----------------------------------------------------------------------------
def start_scheduled(core: Core, now: datetime | None = None) -> list[Started]:
    """Start a campaign for each integration whose `review_every_days` have passed since its
    last campaign started (or since it was added), unless one is open. A start that fails is
    recorded as failed (audited) and tried again at the next run."""
    now = now or utcnow()
    started = []
    for integration_id, name in _due_integrations(core, now):
        try:
            started.append(
                review_start.start_campaign(
                    core, integration_id=integration_id, actor=SCHEDULER, scheduled=True, now=now
                )
            )
        except RoleUpError as err:
            logger.warning("scheduled access review of %s did not start: %s", name, err)
    return started


def _due_integrations(core: Core, now: datetime) -> list[tuple[int, str]]:
    with core.sessions() as session:
        last_start = (
            select(func.max(ReviewCampaign.started_at))
            .where(
                ReviewCampaign.integration_id == Integration.id,
                ReviewCampaign.state != reviews.FAILED,
            )
            .scalar_subquery()
        )
        rows = session.execute(
            select(
                Integration.id,
                Integration.name,
                Integration.review_every_days,
                Integration.created_at,
                last_start,
            ).where(Integration.review_every_days.is_not(None))
        ).all()
        open_ids = set(
            session.scalars(
                select(ReviewCampaign.integration_id).where(ReviewCampaign.open_for.is_not(None))
            )
        )
    due = []
    for integration_id, name, every, created, last in rows:
        since = last or created
        if integration_id in open_ids or since is None or not every:
            continue
        if now >= since + timedelta(days=every):
            due.append((int(integration_id), str(name)))
    return due


# --- reminders ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reminder:
    campaign_id: int
    integration: str
    integration_id: int
    due_at: datetime
    open_items: int


def remind_due(core: Core, now: datetime | None = None) -> list[Reminder]:
    """Campaigns open for 3 days since their start or their last reminder, and not yet due,
    each claimed by one guarded UPDATE of `reminded_at`."""
    now = now or utcnow()
    since = now - REMIND_EVERY
    with core.sessions() as session:
        candidates = session.execute(
            select(ReviewCampaign.id).where(
                ReviewCampaign.state == OPEN,
                ReviewCampaign.due_at > now,
                or_(
                    and_(ReviewCampaign.reminded_at.is_(None), ReviewCampaign.started_at <= since),
                    ReviewCampaign.reminded_at <= since,
                ),
            )
        ).all()
    due = []
    for (campaign_id,) in candidates:
        with core.sessions.begin() as session:
            won = guarded_update(
                session,
                ReviewCampaign,
                [
                    ReviewCampaign.id == campaign_id,
                    ReviewCampaign.state == OPEN,
                    or_(
                        and_(
                            ReviewCampaign.reminded_at.is_(None),
                            ReviewCampaign.started_at <= since,
                        ),
                        ReviewCampaign.reminded_at <= since,
                    ),
                ],
                reminded_at=now,
            )
            if won != 1:
                continue
            campaign = session.get(ReviewCampaign, campaign_id)
            assert campaign is not None
            open_items = _count(session, campaign_id, undecided=True)
            if open_items:
                reviews.record_campaign(
                    session,
                    campaign_id,
                    campaign.integration,
                    actor=SCHEDULER,
                    action="review.reminded",
                    open_items=open_items,
                )
                due.append(
                    Reminder(
                        campaign_id,
                        campaign.integration,
                        campaign.integration_id,
                        campaign.due_at,
                        open_items,
                    )
                )
    return due


# --- closing --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Closed:
    campaign_id: int
    integration: str
    approvals_channel: str | None
    total: int
    kept: int
    removed: int
    offboarded: int
    undecided: list[str] = field(default_factory=list)  # account names


def close_due(core: Core, now: datetime | None = None) -> list[Closed]:
    """Close every open campaign whose due date has come (one guarded UPDATE each): its
    decisions are final from then on, and the summary is returned for the approvals channel."""
    now = now or utcnow()
    with core.sessions() as session:
        ids = session.scalars(
            select(ReviewCampaign.id).where(
                ReviewCampaign.state == OPEN, ReviewCampaign.due_at <= now
            )
        ).all()
    return [closed for closed in (close(core, i, now=now) for i in ids) if closed is not None]


def close(
    core: Core, campaign_id: int, *, actor: str = SCHEDULER, now: datetime | None = None
) -> Closed | None:
    """Close one open campaign now; None when it was not open (closed meanwhile)."""
    now = now or utcnow()
    with core.sessions.begin() as session:
        won = guarded_update(
            session,
            ReviewCampaign,
            [ReviewCampaign.id == campaign_id, ReviewCampaign.state == OPEN],
            state=CLOSED,
            closed_at=now,
            open_for=None,
        )
        if won != 1:
            return None
        campaign = session.get(ReviewCampaign, campaign_id)
        assert campaign is not None
        decisions = session.execute(
            select(ReviewItem.user_name, ReviewItem.decision)
            .where(ReviewItem.campaign_id == campaign_id)
            .order_by(ReviewItem.user_name)
        ).all()
        channel = session.scalar(
            select(Integration.approvals_channel).where(Integration.id == campaign.integration_id)
        )
        counted = [d for _, d in decisions]
        closed = Closed(
            campaign_id,
            campaign.integration,
            channel,
            len(decisions),
            counted.count(KEEP),
            counted.count(REMOVE),
            counted.count(OFFBOARD),
            [name for name, d in decisions if d is None],
        )
        reviews.record_campaign(
            session,
            campaign_id,
            campaign.integration,
            actor=actor,
            action="review.closed",
            total=closed.total,
            kept=closed.kept,
            removed=closed.removed,
            offboarded=closed.offboarded,
            undecided=closed.undecided,
        )
    return closed


def _count(session: Session, campaign_id: int, *, undecided: bool) -> int:
    query = select(func.count(ReviewItem.id)).where(ReviewItem.campaign_id == campaign_id)
    if undecided:
        query = query.where(ReviewItem.decision.is_(None))
    return int(session.scalar(query) or 0)
