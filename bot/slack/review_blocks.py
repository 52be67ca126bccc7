"""How access reviews look in Slack: an item (frozen access, evidence, flags, drift) with its
*Keep*, *Remove from group…* and *Offboard* buttons, the App Home's section, the status, and
the Keep and Remove modals. Every value from IAM is escaped (bot/slack/mrkdwn)."""

from __future__ import annotations

from typing import Any

from bot.services import reviews
from bot.services.reviews import FLAG_WORDS, CampaignStatus, ItemView, Page
from bot.slack import blocks as bk
from bot.slack.mrkdwn import code, escape, user
from bot.slack.state import ViewState, row_id

KEEP_ACTION = "review_keep"
REMOVE_ACTION = "review_remove"
OFFBOARD_ACTION = "review_offboard"
PAGE_ACTION = "review_page"
MAX_LISTED = 8  # groups or policies named on an item before "and N more"


def accounts_wait(count: int) -> str:
    return "1 account waits" if count == 1 else f"{count} accounts wait"


def _names(values: list[str]) -> str:
    if not values:
        return "none"
    shown = ", ".join(code(v, 80) for v in values[:MAX_LISTED])
    more = len(values) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _when(value: Any) -> str:
    return escape(str(value)[:10]) if value else "never"


def evidence_line(evidence: dict[str, Any]) -> str:
    if not evidence.get("in_report"):
        return "_Not in AWS's credential report (created since it was made?)_"
    console = (
        f"console last used {_when(evidence.get('password_last_used'))}"
        if evidence.get("password_enabled")
        else "no console password"
    )
    mfa = "MFA on" if evidence.get("mfa_active") else "no MFA"
    keys = evidence.get("keys") or []
    key_text = (
        "; ".join(
            f"key {'active' if k.get('active') else 'inactive'} since "
            f"{_when(k.get('last_rotated'))}, last used {_when(k.get('last_used'))}"
            for k in keys
        )
        or "no access keys"
    )
    return f"{console} · {mfa} · {key_text}"


def item_text(item: ItemView) -> str:
    person = user(item.slack_user_id) if item.slack_user_id else "_not linked_"
    lines = [
        f"*{escape(item.user_name)}* in *{escape(item.integration)}* · {person} · "
        f"review #{item.campaign_id}, due {reviews.shown(item.due_at)}",
        f"Groups: {_names(item.groups)} · Policies: {_names(item.policies)}"
        + (f" · Inline: {_names(item.inline_policies)}" if item.inline_policies else ""),
        evidence_line(item.evidence),
    ]
    if item.flags:
        lines.append(":warning: " + ", ".join(FLAG_WORDS.get(f, escape(f)) for f in item.flags))
    if item.drift:
        lines.append(f":ghost: _{escape(item.drift)}_")
    return "\n".join(lines)


def item_blocks(item: ItemView) -> list[bk.Block]:
    value = str(item.id)
    buttons = [bk.button("Keep", KEEP_ACTION, value, style="primary")]
    if item.groups:
        buttons.append(bk.button("Remove from group…", REMOVE_ACTION, value))
    buttons.append(bk.button("Offboard", OFFBOARD_ACTION, value, style="danger"))
    return [bk.section(item_text(item)), bk.actions(buttons, block_id=f"review_item_{item.id}")]


def home_section(page: Page) -> list[bk.Block]:
    """The reviewer's open items, ten at a time, flagged first."""
    if not page.total:
        return []
    first, last = page.offset + 1, page.offset + len(page.items)
    blocks: list[bk.Block] = [
        bk.header("Access reviews"),
        bk.context(
            f"{accounts_wait(page.total)} for your review "
            f"(showing {first} to {last}, flagged first)."
        ),
    ]
    for item in page.items:
        blocks += item_blocks(item)
    paging = []
    if page.offset > 0:
        back = max(page.offset - reviews.PAGE, 0)
        paging.append(bk.button("Previous 10", PAGE_ACTION, str(back)))
    if last < page.total:
        paging.append(bk.button("Next 10", PAGE_ACTION, str(last)))
    if paging:
        blocks.append(bk.actions(paging, block_id="review_paging"))
    return blocks


def waiting_line(page: Page) -> str | None:
    if not page.total:
        return None
    return (
        f"• {page.total} account{'s' if page.total != 1 else ''} to review in open access "
        "reviews (below, under *Access reviews*)"
    )


def status_text(found: list[CampaignStatus]) -> str:
    if not found:
        return "No access review is open. Start one with `/roleup review start [integration]`."
    parts = []
    for campaign in found:
        lines = [
            f"*Access review #{campaign.id} of {escape(campaign.integration)}* · due "
            f"{reviews.shown(campaign.due_at)} · {campaign.decided}/{campaign.total} decided"
        ]
        for one in campaign.reviewers:
            lines.append(
                f"• {user(one.reviewer)}: {one.decided} decided, {one.open} open "
                f"({one.flagged_open} flagged)"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


# --- modals -----------------------------------------------------------------------------------
class KeepView(bk.RowModal):
    CALLBACK_ID = "review_keep_view"
    NOTE = "note"
    ACTION = "value"
    TITLE = "Keep access"

    @classmethod
    def build(cls, item: ItemView) -> dict[str, Any]:
        element = bk.text_input(cls.ACTION, multiline=True, max_length=reviews.MAX_NOTE)
        blocks = [
            bk.section(item_text(item)),
            bk.input_block(cls.NOTE, "Note", element, optional=True),
        ]
        return cls.modal(item.id, blocks, "Keep")

    @classmethod
    def parse(cls, view: Any) -> tuple[int, str]:
        return row_id(view), ViewState(view).text(cls.NOTE, cls.ACTION)


class RemoveView(bk.RowModal):
    CALLBACK_ID = "review_remove_view"
    GROUPS = "groups"
    ACTION = "value"
    TITLE = "Remove from group"

    @classmethod
    def build(cls, item: ItemView) -> dict[str, Any]:
        pairs = [(g, g) for g in item.groups]
        element = bk.multi_select(cls.ACTION, pairs)
        if len(pairs) <= 10:  # few enough to tick
            element = bk.checkboxes(cls.ACTION, pairs)
        blocks = [
            bk.section(
                f"Remove *{escape(item.user_name)}* in *{escape(item.integration)}* from the "
                "groups you tick. It is asked as a request: an approver decides it."
            ),
            bk.input_block(cls.GROUPS, "Groups", element),
        ]
        return cls.modal(item.id, blocks, "Ask")

    @classmethod
    def parse(cls, view: Any) -> tuple[int, list[str]]:
        return row_id(view), ViewState(view).selected_many(cls.GROUPS, cls.ACTION)
