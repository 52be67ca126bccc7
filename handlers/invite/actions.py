"""The DM's "Choose username and password" button: opens the invitee's modal.

The button's value is only the invite id; the clicker must be the Slack user it was sent to.
A loading modal opens at once (the trigger id lives 3 seconds), then the form replaces it once
the account's password policy has been read from AWS.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import invites
from bot.services.container import Core
from bot.services.errors import AwsError, RoleUpError
from bot.slack import blocks as bk
from bot.slack.errors import run_after_ack
from bot.slack.mrkdwn import escape
from handlers.invite.blocks import (
    OPEN_ACTION,
    InviteAnswerModal,
    loading_view,
)

logger = logging.getLogger(__name__)


def register(app: App, core: Core) -> None:
    @app.action(OPEN_ACTION)
    def invite_open(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        # The modal asks AWS for the password rules: on the pool of work that calls AWS.
        run_after_ack(
            core.decisions,
            lambda text: None,
            "opening an invite",
            lambda: open_answer_modal(core, body, client),
        )


def open_answer_modal(core: Core, body: dict[str, Any], client: WebClient) -> None:
    try:
        opened = client.views_open(
            trigger_id=body["trigger_id"], view=loading_view(InviteAnswerModal.CALLBACK_ID)
        )
    except SlackApiError as exc:
        logger.warning("opening the invite modal failed: %s", exc.response.get("error"))
        return
    view_id = str(opened["view"]["id"])
    client.views_update(view_id=view_id, view=_answer_view(core, body))


def _answer_view(core: Core, body: dict[str, Any]) -> dict[str, Any]:
    user = str(body.get("user", {}).get("id", ""))
    actions = body.get("actions") or [{}]
    raw_id = str(actions[0].get("value", ""))
    try:
        if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 10):
            raise invites.InviteNotFound()
        invite = invites.open_invite_by_id(core, int(raw_id), slack_user_id=user)
        rules = invites.password_policy(core, invite.integration_id, actor=invites.invitee(invite))
    except AwsError:
        return bk.message_modal("AWS sign-in", "AWS did not answer. Try the button again shortly.")
    except RoleUpError as exc:
        return bk.message_modal("AWS sign-in", escape(exc))
    container = body.get("container") or {}
    return InviteAnswerModal.build(
        invite,
        rules,
        channel=container.get("channel_id") or body.get("channel", {}).get("id"),
        ts=container.get("message_ts") or body.get("message", {}).get("ts"),
    )
