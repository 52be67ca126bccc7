"""The buttons of the /accounts message: Refresh (sync, then re-render), Previous, Next."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.services import sync
from bot.services.container import Core
from bot.services.people import People
from bot.services.policy import Action
from bot.slack.access import allowed
from bot.slack.errors import ephemeral, run_after_ack
from bot.slack.listing_access import permitted
from handlers.accounts.command import render_accounts
from handlers.accounts.messages import NEXT, PREVIOUS, REFRESH, AccountsQuery

logger = logging.getLogger(__name__)


def sync_shown(core: Core, client: WebClient, actor: str, query: AccountsQuery) -> None:
    """Sync the integrations the listing shows that the actor may sync (others stay as stored)."""
    member_of = core.people
    shown = permitted(core, actor, Action.LIST_ACCOUNTS, member_of, query.integration)
    ids = [i.id for i in shown if _may_sync(core, actor, i, member_of)]
    for integration_id in ids:
        sync.sync_integration(core, integration_id, actor=actor)


def _may_sync(core: Core, actor: str, integration: Any, member_of: People) -> bool:
    return allowed(actor, Action.SYNC, integration, core.settings.admins, member_of)


def register(app: App, core: Core) -> None:
    def rerender(
        body: dict[str, Any], client: WebClient, respond: Respond, *, refresh: bool
    ) -> None:
        action = (body.get("actions") or [{}])[0]
        query = AccountsQuery.from_value(str(action.get("value") or ""))
        actor = body["user"]["id"]

        def work() -> None:
            if refresh:
                sync_shown(core, client, actor, query)
            message = render_accounts(core, actor, query)
            respond(**message, response_type="ephemeral", replace_original=True)

        # A refresh syncs: as long as IAM takes, so on the pool of work that calls AWS.
        pool = core.decisions if refresh else core.after_ack
        run_after_ack(pool, ephemeral(respond), "the accounts listing", work)

    # Previous and Next only read: a Slack retry of one renders again, with no delivery key
    # (bot.slack.retry_guard). Refresh syncs, so it keeps its key.
    assert core.deliveries is not None  # create_app builds it before any listener
    core.deliveries.read_only.actions.update((PREVIOUS, NEXT))

    @app.action(REFRESH)
    def refresh(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        rerender(body, client, respond, refresh=True)

    @app.action(PREVIOUS)
    def previous(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        rerender(body, client, respond, refresh=False)

    @app.action(NEXT)
    def next_page(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        rerender(body, client, respond, refresh=False)
