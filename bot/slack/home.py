"""The App Home tab: your time-bound access (with End now / Extend), the requests and access
review items waiting for your decision (the items ten at a time, flagged first, with their
buttons), grants ending soon in the integrations you manage, and the commands to use;
published when someone opens it (handlers/home) and again after a grant's or a review's click
changes it (handlers/grants, handlers/reviews)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.notices import grant_buttons
from bot.services import account_expiry, approvals, grants, listing, reviews
from bot.services.account_expiry import ExpiryRow
from bot.services.container import Core
from bot.services.grants import GrantRow
from bot.services.reviews import Page
from bot.slack import blocks as bk
from bot.slack.mrkdwn import escape, user
from bot.slack.review_blocks import home_section, waiting_line
from storage.db import read_again_if_ended

if TYPE_CHECKING:
    from storage.models import Request

logger = logging.getLogger(__name__)

COMMANDS = (
    ("/onboard", "create an AWS IAM account; `/onboard invite @user` sends an invite link"),
    ("/offboard <iam-username or @user>", "remove accounts, once an approver agrees"),
    ("/accounts [integration] [filter]", "list accounts and their groups"),
    ("/groups <iam-username>", "show and change a user's groups, for good or for a while"),
    ("/roleup review start [integration]", "an access review of every account, in this tab"),
    ("/roleup help", "integrations, sync, links and the audit log"),
)
ENDING_SOON = timedelta(days=7)
MAX_GRANTS_SHOWN = 15  # each with its buttons; the Home tab holds 100 blocks


def home_view(
    access: list[GrantRow] | None = None,
    ending: list[GrantRow] | None = None,
    waiting: list[Request] | None = None,
    review: Page | None = None,
    expiring: list[ExpiryRow] | None = None,
) -> dict[str, Any]:
    # Usage placeholders like <name> must be escaped even inside code, or Slack reads a link.
    lines = "\n".join(f"• `{escape(command)}` — {what}" for command, what in COMMANDS)
    blocks: list[bk.Block] = [
        bk.header("RoleUp for AWS"),
        bk.section(
            "Onboard and offboard AWS IAM users from Slack. Destructive changes wait for an "
            "approver, and every change is in the audit log."
        ),
    ]
    if access:
        blocks.append(bk.header("Your access"))
        for grant in access[:MAX_GRANTS_SHOWN]:
            blocks.append(bk.section(_grant_line(grant)))
            blocks.append(bk.actions(grant_buttons(grant.id), block_id=f"grant_{grant.id}"))
    to_review = waiting_line(review) if review is not None else None
    if waiting or to_review:
        blocks.append(bk.header("Waiting for you"))
        asked = [
            f"• {escape(approvals.describe(row))}, asked by {user(row.requester)} "
            f"(`{escape(row.id[:8])}`)"
            for row in waiting or []
        ]
        if waiting:
            asked.append("_Approve or deny from the request's message in the approvals channel._")
        if to_review:
            asked.append(to_review)
        blocks.append(bk.section("\n".join(asked)))
    if review is not None:
        blocks += home_section(review)
    if ending or expiring:
        blocks.append(bk.header("Ending soon"))
    if ending:
        lines_of = [_grant_line(g, whose=True) for g in ending]
        blocks.append(_listed(lines_of, "roleup grants list --ending-within 168"))
    if expiring:
        lines_of = [_expiry_line(e) for e in expiring]
        blocks.append(_listed(lines_of, "roleup expiries list --within-days 7"))
    blocks.append(bk.section(lines))
    return bk.home(blocks)


def _listed(items: list[str], command: str) -> bk.Block:
    """The first MAX_GRANTS_SHOWN as bullets; the command that lists them all for the rest."""
    shown = [f"• {item}" for item in items[:MAX_GRANTS_SHOWN]]
    more = len(items) - MAX_GRANTS_SHOWN
    if more > 0:
        shown.append(f"_and {more} more: `{command}`_")
    return bk.section("\n".join(shown))


def _grant_line(grant: GrantRow, *, whose: bool = False) -> str:
    person = f" ({user(grant.slack_user_id)})" if whose and grant.slack_user_id else ""
    return (
        f"*{escape(grant.group)}* for *{escape(grant.user_name)}*{person} in "
        f"*{escape(grant.integration)}*, until {grants.shown(grant.ends_at)}"
    )


def _expiry_line(expiry: ExpiryRow) -> str:
    person = f" ({user(expiry.slack_user_id)})" if expiry.slack_user_id else ""
    return (
        f"Account *{escape(expiry.user_name)}*{person} in *{escape(expiry.integration)}* "
        f"expires {account_expiry.shown(expiry.expires_at)}"
    )


def home_for(core: Core, client: WebClient, actor: str, review_offset: int = 0) -> dict[str, Any]:
    """What `actor` sees: their own grants, and the grants and accounts ending within a week
    where they manage."""
    member_of = core.people
    mine = listing.time_bound_for(core, actor, ENDING_SOON)
    waiting = approvals.waiting_for(core, actor, member_of.member_of)
    review = reviews.open_items_for(core, actor, member_of.member_of, offset=review_offset)
    return home_view(mine.held, mine.ending, waiting, review, mine.expiring)


def publish_home(core: Core, client: WebClient, actor: str, review_offset: int = 0) -> None:
    """Refresh `actor`'s App Home; a failure is logged, never raised: it follows work already
    done and told (a decision's outcome), which must not then be reported as failed. What it
    shows is only read, so on a pooled connection the server had ended unseen it is read again
    on a new one (storage.db.read_again_if_ended)."""
    try:
        view = read_again_if_ended(lambda: home_for(core, client, actor, review_offset))
    except Exception:  # the store is down: the commands are still worth showing
        logger.warning("could not read the grants for the App Home", exc_info=True)
        view = home_view()
    try:
        client.views_publish(user_id=actor, view=view)
    except SlackApiError as exc:
        logger.warning("could not publish the App Home: %s", exc.response.get("error"))
    except OSError as exc:  # no answer from Slack
        logger.warning("could not publish the App Home: %s", type(exc).__name__)
