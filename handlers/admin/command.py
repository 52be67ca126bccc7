"""/roleup help | integrations | integration add | integration edit <name> |
integration remove <name> | sync [name] |
link @user <iam-username> [integration] | audit [n] |
breakglass [integration:NAME] <group> <duration> <reason> | review start [integration] [days] |
review status.

`breakglass` and `review` are served by their features' own /roleup listeners
(bot.slack.subcommands), registered before this one; what they do not match lands here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.services import audit, lifecycle, listing, sync
from bot.services.container import Core
from bot.services.policy import Action
from bot.slack.access import require
from bot.slack.args import RoleupCommand, parse_roleup
from bot.slack.commands import command_listener
from bot.slack.errors import ephemeral
from bot.slack.listing_access import holding_user, permitted
from bot.slack.mrkdwn import escape, user
from bot.slack.subcommands import roleup_matcher
from handlers.admin import integration_remove
from handlers.admin.messages import audit_message, help_message, integrations_message

logger = logging.getLogger(__name__)

Reply = Callable[[str], Any]


def show_integrations(core: Core, client: WebClient, actor: str, respond: Respond) -> None:
    mine = permitted(core, actor, Action.LIST_INTEGRATIONS, core.people)
    counts = listing.accounts_per_integration(core)
    respond(**integrations_message(mine, counts), response_type="ephemeral")


def show_audit(core: Core, client: WebClient, actor: str, count: int, respond: Respond) -> None:
    require(actor, Action.READ_AUDIT, None, core.settings.admins, core.people)
    events = audit.latest(core, count)
    respond(**audit_message(events), response_type="ephemeral")


def run_sync(core: Core, client: WebClient, actor: str, name: str | None, reply: Reply) -> None:
    targets = [(i.id, i.name) for i in permitted(core, actor, Action.SYNC, core.people, name)]
    reply(f":arrows_counterclockwise: Syncing {', '.join(escape(n) for _, n in targets)}…")
    for integration_id, integration_name in targets:
        report = sync.sync_integration(core, integration_id, actor=actor)
        reply(f":white_check_mark: *{escape(integration_name)}*: {escape(report.summary())}")


def link_user(
    core: Core, client: WebClient, actor: str, parsed: RoleupCommand, reply: Reply
) -> None:
    assert parsed.user_name is not None and parsed.slack_user is not None
    target = holding_user(core, actor, Action.LINK, parsed.integration, parsed.user_name, "/roleup")
    lifecycle.link_slack_user(core, target.id, parsed.user_name, parsed.slack_user, actor=actor)
    reply(
        f":link: Linked {user(parsed.slack_user)} to *{escape(parsed.user_name)}* "
        f"in *{escape(target.name)}*."
    )


def dispatch(
    core: Core,
    client: WebClient,
    command: dict[str, Any],
    parsed: RoleupCommand,
    respond: Respond,
) -> None:
    actor = command["user_id"]
    reply = ephemeral(respond)
    if parsed.name == "integrations":
        show_integrations(core, client, actor, respond)
    elif parsed.name == "audit":
        show_audit(core, client, actor, parsed.count, respond)
    elif parsed.name == "sync":
        run_sync(core, client, actor, parsed.integration, reply)
    elif parsed.name == "link":
        link_user(core, client, actor, parsed, reply)
    elif parsed.name == "integration_remove":
        assert parsed.integration is not None  # parse_roleup requires the name
        integration_remove.handle_remove(
            core, client, command, parsed.integration, respond, why=parsed.why
        )


def register(app: App, core: Core) -> None:
    def answer(ack: Ack, client: WebClient, command: dict[str, Any], parsed: RoleupCommand) -> bool:
        """Help, and the modals (opened with the command's trigger), are the ack itself."""
        if parsed.name == "help":
            ack(**help_message(), response_type="ephemeral")
            return True
        if parsed.name == "integration_add":
            from handlers.admin.integration_add import open_integration_add

            open_integration_add(core, ack, client, command)
            return True
        if parsed.name == "integration_edit":
            from handlers.admin.integration_edit import open_integration_edit

            assert parsed.integration is not None  # parse_roleup requires the name
            open_integration_edit(core, ack, client, command, parsed.integration)
            return True
        return False

    # Help is answered in the ack from no store: a Slack retry of it is answered again, with
    # no delivery key (bot.slack.retry_guard). Matched by the parse that routes it here, so
    # `help extra`, `helpx` (usage errors) and every other subcommand keep their keys.
    assert core.deliveries is not None  # create_app builds it before any listener
    core.deliveries.read_only.add_subcommand("/roleup", roleup_matcher("help"))
    command_listener(
        app,
        "/roleup",
        parse_roleup,
        lambda parsed: f"/roleup {parsed.name}",
        lambda client, command, parsed, respond: dispatch(core, client, command, parsed, respond),
        parse_what="a command",
        answer=answer,
        pool=core.decisions,
    )
