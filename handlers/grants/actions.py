"""The buttons of a time-bound grant (in its reminders and the App Home): End now, and Extend
with its modal. Who may press them is decided by the services, never by who got the message."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.notices import GRANT_END_ACTION
from bot.services import expiry, grants
from bot.services.container import Core
from bot.services.errors import RoleUpError
from bot.services.requesting import request_extend_grant
from bot.slack.buttons import grant_id_of, in_home
from bot.slack.errors import button_reply, run_after_ack
from bot.slack.extend import register_extend
from bot.slack.home import publish_home
from bot.slack.mrkdwn import escape
from handlers.grants.views import ExtendView

logger = logging.getLogger(__name__)


def register(app: App, core: Core) -> None:
    @app.action(GRANT_END_ACTION)
    def end_now(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        actor = body["user"]["id"]
        grant_id = grant_id_of(body)

        def work() -> None:
            if grant_id is None:
                raise RoleUpError("That button is out of date.")
            ended = expiry.end_now(core, grant_id, actor=actor).grant
            text = (
                f":white_check_mark: Ended: *{escape(ended.group)}* removed from "
                f"*{escape(ended.user_name)}* in *{escape(ended.integration)}*."
            )
            if in_home(body):
                publish_home(core, client, actor)
            else:
                respond(text=text, replace_original=True)

        run_after_ack(core.decisions, button_reply(client, body, respond), "ending the grant", work)

    register_extend(
        app,
        core,
        ExtendView,
        grants.extendable,
        lambda core, actor, grant_id, term, why: request_extend_grant(
            core, actor=actor, grant_id=grant_id, term=term, why=why
        ),
    )
