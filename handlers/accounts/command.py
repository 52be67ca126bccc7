"""/accounts [integration] [filter]: the synced accounts, from the store, a page at a time."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import App

from bot.services import listing
from bot.services.container import Core
from bot.services.policy import Action
from bot.services.records import IntegrationInfo
from bot.slack.args import AccountsArgs, parse_accounts
from bot.slack.commands import MessageJson, read_only_command
from bot.slack.listing_access import permitted
from handlers.accounts.messages import AccountsQuery, build_json


def render_accounts(
    core: Core, actor: str, query: AccountsQuery, words: AccountsArgs | None = None
) -> dict[str, Any]:
    """The /accounts message for this query (or for the words typed, once the integrations'
    names tell an integration from a filter), refusing integrations the actor may not see."""
    message: dict[str, Any] = json.loads(render_accounts_json(core, actor, query, words))
    return message


def render_accounts_json(
    core: Core, actor: str, query: AccountsQuery, words: AccountsArgs | None = None
) -> MessageJson:
    """render_accounts' message as its JSON text, the one kept (handlers.accounts.messages).

    The integrations are read fresh (who may list them is decided from them), then the page,
    on one connection; asked again, both in one statement, the page guessed and used only if
    the decision picks what was guessed (bot.services.listing.accounts_listing).
    Slack standing and user groups come from `core.people`, the process's directory (answers
    kept at most a minute, bot.slack.people).
    """
    shown = query

    def choose(every: list[IntegrationInfo]) -> tuple[list[IntegrationInfo], str | None]:
        nonlocal shown
        if words is not None:
            shown = AccountsQuery(*words.split({i.name for i in every}), query.page)
        mine = permitted(
            core, actor, Action.LIST_ACCOUNTS, core.people, shown.integration, every=every
        )
        return mine, shown.text_filter

    # Who asks and what: the listing guesses the integrations it will choose from the last
    # time they were asked the same (bot.services.listing.accounts_listing).
    guess = (actor, query, words)
    page = listing.accounts_listing(core, choose, page=query.page, guess=guess)
    return build_json(page, shown.at(page.page))


def register(app: App, core: Core) -> None:
    def render(command: dict[str, Any], words: AccountsArgs) -> MessageJson:
        return render_accounts_json(core, command["user_id"], AccountsQuery(), words)

    # Answered in the ack, and a retry of it answered again: a listing only reads
    # (bot.slack.commands.read_only_command).
    assert core.deliveries is not None  # create_app builds it before any listener
    read_only_command(
        app,
        "/accounts",
        parse_accounts,
        "/accounts",
        render,
        parse_what="a command",
        pool=core.after_ack,
        read_only=core.deliveries.read_only,
    )
