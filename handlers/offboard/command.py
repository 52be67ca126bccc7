"""/offboard <iam-username> [integration] | /offboard @person — asks for approval, then offboards.

Either form may end with ` -- reason text`, with `ticket:SEC-123` (or `ticket:https://…`) before
it: the reason and ticket are shown to the approvers and kept in the audit.

The command is acknowledged at once; the accounts are found and their offboarding plans read
from AWS after the ack, and the request goes to the approvers with that plan as its preview.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot.services.container import Core
from bot.services.offboard_requests import (
    request_offboard,
    targets_by_username,
    targets_of_slack_user,
)
from bot.services.reasons import ReasonRequired
from bot.slack.approval_messages import submitted_text
from bot.slack.args import (
    USAGE,
    OffboardArgs,
    UsageError,
    parse_offboard,
)
from bot.slack.commands import command_listener


def register(app: App, core: Core) -> None:
    command_listener(
        app,
        "/offboard",
        parse_offboard,
        "/offboard",
        lambda client, command, args, respond: ask_offboard(core, client, command, args, respond),
        pool=core.decisions,
    )


def ask_offboard(
    core: Core, client: WebClient, command: dict[str, Any], args: OffboardArgs, respond: Respond
) -> None:
    actor = str(command["user_id"])
    if args.slack_user is not None:
        targets = targets_of_slack_user(core, args.slack_user)
    else:
        assert args.user_name is not None
        targets = targets_by_username(core, args.user_name, args.integration)
    try:
        row = request_offboard(
            core,
            requester=actor,
            targets=targets,
            asked_for=args.asked_for,
            response_url=command.get("response_url"),
            whole_person=args.slack_user is not None,
            why=args.why,
        )
    except ReasonRequired as exc:
        raise UsageError(f"{exc.user_message} {USAGE['/offboard']}") from None
    respond(text=submitted_text(row), response_type="ephemeral", replace_original=False)
