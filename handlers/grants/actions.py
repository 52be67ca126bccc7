"""The buttons of a time-bound grant (in its reminders and the App Home): End now, and Extend
with its modal. Who may press them is decided by the services, never by who got the message."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.notices import GRANT_END_ACTION, GRANT_EXTEND_ACTION
from bot.services import expiry, grants
from bot.services.container import Core
from bot.services.errors import InvalidInput, RoleUpError
from bot.services.requesting import request_extend_grant
from bot.slack.approval_messages import ask_in_modal
from bot.slack.buttons import grant_id_of, in_home
from bot.slack.errors import button_reply, modal_button, run_reporting
from bot.slack.home import publish_home
from bot.slack.justification import JustificationFields
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

        run_reporting(button_reply(client, body, respond), "ending the grant", work)

    def extend_modal(body: dict[str, Any]) -> dict[str, Any]:
        return ExtendView.build(grants.extendable(core, grant_id_of(body)))

    app.action(GRANT_EXTEND_ACTION)(modal_button("extending the grant", extend_modal))

    @app.view(ExtendView.CALLBACK_ID)
    def extend_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        try:
            grant_id, term = ExtendView.parse(view)
        except RoleUpError as exc:
            field = exc.field if exc.field in (ExtendView.FOR, ExtendView.UNTIL) else None
            ack(response_action="errors", errors={field or ExtendView.FOR: exc.user_message[:150]})
            return
        try:
            why = JustificationFields.parse(view)
        except InvalidInput as exc:
            ack(response_action="errors", errors=JustificationFields.errors(exc))
            return

        ask_in_modal(
            ack,
            client,
            view,
            ExtendView.TITLE,
            "extending the grant",
            lambda: request_extend_grant(
                core, actor=body["user"]["id"], grant_id=grant_id, term=term, why=why
            ),
        )
