"""Break-glass in Slack: `/roleup breakglass …` (given at once, announced to the approvers) and
the announcement's *Revoke now* and *Acknowledge*. Who may do what is decided by the services
(the policy), never by who can see the message."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.notices import (
    BREAKGLASS_ACK_ACTION,
    BREAKGLASS_REVOKE_ACTION,
    announce_breakglass,
    breakglass_message,
)
from bot.services import breakglass, expiry, grants
from bot.services.container import Core
from bot.services.errors import RoleUpError
from bot.services.requesting import BreakGlassAsk, request_breakglass
from bot.slack.args import RoleupCommand
from bot.slack.buttons import grant_id_of
from bot.slack.errors import ephemeral, run_after_ack
from bot.slack.mrkdwn import escape
from bot.slack.subcommands import roleup_matcher, run_roleup

logger = logging.getLogger(__name__)


def use_breakglass(core: Core, command: dict[str, Any], parsed: RoleupCommand, reply: Any) -> None:
    """Give the access, tell the caller, then announce it to the approvers."""
    assert parsed.group is not None  # parse_roleup requires it
    given = request_breakglass(
        core,
        actor=command["user_id"],
        ask=BreakGlassAsk(parsed.group, parsed.seconds, parsed.reason, parsed.integration),
        response_url=command.get("response_url"),
    )
    grant = given.grant
    if grant is None:  # the account already had the group: nothing to announce
        reply(f":information_source: {escape(given.request.outcome or 'Nothing was granted.')}")
        return
    reply(
        f":rotating_light: Break-glass: *{escape(grant.group)}* added to "
        f"*{escape(grant.user_name)}* in *{escape(grant.integration)}* until "
        f"{grants.shown(grant.ends_at)}. The approvers have been told; it ends by itself "
        "(or with *End now* in the App Home)."
    )
    announce_breakglass(core, breakglass.first_announcement(core, grant))


def register(app: App, core: Core) -> None:
    @app.command("/roleup", matchers=[roleup_matcher("breakglass")])
    def breakglass_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        run_roleup(
            core.decisions,
            ack,
            command,
            respond,
            lambda parsed, reply: use_breakglass(core, command, parsed, reply),
        )

    @app.action(BREAKGLASS_REVOKE_ACTION)
    def revoke(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        actor, grant_id = body["user"]["id"], grant_id_of(body)

        def work() -> None:
            if grant_id is None:
                raise RoleUpError("That button is out of date.")
            ended = expiry.revoke(core, grant_id, actor=actor).grant
            text, blocks = breakglass_message(ended, revoked_by=actor)
            respond(text=text, blocks=blocks, replace_original=True)

        run_after_ack(core.decisions, ephemeral(respond), "revoking break-glass access", work)

    @app.action(BREAKGLASS_ACK_ACTION)
    def acknowledge(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        actor, grant_id = body["user"]["id"], grant_id_of(body)

        def work() -> None:
            if grant_id is None:
                raise RoleUpError("That button is out of date.")
            row = breakglass.acknowledge(core, grant_id, actor=actor)
            text, blocks = breakglass_message(row)
            respond(text=text, blocks=blocks, replace_original=True)

        run_after_ack(core.after_ack, ephemeral(respond), "acknowledging break-glass access", work)
