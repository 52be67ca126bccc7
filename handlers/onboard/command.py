"""/onboard: open the modal inside the trigger's 3 seconds, then fill it from the store.

`/onboard invite @user` is the invites feature (handlers/invite), which has its own listener.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.services import lifecycle
from bot.services.container import Core
from bot.services.policy import Action
from bot.slack import blocks as bk
from bot.slack.args import parse_onboard
from bot.slack.commands import command_listener
from bot.slack.errors import run_reporting
from bot.slack.listing_access import permitted
from bot.slack.modals import message_view
from handlers.onboard.views import OnboardContext, OnboardForm, OnboardView


def onboard_view(
    core: Core,
    client: WebClient,
    actor: str,
    context: OnboardContext,
    *,
    integration_id: int | None = None,
    error: str | None = None,
    values: OnboardForm | None = None,
) -> dict[str, Any]:
    """The filled modal: the integrations the actor may onboard into, groups of the chosen one."""
    mine = permitted(core, actor, Action.ONBOARD, core.people)
    choices = [(i.id, i.name) for i in mine if not i.read_only] or [(i.id, i.name) for i in mine]
    ids = [i for i, _ in choices]
    current = integration_id if integration_id in ids else ids[0]
    return OnboardView.build(
        integrations=choices,
        current=current,
        groups=list(lifecycle.grantable_groups(core, current)),
        context=context,
        error=error,
        values=values,
    )


def open_onboard(core: Core, client: WebClient, command: dict[str, Any]) -> None:
    opened = client.views_open(
        trigger_id=command["trigger_id"],
        view=bk.loading_modal(OnboardView.CALLBACK_ID + "_loading", OnboardView.TITLE),
    )
    view_id = opened["view"]["id"]
    context = OnboardContext(
        channel_id=command.get("channel_id"), response_url=command.get("response_url")
    )

    def fill() -> None:
        view = onboard_view(core, client, command["user_id"], context)
        client.views_update(view_id=view_id, view=view)

    # Already in the pool command_listener runs the work in (the modal opened first, on the
    # trigger): the fill follows in the same thread.
    run_reporting(
        lambda text: client.views_update(view_id=view_id, view=message_view(text)),
        "/onboard",
        fill,
    )


def register(app: App, core: Core) -> None:
    # `/onboard invite …` never reaches here: handlers/invite's listener, registered
    # first, takes every text this parser reads as `invite`.
    command_listener(
        app,
        "/onboard",
        parse_onboard,
        "/onboard",
        lambda client, command, _args, _respond: open_onboard(core, client, command),
        pool=core.after_ack,
    )
