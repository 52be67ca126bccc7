"""The two invite modals' submissions: the manager sends an invite, the invitee answers it.

Both check what the store alone can say inside the ack (field errors need
`response_action="errors"`), in a pool awaited ANSWER_WITHIN: a slower store's ack says the work
has started and its checks' outcome is shown in the modal. The rest (IAM reads, store writes,
Slack posts) runs after the ack and ends in the modal too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import approvals, invites, listing
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound, InvalidInput, NotAllowed, RoleUpError
from bot.services.iam import PasswordRules
from bot.slack import blocks as bk
from bot.slack.acked_work import cut_off
from bot.slack.commands import checked_within, refused_in_ack
from bot.slack.errors import run_after_ack
from bot.slack.justification import JustificationFields
from bot.slack.modal_reply import ModalReply, outcome, said
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
    """Ack at once (a sending note), then make the invite, DM it and show the outcome. Whether
    the integration requires a reason is the store's: answered in the ack when it answers within
    ANSWER_WITHIN (bot.slack.commands.checked_within), else shown in the modal when it does."""
    try:
        form = InviteCreateModal.parse(view)
    except InvalidInput as exc:
        ack(response_action="errors", errors=_create_errors(exc))
        return
    if not form.slack_user_id:
        ack(response_action="errors", errors={InviteCreateModal.USER: "Choose a person."})
        return
    modal = ModalReply.submitted(client, actor, view)
    in_modal = _in_modal(modal, "Invite not sent")

    def send() -> None:
        modal.show(_make_and_deliver(core, actor, form, client))

    def checked_late(check: Future[None]) -> None:
        try:
            check.result()
        except RoleUpError as exc:
            in_modal(escape(exc))
            return
        send()

    check = checked_within(
        core.after_ack,
        lambda: approvals.check_reason(core, [form.integration_id], form.why),
        lambda late: run_after_ack(
            core.decisions, in_modal, "sending an invite", lambda: checked_late(late)
        ),
        if_cut=cut_off(in_modal, "sending an invite"),
    )
    if refused_in_ack(check, ack, InvalidInput, _create_errors):
        return
    ack(response_action="update", view=bk.message_modal("Invite to AWS", "Sending the invite…"))
    if check is not None:
        run_after_ack(core.decisions, in_modal, "sending an invite", send)


def _create_errors(exc: InvalidInput) -> dict[str, str]:
    """The invite form's errors: by a lasting field, else by the justification's."""
    lasting = (InviteCreateModal.FOR, InviteCreateModal.UNTIL, InviteCreateModal.EXPIRES)
    if exc.field in lasting:
        return {exc.field: exc.user_message[:150]}
    return JustificationFields.errors(exc)


def _in_modal(modal: ModalReply, title: str) -> Callable[[str], Any]:
    """Where a failure after the ack is shown: the modal the ack left open (or a DM, if the
    person closed it meanwhile)."""
    return lambda text: modal.show(bk.message_modal(title, text))


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
    """Store-only checks answered in the ack (field errors) when the store answers within
    ANSWER_WITHIN (bot.slack.commands.checked_within), else shown in the modal when it does;
    the AWS checks and the request after the ack, the modal then updated with the outcome. A
    form without the password rules it was opened with has them read from AWS after the ack,
    and its password checked there."""
    form = InviteAnswerModal.parse(view)
    modal = ModalReply.submitted(client, user, view)
    in_modal = _in_modal(modal, "AWS sign-in")
    secret = [form.password, form.confirm]  # masked in a failure's log line, as /onboard's

    def show(outcome: dict[str, Any]) -> None:
        modal.show(outcome, told=_again_told(outcome))

    def file(invite: invites.OpenInvite) -> None:
        outcome, filed = _checked_answer(core, invite, form)
        show(outcome)
        if filed:
            _mark_dm_answered(client, form.channel, form.ts, form.username, invite.integration)

    def checked_late(checks: Future[tuple[invites.OpenInvite, dict[str, str]]]) -> None:
        """The store's checks finished after the ack: a refusal or the form's errors are shown
        in the modal, a pass is filed as an in-time one is."""
        try:
            invite, errors = checks.result()
        except RoleUpError as exc:
            show(bk.message_modal("AWS sign-in", escape(exc)))
            return
        if errors and form.rules is not None:
            show(_again(invite, form, form.rules, errors))
            return
        file(invite)

    checks = checked_within(
        core.after_ack,
        lambda: _local_checks(core, user, form),
        lambda late: run_after_ack(
            core.decisions,
            in_modal,
            "answering an invite",
            lambda: checked_late(late),
            secrets=secret,
        ),
        if_cut=cut_off(in_modal, "answering an invite"),
    )
    if checks is None:
        ack(response_action="update", view=sending_view())
        return
    try:
        invite, errors = checks.result()
    except RoleUpError as exc:
        ack(response_action="update", view=outcome(bk.message_modal("AWS sign-in", escape(exc))))
        return
    if errors:
        ack(response_action="errors", errors=_field_errors(errors))
        return
    ack(response_action="update", view=sending_view())
    run_after_ack(
        core.decisions, in_modal, "answering an invite", lambda: file(invite), secrets=secret
    )


def _local_checks(
    core: Core, user: str, form: InviteAnswerForm
) -> tuple[invites.OpenInvite, dict[str, str]]:
    """The invite the form answers (refused unless it is open and this person's) and what the
    store alone finds wrong with the answer (none yet when the form lacks its password rules)."""
    invite = invites.open_invite_by_id(core, form.invite_id, slack_user_id=user)
    if form.rules is None:
        return invite, {}
    return invite, invites.local_problems(core, invite, **form.choice(), rules=form.rules)


def _again(
    invite: invites.OpenInvite, form: InviteAnswerForm, rules: PasswordRules, errors: dict[str, str]
) -> dict[str, Any]:
    """The answer form again, with `errors` by their fields."""
    again = InviteAnswerModal.build(
        invite, rules, channel=form.channel, ts=form.ts, username=form.username
    )
    return InviteAnswerModal.with_errors(again, errors)


def _again_told(outcome: dict[str, Any]) -> str | None:
    """What a closed modal's DM says for the form brought back (its errors, and that nothing was
    sent); None for any other outcome, told as it reads."""
    if outcome.get("callback_id") != InviteAnswerModal.CALLBACK_ID:
        return None
    notes = [b for b in outcome.get("blocks") or [] if ":warning:" in str(b.get("text"))]
    return said({"blocks": notes}) + "\nYour answer was not sent: open the invite again to fix it."


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
        return _again(invite, form, rules, problems), False
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
        return _again(invite, form, rules, exc.errors), False
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
