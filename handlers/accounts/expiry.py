"""The Extend button of an expiring account (in its reminders) and its modal. Who may press it
is decided by the services, never by who got the message."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.notices import ACCOUNT_EXTEND_ACTION
from bot.services import account_expiry
from bot.services.container import Core
from bot.services.errors import InvalidInput, RoleUpError
from bot.services.requesting import request_extend_account
from bot.slack.approval_messages import submitted_text
from bot.slack.buttons import answer_to, grant_id_of
from bot.slack.errors import run_reporting
from bot.slack.justification import JustificationFields
from bot.slack.modals import message_view
from handlers.accounts.extend_view import AccountExtendView

V = AccountExtendView


def register(app: App, core: Core) -> None:
    @app.action(ACCOUNT_EXTEND_ACTION)
    def extend(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        expiry_id = grant_id_of(body)  # the same shape of value: a small row id, re-read

        def work() -> None:
            with core.sessions() as session:
                expiry = (
                    account_expiry.expiry_row(session, expiry_id) if expiry_id is not None else None
                )
            if expiry is None or expiry.state != account_expiry.SCHEDULED:
                raise RoleUpError("That account has been offboarded (or is being offboarded).")
            client.views_open(trigger_id=body["trigger_id"], view=V.build(expiry))

        run_reporting(answer_to(core, client, body, respond), "extending the account", work)

    @app.view(V.CALLBACK_ID)
    def extend_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        try:
            expiry_id, expires = V.parse(view)
            why = JustificationFields.parse(view)
        except InvalidInput as exc:
            errors = (
                {V.EXPIRES: exc.user_message[:150]}
                if exc.field == V.EXPIRES
                else JustificationFields.errors(exc)
            )
            ack(response_action="errors", errors=errors)
            return
        ack(
            response_action="update", view=message_view(":hourglass_flowing_sand: Asking…", V.TITLE)
        )

        def update(text: str) -> None:
            client.views_update(view_id=view["id"], view=message_view(text, V.TITLE))

        def work() -> None:
            request = request_extend_account(
                core, actor=body["user"]["id"], expiry_id=expiry_id, expires_at=expires, why=why
            )
            update(submitted_text(request))

        run_reporting(update, "extending the account", work)
