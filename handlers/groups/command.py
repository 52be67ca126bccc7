"""/groups <iam-username> [integration]: show a person's groups in a modal and change them.

The modal opens at once; the current groups come from IAM after the ack. Submitting asks for the
difference (bot.services.requesting.request_set_groups); the policy says whether it runs at once
or waits for an approver.
"""

from __future__ import annotations

from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.services import approvals, grants, lifecycle, listing
from bot.services.container import Core
from bot.services.errors import InvalidInput, RoleUpError
from bot.services.policy import Action
from bot.services.reasons import NONE, Justification
from bot.services.request_kinds import refuse_own_principal
from bot.services.requesting import request_set_groups
from bot.slack import blocks as bk
from bot.slack.access import require
from bot.slack.acked_work import cut_off
from bot.slack.approval_messages import submitted_text
from bot.slack.args import GroupsArgs, parse_groups
from bot.slack.commands import (
    checked_within,
    command_listener,
    options_within,
    refused_in_ack,
)
from bot.slack.errors import run_after_ack, run_in_modal, run_reporting
from bot.slack.justification import JustificationFields
from bot.slack.listing_access import holding_user
from bot.slack.modal_reply import ModalReply
from bot.slack.modals import message_view
from bot.slack.mrkdwn import escape
from handlers.groups.views import GroupsContext, GroupsView

if TYPE_CHECKING:
    from bot.services.records import IntegrationInfo

APPLYING = ":hourglass_flowing_sand: Applying…"


def find_integration(
    core: Core, client: WebClient, actor: str, args: GroupsArgs
) -> IntegrationInfo:
    return holding_user(
        core, actor, Action.CHANGE_GROUPS, args.integration, args.user_name, "/groups"
    )


def groups_view(core: Core, client: WebClient, actor: str, args: GroupsArgs) -> dict[str, Any]:
    integration = find_integration(core, client, actor, args)
    refuse_own_principal(core, integration.id, args.user_name)  # said before the form opens
    current = list(lifecycle.current_groups(core, integration.id, args.user_name, actor=actor))
    grantable = list(lifecycle.grantable_groups(core, integration.id))
    return GroupsView.build(
        integration=integration.name,
        context=GroupsContext(integration.id, args.user_name),
        current=current,
        grantable=grantable,
        ends=grants.ends_for_user(core, integration.id, args.user_name),
    )


def apply_groups(
    core: Core,
    actor: str,
    context: GroupsContext,
    wanted: list[str],
    term: grants.Term | None = None,
    why: Justification = NONE,
) -> str:
    """Ask for the difference (the service and its policy decide the rest); the text to show."""
    request = request_set_groups(
        core,
        actor=actor,
        integration_id=context.integration_id,
        user_name=context.user_name,
        wanted=sorted(set(wanted)),
        term=term,
        why=why,
    )
    name = listing.integration_name(core, context.integration_id)
    who = f"*{escape(context.user_name)}* in *{escape(name)}*"
    if request is None:
        return f"No change: {who} already has exactly those groups."
    if request.state == "pending":
        return str(submitted_text(request))
    added = request.payload.get("added") or []
    removed = request.payload.get("removed") or []
    shown_added = ", ".join(escape(g) for g in added) or "none"
    shown_removed = ", ".join(escape(g) for g in removed) or "none"
    lasting = ""
    if added and term is not None and not term.permanent:
        lasting = f" ({escape(_lasting(core, request.id) or term.describe())})"
    return (
        f":white_check_mark: Groups of {who} changed. "
        f"Added: {shown_added}{lasting}. Removed: {shown_removed}."
    )


def _lasting(core: Core, request_id: str) -> str | None:
    ends = grants.end_of_request(core, request_id)
    return f"until {grants.shown(ends)}" if ends else None


def register(app: App, core: Core) -> None:
    def open_and_fill(
        client: WebClient, command: dict[str, Any], args: GroupsArgs, _respond: Respond
    ) -> None:
        opened = client.views_open(
            trigger_id=command["trigger_id"],
            view=bk.loading_modal(GroupsView.CALLBACK_ID + "_loading", GroupsView.TITLE),
        )
        view_id = opened["view"]["id"]
        run_reporting(
            lambda text: client.views_update(
                view_id=view_id, view=message_view(text, GroupsView.TITLE)
            ),
            "/groups",
            lambda: client.views_update(
                view_id=view_id, view=groups_view(core, client, command["user_id"], args)
            ),
        )

    command_listener(app, "/groups", parse_groups, "/groups", open_and_fill, pool=core.after_ack)

    @app.view(GroupsView.CALLBACK_ID)
    def groups_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        try:
            context, wanted, term = GroupsView.parse(view)
        except RoleUpError as exc:
            where = exc.field if exc.field in (GroupsView.FOR, GroupsView.UNTIL) else None
            ack(
                response_action="errors",
                errors={where or GroupsView.GROUPS: exc.user_message[:150]},
            )
            return
        try:
            why = JustificationFields.parse(view)
        except InvalidInput as exc:
            ack(response_action="errors", errors=JustificationFields.errors(exc))
            return
        actor = body["user"]["id"]
        render = partial(message_view, title=GroupsView.TITLE)
        modal = ModalReply.of(client, body)

        def show(text: str) -> None:
            modal.show(render(text))

        def checked_late(check: Future[None]) -> None:
            """The reason's check finished after the ack: a refusal is shown in the modal (the
            form is gone), a pass asks as an in-time one does."""
            try:
                check.result()
            except InvalidInput as exc:
                show(f":warning: {escape(exc.user_message)} Nothing was changed.")
                return
            show(apply_groups(core, actor, context, wanted, term, why))

        # Whether the integration requires a reason is the store's: in a pool, awaited
        # ANSWER_WITHIN so the field error stays in the ack; later, the ack says it is applying.
        check = checked_within(
            core.after_ack,
            lambda: approvals.check_reason(core, [context.integration_id], why),
            lambda late: run_after_ack(
                core.decisions, show, "changing groups", lambda: checked_late(late)
            ),
            if_cut=cut_off(show, "changing groups"),
        )
        if check is None:
            ack(response_action="update", view=render(APPLYING))
            return
        if refused_in_ack(check, ack, InvalidInput, JustificationFields.errors):
            return
        run_in_modal(
            core.decisions,
            ack,
            modal,
            render,
            "changing groups",
            lambda show: show(apply_groups(core, actor, context, wanted, term, why)),
            waiting=APPLYING,
        )

    # An options request is answered in its ack: options_within bounds how long it may take.
    def group_search(body: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            context = GroupsContext.load((body.get("view") or {}).get("private_metadata"))
            integration = listing.integration_by_id(core, context.integration_id)
            if integration is None:
                raise RoleUpError("gone")
            require(
                body["user"]["id"],
                Action.CHANGE_GROUPS,
                integration,
                core.settings.admins,
                core.people,
            )
        except RoleUpError:
            return []
        needle = str(body.get("value") or "").lower()[:128]
        names = [
            g
            for g in lifecycle.grantable_groups(core, context.integration_id)
            if needle in g.lower()
        ]
        return bk.options((g, g) for g in names)

    app.options(GroupsView.SEARCH_ACTION)(
        options_within(core.after_ack, "searching groups", group_search)
    )
