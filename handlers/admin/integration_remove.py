"""`/roleup integration remove <name> [ticket:…] [-- reason]`: an admin asks, another admin or an
approver decides (as many distinct ones as the integration's approvals_required).

Called by the /roleup router (handlers.admin.command) after its ack.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.services import listing
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound
from bot.services.reasons import NONE, Justification, ReasonRequired
from bot.services.requesting import request_remove_integration
from bot.slack.approval_messages import submitted_text
from bot.slack.args import usage_error


def handle_remove(
    core: Core,
    client: WebClient,
    command: dict[str, Any],
    name: str,
    respond: Respond,
    *,
    why: Justification = NONE,
) -> None:
    actor = str(command["user_id"])
    integration = listing.integration_by_name(core, name)
    if integration is None:
        raise IntegrationNotFound(f"There is no integration {name}.")
    try:
        row = request_remove_integration(
            core,
            actor=actor,
            integration_id=integration.id,
            response_url=command.get("response_url"),
            why=why,
        )
    except ReasonRequired as exc:
        raise usage_error("/roleup", exc.user_message) from None
    respond(text=submitted_text(row), response_type="ephemeral", replace_original=False)
