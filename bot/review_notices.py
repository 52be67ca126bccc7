"""What access reviews tell Slack: a DM to each reviewer when a campaign starts and every 3
days while they have open items (with a *Review* button), the summary in the approvals channel
when it closes, and a DM to each admin naming the items left undecided. Everything from IAM or
the store is escaped before it goes (bot/slack/mrkdwn)."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.notices import post
from bot.services import reviews
from bot.services.container import Core
from bot.services.people import everyone_in
from bot.services.review_jobs import Closed, Reminder
from bot.services.review_start import Started
from bot.slack.blocks import actions, button, section
from bot.slack.mrkdwn import code, escape

logger = logging.getLogger(__name__)

REVIEW_OPEN_ACTION = "review_open"
MAX_NAMES = 40


def reviewers_of(core: Core, entries: list[str]) -> list[str]:
    """Slack user ids of the managers: user groups expanded through the Slack directory (a
    process without Slack knows nobody in a user group)."""

    def unread(entry: str, err: Exception) -> None:
        assert isinstance(err, SlackApiError)  # the only failure everyone_in is given
        logger.warning("cannot read user group %s: %s", entry, err.response.get("error"))

    return everyone_in(core.people, entries, (SlackApiError,), unread)


def review_button(campaign_id: int) -> dict[str, Any]:
    return button("Review", REVIEW_OPEN_ACTION, str(campaign_id), style="primary")


def _dm(core: Core, user: str, text: str, campaign_id: int) -> bool:
    return post(core, user, text, [section(text), actions([review_button(campaign_id)])])


def announce_start(core: Core, started: Started) -> int:
    """DM every reviewer with open items of the new campaign; returns how many were told."""
    told = 0
    for reviewer in reviewers_of(core, started.reviewers):
        mine = _open_in(core, reviewer, started.campaign_id)
        if not mine:
            continue
        text = (
            f":mag: *Access review #{started.campaign_id} of {escape(started.integration)}*: "
            f"{mine} account{'s' if mine != 1 else ''} for you to review by "
            f"*{reviews.shown(started.due_at)}* ({started.flagged} flagged in all). Keep, remove "
            "from a group or offboard each one in RoleUp's *Home* tab."
        )
        told += _dm(core, reviewer, text, started.campaign_id)
    return told


def remind(core: Core, reminder: Reminder) -> int:
    """DM each reviewer who still has open items in the campaign."""
    with core.sessions() as session:
        from storage.models import Integration

        integration = session.get(Integration, reminder.integration_id)
        entries = list(integration.managers or []) if integration else []
    told = 0
    for reviewer in reviewers_of(core, entries):
        mine = _open_in(core, reviewer, reminder.campaign_id)
        if not mine:
            continue
        waiting = "1 account still waits" if mine == 1 else f"{mine} accounts still wait"
        text = (
            f":alarm_clock: Access review #{reminder.campaign_id} of "
            f"*{escape(reminder.integration)}*: {waiting} for your decision; "
            f"it closes *{reviews.shown(reminder.due_at)}*."
        )
        told += _dm(core, reviewer, text, reminder.campaign_id)
    return told


def _open_in(core: Core, reviewer: str, campaign_id: int) -> int:
    page = reviews.open_items_for(core, reviewer, limit=100000)
    return sum(1 for item in page.items if item.campaign_id == campaign_id)


def summary_text(closed: Closed) -> str:
    undecided = len(closed.undecided)
    return (
        f":white_check_mark: *Access review #{closed.campaign_id} of "
        f"{escape(closed.integration)} closed*: {closed.kept} kept, {closed.removed} removed "
        f"from groups, {closed.offboarded} offboarded, {undecided} undecided "
        f"(of {closed.total}). Evidence: `roleup review export {closed.campaign_id}`."
    )


def announce_close(core: Core, closed: Closed) -> None:
    """The summary in the approvals channel; each admin hears which items were undecided."""
    text = summary_text(closed)
    post(core, closed.approvals_channel, text, [section(text)])
    if not closed.undecided:
        return
    names = ", ".join(code(name) for name in closed.undecided[:MAX_NAMES])
    more = len(closed.undecided) - MAX_NAMES
    if more > 0:
        names += f" and {more} more"
    note = (
        f":warning: Access review #{closed.campaign_id} of *{escape(closed.integration)}* "
        f"closed with {len(closed.undecided)} account{'s' if len(closed.undecided) != 1 else ''}"
        f" left undecided: {names}."
    )
    for admin in sorted(core.settings.admins):
        post(core, admin, note, [section(note)])
