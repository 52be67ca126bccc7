"""/accounts [integration] [filter]: the synced accounts, from the store, a page at a time."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.services.container import Core
from bot.services.listing import accounts_page, all_integrations
from bot.services.policy import Action
from bot.slack.access import SlackMemberOf
from bot.slack.args import UsageError, parse_accounts
from bot.slack.errors import ack_with_error, ephemeral, run_reporting
from handlers.listing_access import permitted
from handlers.messages.accounts import AccountsQuery, build


def render_accounts(
    core: Core, client: WebClient, actor: str, query: AccountsQuery
) -> dict[str, Any]:
    """The /accounts message for this query, refusing integrations the actor may not see."""
    member_of = SlackMemberOf(client)
    with core.sessions() as session:
        integrations = permitted(
            core, session, actor, Action.LIST_ACCOUNTS, member_of, query.integration
        )
        page = accounts_page(session, integrations, text_filter=query.text_filter, page=query.page)
    return build(page, query.at(page.page))


def query_from_text(core: Core, text: str) -> AccountsQuery:
    args = parse_accounts(text)
    with core.sessions() as session:
        names = {i.name for i in all_integrations(session)}
    integration, text_filter = args.split(names)
    return AccountsQuery(integration, text_filter, 0)


def register(app: App, core: Core) -> None:
    @app.command("/accounts")
    def accounts_command(
        ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        try:
            parse_accounts(command.get("text") or "")
        except UsageError as exc:
            ack_with_error(ack, exc, "a command")
            return
        ack()

        def work() -> None:
            query = query_from_text(core, command.get("text") or "")
            message = render_accounts(core, client, command["user_id"], query)
            respond(**message, response_type="ephemeral")

        run_reporting(ephemeral(respond), "/accounts", work)
