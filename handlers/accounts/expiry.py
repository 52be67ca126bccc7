"""The Extend button of an expiring account (in its reminders) and its modal. Who may press it
is decided by the services, never by who got the message."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.notices import ACCOUNT_EXTEND_ACTION
from bot.services import account_expiry
from bot.services.container import Core
from bot.services.errors import InvalidInput
from bot.services.requesting import request_extend_account
from bot.slack.approval_messages import ask_in_modal
from bot.slack.buttons import grant_id_of
from bot.slack.errors import modal_button
from bot.slack.justification import JustificationFields
from handlers.accounts.extend_view import AccountExtendView

V = AccountExtendView


def register(app: App, core: Core) -> None:
    def extend_modal(body: dict[str, Any]) -> dict[str, Any]:
        # The same shape of value as a grant's: a small row id, re-read.
        return V.build(account_expiry.extendable(core, grant_id_of(body)))

    app.action(ACCOUNT_EXTEND_ACTION)(modal_button("extending the account", extend_modal))

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

        ask_in_modal(
            ack,
            client,
            view,
            V.TITLE,
            "extending the account",
            lambda: request_extend_account(
                core, actor=body["user"]["id"], expiry_id=expiry_id, expires_at=expires, why=why
            ),
        )
