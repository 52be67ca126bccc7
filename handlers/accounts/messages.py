"""The /accounts message: a page of accounts with Refresh and Previous / Next buttons."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from bot.services import account_expiry
from bot.services.grants import shown as shown_end
from bot.services.listing import AccountRow, AccountsPage
from bot.slack import blocks as bk
from bot.slack.args import MAX_FILTER
from bot.slack.commands import MessageJson
from bot.slack.dates import when
from bot.slack.mrkdwn import code, escape, truncate_escaped, user

REFRESH = "accounts_refresh"
PREVIOUS = "accounts_previous"
NEXT = "accounts_next"
MAX_GROUPS_SHOWN = 20


@dataclass(frozen=True)
class AccountsQuery:
    """What the buttons carry to re-render the same listing (kept in the button value)."""

    integration: str | None = None
    text_filter: str | None = None
    page: int = 0

    def to_value(self) -> str:
        return json.dumps({"i": self.integration, "f": self.text_filter, "p": self.page})

    @classmethod
    def from_value(cls, value: str) -> AccountsQuery:
        try:
            data = json.loads(value)
            integration, text_filter, page = data["i"], data["f"], int(data["p"])
        except (ValueError, KeyError, TypeError):
            return cls()
        if isinstance(text_filter, str) and len(text_filter) > MAX_FILTER:
            # No button of ours carries one (/accounts refuses it typed): a forged value, read
            # as a malformed one, so it is neither kept nor put back in the buttons' values.
            return cls()
        return cls(
            integration if isinstance(integration, str) else None,
            text_filter if isinstance(text_filter, str) else None,
            max(min(page, 10_000), 0),
        )

    def at(self, page: int) -> AccountsQuery:
        return AccountsQuery(self.integration, self.text_filter, page)


def _group(name: str, row: AccountRow, labels: dict[str, str]) -> str:
    label = labels.get(name)
    if label is None:
        label = labels[name] = code(name, 130)
    end = row.group_ends.get(name)
    return label + (f" (until {shown_end(end)})" if end else "")


def account_line(
    row: AccountRow, *, show_integration: bool, labels: dict[str, str] | None = None
) -> str:
    """`labels`: group names already escaped, shared by the lines of one message (a page's
    accounts are mostly in the same few groups)."""
    known = {} if labels is None else labels
    groups = row.groups[:MAX_GROUPS_SHOWN]
    shown = ", ".join(_group(g, row, known) for g in groups) or "_no groups_"
    if len(row.groups) > MAX_GROUPS_SHOWN:
        shown += f" and {len(row.groups) - MAX_GROUPS_SHOWN} more"
    where = f" in {escape(row.integration)}" if show_integration else ""
    if row.expires_at is not None:
        where += f" · expires {escape(account_expiry.shown(row.expires_at))}"
    person = user(row.slack_user_id) if row.slack_user_id else "_not linked_"
    return (
        # Groups last: if a long list must be cut, the cut falls on it.
        f"*{escape(row.user_name)}*{where}\n"
        f"Slack: {person} · Last sign-in: {when(row.password_last_used)}\n"
        f"Groups: {shown}"
    )


def build(page: AccountsPage, query: AccountsQuery) -> dict[str, Any]:
    """The message (text + blocks) for respond().

    Made once per distinct page: the message is a function of what the page was read from
    (AccountsPage.source) and the query alone, so a listing read again unchanged is answered
    with the message already made. The store is still read every time; only the Block Kit is
    spared. At most 128 are kept per process, each as its key (the page's text and the
    query) and its message's JSON text (6 KB together for 20 accounts in two groups each; a
    message is bounded by Slack's limits).

    Each caller gets a message of its own, decoded from the kept JSON text: whatever a
    receiver changes in it (a late post, a Refresh) is never shown to the next person."""
    message: dict[str, Any] = json.loads(build_json(page, query))
    return message


def build_json(page: AccountsPage, query: AccountsQuery) -> MessageJson:
    """The message, as build makes it, as its JSON text (kept, and shared: text is immutable)."""
    return MessageJson(_made(_Made(page, query)))


class _Made:
    """A page and its query, equal to another when their sources and queries are."""

    __slots__ = ("key", "page", "query")

    def __init__(self, page: AccountsPage, query: AccountsQuery) -> None:
        self.key = (page.source, query)
        self.page: AccountsPage | None = page
        self.query = query

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Made) and self.key == other.key


@functools.lru_cache(maxsize=128)
def _made(made: _Made) -> str:
    """The message as JSON text. Once made, the page is let go: what is kept is its key and
    this text, not the page's rows, decoded twice over."""
    page, made.page = made.page, None
    assert page is not None  # a _Made is made for one call, and only a miss calls this
    return json.dumps(_build(page, made.query))


def _build(page: AccountsPage, query: AccountsQuery) -> dict[str, Any]:
    title = f"Accounts in {query.integration}" if query.integration else "Accounts"
    subtitle = f"{page.total} account{'s' if page.total != 1 else ''}"
    if query.text_filter:
        subtitle += f" matching {code(query.text_filter, 110)}"
    if page.pages > 1:
        subtitle += f" · page {page.page + 1} of {page.pages}"
    syncs = " · ".join(
        f"{escape(name)} synced {when(at)}" for name, at in sorted(page.last_sync.items())[:10]
    )
    body: list[bk.Block] = [bk.header(title), bk.context(subtitle, syncs or "No integration")]
    show_integration = query.integration is None
    labels: dict[str, str] = {}
    body += [
        bk.section(account_line(r, show_integration=show_integration, labels=labels))
        for r in page.rows
    ]
    if not page.rows:
        body.append(bk.section("_No accounts to show._"))
    buttons = [bk.button("Refresh", REFRESH, query.at(page.page).to_value())]
    if page.has_previous:
        buttons.append(bk.button("Previous", PREVIOUS, query.at(page.page - 1).to_value()))
    if page.has_next:
        buttons.append(bk.button("Next", NEXT, query.at(page.page + 1).to_value()))
    blocks = bk.fit_message(body, tail=[bk.actions(buttons, block_id="accounts_nav")])
    text = truncate_escaped(f"{escape(title)}: {subtitle}", bk.MAX_FALLBACK_TEXT)
    return {"text": text, "blocks": blocks}
