"""Access reviews in Slack: `/roleup review start|status`, the *Review* button of the DMs, and
the App Home items' *Keep* (a modal with an optional note), *Remove from group…* (a modal of
its groups) and *Offboard*. Who may decide what is the services' to say (policy.may_review);
a refusal is one sentence, in a DM when the click came from the App Home."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.review_notices import REVIEW_OPEN_ACTION, announce_start
from bot.services import review_decisions, review_start, reviews
from bot.services.container import Core
from bot.services.errors import InvalidInput, RoleUpError
from bot.services.policy import Action
from bot.services.review_decisions import Decided
from bot.services.reviews import ItemView
from bot.slack.acked_work import cut_off
from bot.slack.args import RoleupCommand
from bot.slack.commands import checked_within, started
from bot.slack.errors import (
    button_reply,
    modal_button,
    run_after_ack,
    run_in_modal,
    run_reporting,
)
from bot.slack.home import publish_home
from bot.slack.listing_access import permitted
from bot.slack.modal_reply import ModalReply, outcome
from bot.slack.modals import message_view
from bot.slack.mrkdwn import escape
from bot.slack.review_blocks import (
    KEEP_ACTION,
    OFFBOARD_ACTION,
    PAGE_ACTION,
    REMOVE_ACTION,
    KeepView,
    RemoveView,
    accounts_wait,
    status_text,
)
from bot.slack.subcommands import roleup_matcher, run_roleup

logger = logging.getLogger(__name__)

Reply = Callable[[str], Any]
SAVING = ":hourglass_flowing_sand: Saving your decision…"


# --- /roleup review start | status -----------------------------------------------------------
def start_review(
    core: Core, client: WebClient, actor: str, parsed: RoleupCommand, reply: Reply
) -> None:
    started = review_start.request_start(
        core,
        actor=actor,
        integration_name=parsed.integration,
        due_days=parsed.count,
        member_of=core.people.member_of,
    )
    reply(
        f":mag: Access review #{started.campaign_id} of *{escape(started.integration)}* started: "
        f"{started.items} account{'s' if started.items != 1 else ''} ({started.flagged} flagged), "
        f"due *{reviews.shown(started.due_at)}*. Its managers review them in RoleUp's Home tab."
    )
    announce_start(core, started)


def show_status(core: Core, client: WebClient, actor: str, reply: Reply) -> None:
    """The open campaigns of the integrations the actor may start reviews of."""
    mine = {i.name for i in permitted(core, actor, Action.START_REVIEW, core.people)}
    reply(status_text([c for c in reviews.status(core) if c.integration in mine]))


# --- buttons and modals ------------------------------------------------------------------------
def _value(body: dict[str, Any]) -> int | None:
    value = str(((body.get("actions") or [{}])[0]).get("value") or "")
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _required(item_id: int | None) -> int:
    if item_id is None:
        raise RoleUpError("That button is out of date.")
    return item_id


def register(app: App, core: Core) -> None:
    @app.command("/roleup", matchers=[roleup_matcher("review_start", "review_status")])
    def review_command(
        ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        def work(parsed: RoleupCommand, reply: Reply) -> None:
            if parsed.name == "review_start":
                start_review(core, client, command["user_id"], parsed, reply)
            else:
                show_status(core, client, command["user_id"], reply)

        run_roleup(core.decisions, ack, command, respond, work)

    @app.action(REVIEW_OPEN_ACTION)
    def review_open(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        actor = body["user"]["id"]

        def work() -> None:
            publish_home(core, client, actor)
            page = reviews.open_items_for(core, actor)
            respond(
                text=f":mag: {accounts_wait(page.total)} for your review in RoleUp's *Home* tab.",
                response_type="ephemeral",
                replace_original=False,
            )

        run_after_ack(
            core.after_ack, button_reply(client, body, respond), "opening the review", work
        )

    @app.action(PAGE_ACTION)
    def review_page(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        actor, offset = body["user"]["id"], _value(body) or 0
        run_after_ack(
            core.after_ack,
            lambda text: None,  # as before: a failed page turn is for the log alone
            "paging the review",
            lambda: publish_home(core, client, actor, review_offset=offset),
        )

    def decision_modal(build: Callable[[ItemView], dict[str, Any]]) -> Callable[..., Any]:
        """A review item's modal (Keep, Remove from group…), for the reviewer who clicked."""

        def modal(body: dict[str, Any]) -> dict[str, Any]:
            item_id = _required(_value(body))
            return build(review_decisions.for_decision(core, item_id, reviewer=body["user"]["id"]))

        return modal

    keep, remove = decision_modal(KeepView.build), decision_modal(RemoveView.build)
    app.action(KEEP_ACTION)(modal_button(core.after_ack, "keeping the account", keep))
    app.action(REMOVE_ACTION)(modal_button(core.after_ack, "removing from a group", remove))

    @app.action(OFFBOARD_ACTION)
    def offboard_clicked(
        ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        actor = body["user"]["id"]
        reply = button_reply(client, body, respond)

        def work() -> None:
            decided = review_decisions.offboard(core, _required(_value(body)), reviewer=actor)
            reply(f":outbox_tray: {escape(decided.text)} An approver decides it.")
            publish_home(core, client, actor)

        run_after_ack(core.decisions, reply, "offboarding from the review", work)

    @app.view(KeepView.CALLBACK_ID)
    def keep_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        actor = body["user"]["id"]
        try:
            item_id, note = KeepView.parse(view)
        except RoleUpError as exc:
            _refused(ack, exc, KeepView.TITLE)
            return
        modal = ModalReply.of(client, body)
        # Deciding asks Slack who the reviewer is (users.info) and writes the store: in a pool,
        # awaited ANSWER_WITHIN so the answer stays in the ack; later, the ack says so and the
        # outcome is shown in the modal when it comes.
        decision = checked_within(
            core.after_ack,
            lambda: review_decisions.keep(core, item_id, reviewer=actor, note=note),
            # Handed to the pool: this runs in the request's thread when the decision ends just
            # as the wait for it does. Not run_after_ack: once decided, a stop dropping the
            # message must not tell the reviewer that nothing was changed.
            lambda late: started(
                core.after_ack, partial(_kept_late, core, client, modal, actor, late)
            ),
            if_cut=cut_off(partial(_show_kept, modal), "keeping the account"),
        )
        if decision is None:
            ack(response_action="update", view=message_view(SAVING, KeepView.TITLE))
            return
        try:
            decided = decision.result()
        except InvalidInput as exc:
            if exc.field == "note":
                ack(response_action="errors", errors={KeepView.NOTE: exc.user_message[:150]})
                return
            _refused(ack, exc, KeepView.TITLE)
            return
        except RoleUpError as exc:
            _refused(ack, exc, KeepView.TITLE)
            return
        ack()
        run_after_ack(
            core.after_ack,
            lambda text: None,
            "refreshing the App Home",
            lambda: publish_home(core, client, actor),
        )
        logger.info("review item %s kept by %s", decided.item_id, actor)

    @app.view(RemoveView.CALLBACK_ID)
    def remove_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        actor = body["user"]["id"]
        try:
            item_id, groups = RemoveView.parse(view)
        except InvalidInput as exc:
            _refused(ack, exc, RemoveView.TITLE)
            return
        if not groups:
            ack(response_action="errors", errors={RemoveView.GROUPS: "Choose at least one group."})
            return

        def work(show: Reply) -> None:
            decided = review_decisions.remove_from_groups(
                core, item_id, reviewer=actor, groups=groups
            )
            waits = " An approver decides it." if decided.request_id else ""
            show(f":outbox_tray: {escape(decided.text)}{waits}")
            publish_home(core, client, actor)

        render = partial(message_view, title=RemoveView.TITLE)
        modal = ModalReply.of(client, body)
        run_in_modal(core.decisions, ack, modal, render, "removing from a group", work)


def _kept_late(
    core: Core, client: WebClient, modal: ModalReply, actor: str, decision: Future[Decided]
) -> None:
    """The outcome of a Keep decided after its ack, in the modal the ack left open (or a DM,
    if it was closed meanwhile)."""
    show = partial(_show_kept, modal)

    def shown() -> None:
        decided = decision.result()
        show(f":white_check_mark: {escape(decided.text)}")
        logger.info("review item %s kept by %s", decided.item_id, actor)
        publish_home(core, client, actor)

    run_reporting(show, "keeping the account", shown)


def _show_kept(modal: ModalReply, text: str) -> None:
    modal.show(message_view(text, KeepView.TITLE))


def _refused(ack: Ack, exc: RoleUpError, title: str) -> None:
    """The modal closes on the refusal, in one line."""
    ack(
        response_action="update",
        view=outcome(message_view(f":no_entry: {escape(exc.user_message)}", title)),
    )
