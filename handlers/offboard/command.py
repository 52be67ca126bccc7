"""/offboard <iam-username> [integration] | /offboard @person — asks for approval, then offboards.

Either form may end with ` -- reason text`, with `ticket:SEC-123` (or `ticket:https://…`) before
it: the reason and ticket are shown to the approvers and kept in the audit.

The command is acknowledged at once; the accounts are found and their offboarding plans read
from AWS after the ack, and the request goes to the approvers with that plan as its preview.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot.services.container import Core
from bot.services.offboard_requests import (
    request_offboard,
    targets_by_username,
    targets_of_slack_user,
)
from bot.services.reasons import NONE, Justification, ReasonRequired
from bot.slack.approval_messages import submitted_text
from bot.slack.args import (
    UsageError,
    check_iam_username,
    check_integration_name,
    parse_justification,
    parse_user,
    tokenize,
)
from bot.slack.commands import command_listener

USAGE = (
    "Usage: `/offboard <iam-username> [integration] [ticket:SEC-123] [-- reason]`, or "
    "`/offboard @person [-- reason]` for every account linked to them."
)


@dataclass(frozen=True)
class OffboardArgs:
    slack_user: str | None = None
    user_name: str | None = None
    integration: str | None = None
    why: Justification = NONE

    @property
    def asked_for(self) -> str:
        return f"<@{self.slack_user}>" if self.slack_user else str(self.user_name)


def parse_offboard(text: str) -> OffboardArgs:
    """`@person`, or an IAM username optionally followed by an integration name; then an
    optional `ticket:…` and ` -- reason`."""
    try:
        text, why = parse_justification(text, "/offboard")
        tokens = tokenize(text, "/offboard")
        if not tokens or len(tokens) > 2:
            raise UsageError("Say whom to offboard." if not tokens else "Too many words.")
        slack_user = parse_user(tokens[0])
        if slack_user is not None:
            if len(tokens) > 1:
                raise UsageError("`@person` offboards every account linked to them: no more words.")
            return OffboardArgs(slack_user=slack_user, why=why)
        user_name = check_iam_username(tokens[0], "/offboard")
        integration = check_integration_name(tokens[1], "/offboard") if len(tokens) > 1 else None
    except UsageError as exc:
        raise UsageError(f"{exc} {USAGE}".strip()) from None
    return OffboardArgs(user_name=user_name, integration=integration, why=why)


def register(app: App, core: Core) -> None:
    command_listener(
        app,
        "/offboard",
        parse_offboard,
        "/offboard",
        lambda client, command, args, respond: ask_offboard(core, client, command, args, respond),
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
        raise UsageError(f"{exc.user_message} {USAGE}") from None
    respond(text=submitted_text(row), response_type="ephemeral", replace_original=False)
