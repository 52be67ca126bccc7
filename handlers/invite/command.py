"""`/onboard invite @user [integration]`: opens the small "make an invite" modal.

`register` hooks /onboard for every text /onboard's parser reads as `invite` and is registered
before the /onboard router (handlers/onboard), so it answers those itself, right after its ack,
inside the trigger's 3 seconds: views.open needs the trigger id.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import invites, listing
from bot.services.container import Core
from bot.services.errors import InvalidInput, NotAllowed, RoleUpError
from bot.services.policy import Action
from bot.slack.access import allowed
from bot.slack.args import USAGE, parse_invite, parse_onboard
from bot.slack.errors import describe_failure, ephemeral, run_after_ack
from bot.slack.mrkdwn import escape
from handlers.invite.blocks import InviteCreateModal

if TYPE_CHECKING:
    from bot.services.records import IntegrationInfo

logger = logging.getLogger(__name__)


def may_invite(core: Core, actor: str, integration: IntegrationInfo) -> bool:
    """RoleUp admins and the integration's managers (people or Slack user groups), asked of the
    shared directory: views.open must follow within the trigger's 3 seconds."""
    return allowed(actor, Action.INVITE, integration, core.settings.admins, core.people)


def choose_integration(core: Core, actor: str, wanted: str | None) -> IntegrationInfo:
    rows = listing.integrations(core)
    if wanted is not None:
        found = next((r for r in rows if r.name == wanted), None)
        if found is None:
            raise InvalidInput(f"There is no integration named {wanted}.")
        if not may_invite(core, actor, found):
            raise NotAllowed(f"Only the managers of {found.name} can send invites for it.")
        return found
    mine = [r for r in rows if may_invite(core, actor, r)]
    if not mine:
        raise NotAllowed("Only an integration's managers can send invites, and you manage none.")
    if len(mine) > 1:
        names = ", ".join(r.name for r in mine)
        raise InvalidInput(f"Which integration? Yours are {names}. {USAGE['/onboard invite']}")
    return mine[0]


def handle_invite(
    core: Core, *, client: WebClient, command: dict[str, Any], text: str, respond: Respond
) -> None:
    """Open the invite modal for `text` (`@user [integration]`), or say why not (ephemeral)."""
    actor = str(command.get("user_id", ""))
    try:
        args = parse_invite(text)
        integration = choose_integration(core, actor, args.integration)
        if integration.read_only:
            raise NotAllowed(f"{integration.name} is read-only: it cannot create accounts.")
        view = _modal(core, integration, args.slack_user_id)
        client.views_open(trigger_id=command["trigger_id"], view=view)
    except RoleUpError as exc:
        _tell(respond, escape(exc.user_message))
    except SlackApiError as exc:
        logger.warning("opening the invite modal failed: %s", exc.response.get("error"))
        _tell(respond, "Slack did not open the invite form. Try the command again.")
    except Exception as exc:  # the store down, a bug: a reference to the log, never silence
        _tell(respond, describe_failure(exc, "/onboard invite"))


def _modal(core: Core, integration: IntegrationInfo, slack_user_id: str) -> dict[str, Any]:
    choices = invites.invite_choices(core, integration.id)
    return InviteCreateModal.build(
        integration_id=integration.id,
        integration=integration.name,
        slack_user_id=slack_user_id,
        groups=choices.groups,
        policies=choices.policies,
        ttl_hours=core.settings.invite_ttl_hours,
    )


def _tell(respond: Respond, text: str) -> None:
    try:
        respond(text=text, response_type="ephemeral")
    except Exception:  # the reply to one command is not worth a stack trace
        logger.warning("could not answer /onboard invite")


def invite_text(text: str) -> str | None:
    """What `handle_invite` reads of an `/onboard` text, or None when it is no invite.

    Text whose first word is `invite` is read whole; text that /onboard's parser reads as
    `invite` although its first word is not (a leading control character, a quoted "invite")
    is read as the parser leaves it after that word."""
    words = text.split()
    if words and words[0].lower() == "invite":
        return text
    try:
        args = parse_onboard(text)
    except Exception:  # UsageError, or a parser bug: /onboard's own listener answers either
        return None
    return args.invite_text if args.invite else None


def is_invite(body: dict[str, Any]) -> bool:
    return invite_text(str(body.get("text") or "")) is not None


def register(app: App, core: Core) -> None:
    """`/onboard invite ...` only; any other /onboard text is left to the /onboard router."""

    @app.command("/onboard", matchers=[is_invite])
    def onboard_invite(
        ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        text = invite_text(command.get("text") or "") or ""
        run_after_ack(
            core.decisions,
            ephemeral(respond),
            "/onboard invite",
            lambda: handle_invite(core, client=client, command=command, text=text, respond=respond),
        )
