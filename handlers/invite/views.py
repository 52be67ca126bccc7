"""The two invite modals' submissions: the manager sends an invite, the invitee answers it.

Both are answered inside the ack (field errors need `response_action="errors"`): the work is a
few store writes, IAM reads and Slack posts, well within Slack's 3 seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import approvals, invites, listing
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound, InvalidInput, NotAllowed, RoleUpError
from bot.services.iam import PasswordRules
from bot.slack import blocks as bk
from bot.slack.errors import run_after_ack
from bot.slack.justification import JustificationFields
from bot.slack.mrkdwn import escape
from handlers.invite.blocks import (
    InviteAnswerForm,
    InviteAnswerModal,
    InviteCreateModal,
    InviteRequestForm,
    answered_dm,
    answered_view,
    invite_dm,
    invite_sent_view,
    sending_view,
)
from handlers.invite.command import may_invite

logger = logging.getLogger(__name__)
UNEXPECTED = "Something went wrong on our side; nothing was changed. Try again in a minute."


def register(app: App, core: Core) -> None:
    @app.view(InviteCreateModal.CALLBACK_ID)
    def invite_create(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        send_invite(core, ack, str(body.get("user", {}).get("id", "")), view, client)

    @app.view(InviteAnswerModal.CALLBACK_ID)
    def invite_answer(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        answer_invite(core, ack, str(body.get("user", {}).get("id", "")), view, client)


# --- the manager sends -------------------------------------------------------------------------
def send_invite(core: Core, ack: Ack, actor: str, view: dict[str, Any], client: WebClient) -> None:
    """Ack at once (a sending note), then make the invite, DM it and show the outcome."""
    try:
        form = InviteCreateModal.parse(view)
        approvals.check_reason(core, [form.integration_id], form.why)
    except InvalidInput as exc:
        lasting = (InviteCreateModal.FOR, InviteCreateModal.UNTIL, InviteCreateModal.EXPIRES)
        errors = (
            {exc.field: exc.user_message[:150]}
            if exc.field in lasting
            else JustificationFields.errors(exc)
        )
        ack(response_action="errors", errors=errors)
        return
    if not form.slack_user_id:
        ack(response_action="errors", errors={InviteCreateModal.USER: "Choose a person."})
        return
    ack(response_action="update", view=bk.message_modal("Invite to AWS", "Sending the invite…"))
    view_id = str(view.get("id", ""))

    def send() -> None:
        outcome = _make_and_deliver(core, actor, form, client)
        try:
            client.views_update(view_id=view_id, view=outcome)
        except SlackApiError as exc:
            logger.warning("showing the invite outcome failed: %s", exc.response.get("error"))

    run_after_ack(
        core.decisions, _in_modal(client, view_id, "Invite not sent"), "sending an invite", send
    )


def _in_modal(client: WebClient, view_id: str, title: str) -> Callable[[str], Any]:
    """Where a failure after the ack is shown: the modal the ack left open."""
    return lambda text: client.views_update(view_id=view_id, view=bk.message_modal(title, text))


def _make_and_deliver(
    core: Core, actor: str, form: InviteRequestForm, client: WebClient
) -> dict[str, Any]:
    try:
        _check_manager(core, actor, form.integration_id, client)
        created = invites.create_invite(
            core,
            integration_id=form.integration_id,
            slack_user_id=form.slack_user_id,
            groups=form.groups,
            policies=form.policies,
            created_by=actor,
            why=form.why,
            term=form.term,
            account_expires=form.account_expires,
        )
    except RoleUpError as exc:
        return bk.message_modal("Invite not sent", escape(exc))
    problem = _deliver(client, created, actor, form)
    if problem:
        invites.revoke_unsent(core, created.invite_id)  # not a working link nobody received
        return bk.message_modal("Invite not sent", escape(problem))
    return invite_sent_view(created)


def _check_manager(core: Core, actor: str, integration_id: int, client: WebClient) -> None:
    integration = listing.integration_by_id(core, integration_id)
    if integration is None:
        raise IntegrationNotFound("That integration no longer exists.")
    if not may_invite(core, actor, integration):
        raise NotAllowed(f"Only the managers of {integration.name} can send invites for it.")


def _deliver(
    client: WebClient, created: invites.CreatedInvite, manager: str, form: InviteRequestForm
) -> str | None:
    """DM the invite; the reason it could not be sent, or None."""
    text, blocks = invite_dm(
        created,
        manager=manager,
        groups=form.groups,
        policies=form.policies,
        account_expires=form.account_expires,
    )
    try:
        opened = client.conversations_open(users=created.slack_user_id)
        client.chat_postMessage(channel=opened["channel"]["id"], text=text, blocks=blocks)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "unknown_error")
        logger.warning("invite %s: the DM failed: %s", created.invite_id, error)
        return f"Could not send this person a message ({error}); no invite was made."
    return None


# --- the invitee answers -----------------------------------------------------------------------
def answer_invite(core: Core, ack: Ack, user: str, view: dict[str, Any], client: WebClient) -> None:
    """Store-only checks inside the ack (field errors); the AWS checks and the request after it,
    the modal then updated with the outcome. A form without the password rules it was opened
    with has them read from AWS after the ack, and its password checked there."""
    form = InviteAnswerModal.parse(view)
    try:
        invite = invites.open_invite_by_id(core, form.invite_id, slack_user_id=user)
        errors = (
            invites.local_problems(core, invite, **form.choice(), rules=form.rules)
            if form.rules is not None
            else {}
        )
    except RoleUpError as exc:
        ack(response_action="update", view=bk.message_modal("AWS sign-in", escape(exc)))
        return
    if errors:
        ack(response_action="errors", errors=_field_errors(errors))
        return
    ack(response_action="update", view=sending_view())
    view_id = str(view.get("id", ""))

    def file() -> None:
        outcome, filed = _checked_answer(core, invite, form)
        try:
            client.views_update(view_id=view_id, view=outcome)
        except SlackApiError as exc:
            logger.warning("showing the invite outcome failed: %s", exc.response.get("error"))
        if filed:
            _mark_dm_answered(client, form.channel, form.ts, form.username, invite.integration)

    run_after_ack(
        core.decisions, _in_modal(client, view_id, "AWS sign-in"), "answering an invite", file
    )


def _checked_answer(
    core: Core, invite: invites.OpenInvite, form: InviteAnswerForm
) -> tuple[dict[str, Any], bool]:
    """_answer, once the password rules are known: the form's, or read from AWS now (then the
    local checks the ack could not make come first, shown on the form again)."""
    if form.rules is not None:
        return _answer(core, invite, form, form.rules)
    rules = invites.password_policy(core, invite.integration_id, actor=invites.invitee(invite))
    problems = invites.local_problems(core, invite, **form.choice(), rules=rules)
    if problems:
        again = InviteAnswerModal.build(
            invite, rules, channel=form.channel, ts=form.ts, username=form.username
        )
        return InviteAnswerModal.with_errors(again, problems), False
    return _answer(core, invite, form, rules)


def _answer(
    core: Core,
    invite: invites.OpenInvite,
    form: InviteAnswerForm,
    rules: PasswordRules,
) -> tuple[dict[str, Any], bool]:
    """The view to show once the answer has been checked with AWS, and whether it was filed."""
    try:
        request = invites.answer_invite(core, invite, **form.choice(), via="slack")
    except invites.InviteAnswerInvalid as exc:
        again = InviteAnswerModal.build(
            invite, rules, channel=form.channel, ts=form.ts, username=form.username
        )
        return InviteAnswerModal.with_errors(again, exc.errors), False
    except RoleUpError as exc:
        return bk.message_modal("AWS sign-in", escape(exc)), False
    except Exception:
        logger.exception("answering invite %s failed", invite.id)
        return bk.message_modal("AWS sign-in", UNEXPECTED), False
    username = str(request.payload.get("username", form.username))
    return answered_view(username, invite.integration), True


def _field_errors(errors: dict[str, str]) -> dict[str, str]:
    return {
        InviteAnswerModal.FIELD_BLOCKS[field]: message[:150]
        for field, message in errors.items()
        if field in InviteAnswerModal.FIELD_BLOCKS
    }


def _mark_dm_answered(
    client: WebClient, channel: str | None, ts: str | None, username: str, integration: str
) -> None:
    """Replace the DM's button and link: the invite is used now."""
    if not channel or not ts:
        return
    text, blocks = answered_dm(username, integration)
    try:
        client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
    except SlackApiError as exc:
        logger.warning("updating the invite DM failed: %s", exc.response.get("error"))
