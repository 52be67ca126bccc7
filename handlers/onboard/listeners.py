"""Listeners of the onboarding modal: integration switch, option searches, submission.

Submission: what can be checked fast (the form's shape, names, uniqueness in the store) is
answered inline with response_action=errors and the modal stays open, when the store answers
within ANSWER_WITHIN (bot.slack.commands.checked_within); a slower store's refusal brings the form
back with the message on top. Then the modal turns into "Onboarding…", and the IAM work runs
after the ack, through
bot.services.requesting.request_onboard (run at once or held for an approver, by the policy).
An IAM-side field error brings the form back with the message on top. A generated password is
shown once, ephemerally, to the requester only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import approvals, iam, lifecycle, listing
from bot.services.container import Core
from bot.services.errors import RoleUpError, UserExists
from bot.services.policy import Action
from bot.services.requesting import OnboardAsk, request_onboard
from bot.slack import blocks as bk
from bot.slack.access import allowed
from bot.slack.acked_work import cut_off
from bot.slack.approval_messages import submitted_text
from bot.slack.commands import checked_within, options_within, refused_in_ack
from bot.slack.errors import field_errors, run_after_ack
from bot.slack.listing_access import permitted
from bot.slack.modal_reply import ModalReply
from bot.slack.modals import message_view
from bot.slack.mrkdwn import escape, truncate
from handlers.onboard.command import onboard_view
from handlers.onboard.views import OnboardContext, OnboardForm, OnboardView

logger = logging.getLogger(__name__)
V = OnboardView
ONBOARDING = ":hourglass_flowing_sand: Onboarding…"
# A stop cut the checks or the onboarding off (bot.slack.acked_work): either may have been under
# way, so the user is told how to find out, never that nothing or everything was done.
CUT_OFF = (
    ":warning: RoleUp restarted before it could confirm the onboarding of *{username}*: it may "
    "not have been done, or only in part, or be waiting for an approver. Check `/accounts` before "
    "you try again, and the integration's approvals channel if it needs an approver (a "
    "half-made onboarding is also reported to you once RoleUp has taken it over)."
)


def quick_checks(core: Core, form: OnboardForm) -> None:
    """No AWS call: shapes of every input and the store's copy of existing usernames."""
    iam.validate_username(form.username)
    for group in form.groups:
        iam.validate_group_name(group)
    for arn in form.policies:
        iam.validate_policy_arn(arn)
    if form.slack_user_id:
        iam.validate_slack_user(form.slack_user_id)
    if listing.username_taken(core, form.integration_id, form.username):
        raise UserExists(f"The username {form.username} is already taken.")
    approvals.check_reason(core, [form.integration_id], form.why)


def onboard(
    core: Core, client: WebClient, actor: str, form: OnboardForm, view: dict[str, Any]
) -> None:
    """After the ack: roles, password, IAM checks, then submit; the modal shows the outcome."""
    context = OnboardContext.load(view.get("private_metadata"))
    mine = permitted(core, actor, Action.ONBOARD, core.people)
    chosen = [i for i in mine if i.id == form.integration_id]
    if not chosen:
        raise RoleUpError("You can't onboard people into that integration.")
    target = chosen[0]
    # One handle for the whole use case, acting for the request it files: the checks and (when
    # no approver is needed) the onboarding share one AWS session and one password-policy read.
    handle = lifecycle.open_integration(
        core, target.id, actor=actor, request_id=approvals.new_request_id()
    )
    password = form.password or lifecycle.generate_password(
        core, handle, actor=actor, request_id=handle.request_id
    )
    spec = lifecycle.OnboardSpec(
        username=form.username,
        password=password,
        groups=form.groups,
        policies=form.policies,
        slack_user_id=form.slack_user_id,
        created_by=actor,
    )
    try:
        lifecycle.check_onboard(core, handle, spec, actor=actor, request_id=handle.request_id)
    except RoleUpError as exc:
        if exc.field in V.FIELDS:
            send_back(core, client, actor, form, view, exc.user_message)
            return
        raise
    request = request_onboard(
        core,
        actor=actor,
        integration_id=target.id,
        ask=OnboardAsk(
            username=form.username,
            password=password,
            groups=form.groups,
            policies=form.policies,
            slack_user_id=form.slack_user_id,
            term=form.term,
            why=form.why,
            account_expires=form.account_expires,
        ),
        response_url=context.response_url,
        handle=handle,
    )
    name, where = escape(form.username), escape(target.name)
    if request.state == "pending":
        text = submitted_text(request)  # where it waits (or that posting it failed)
    else:
        text = f":white_check_mark: *{name}* was created in *{where}*."
        text += " The password must be changed at first sign-in."
    if form.generate:
        show_password_once(client, context, actor, form.username, target.name, password)
        text += " The generated password was shown to you alone, once."
    ModalReply.submitted(client, actor, view).show(message_view(text))


def send_back(
    core: Core, client: WebClient, actor: str, form: OnboardForm, view: dict[str, Any], error: str
) -> None:
    """The form again, with the error on top and what was typed (never the password); if the
    person closed it meanwhile, the error in a DM."""
    context = OnboardContext.load(view.get("private_metadata"))
    rebuilt = onboard_view(
        core, client, actor, context, integration_id=form.integration_id, error=error, values=form
    )
    told = f":no_entry: {escape(error)} *{escape(form.username)}* was not onboarded."
    ModalReply.submitted(client, actor, view).show(rebuilt, told=told)


def show_password_once(
    client: WebClient,
    context: OnboardContext,
    actor: str,
    user_name: str,
    integration: str,
    password: str,
) -> None:
    """Ephemeral, to the requester only: chat.postEphemeral, else the command's response_url."""
    text = (
        f":key: Initial password for *{escape(user_name)}* in *{escape(integration)}*: "
        f"`{escape(password)}`\nShown once, only to you. It must be changed at first sign-in."
    )
    if context.channel_id:
        try:
            client.chat_postEphemeral(channel=context.channel_id, user=actor, text=text)
            return
        except SlackApiError as exc:
            logger.info(
                "chat.postEphemeral failed (%s); trying response_url", exc.response.get("error")
            )
    if context.response_url:
        from slack_sdk.webhook import WebhookClient

        response = WebhookClient(context.response_url).send(
            text=text, response_type="ephemeral", replace_original=False
        )
        if response.status_code == 200:
            return
    logger.warning("could not show a generated password to %s; it was not shown anywhere", actor)


def register(app: App, core: Core) -> None:
    @app.view(V.CALLBACK_ID)
    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        actor = body["user"]["id"]
        try:
            form = V.parse(view)
        except RoleUpError as exc:
            ack(response_action="errors", errors=_inline_errors(exc))
            return

        modal = ModalReply.of(client, body)

        def show(text: str) -> None:
            modal.show(message_view(text))

        # Not yet checked (the checks may be what the stop cut off): at most IAM's 64 characters,
        # so a forged name cannot push the advice out of the message.
        cut = CUT_OFF.format(username=escape(truncate(form.username, 64)))

        def go_on(work: Callable[[], None]) -> None:
            run_after_ack(
                core.decisions, show, "onboarding", work, secrets=[form.password], if_cut=cut
            )

        def checked_late(checks: Future[None]) -> None:
            """The checks finished after the ack: a refusal brings the form back with it on
            top, a pass onboards as an in-time one does."""
            try:
                checks.result()
            except RoleUpError as exc:
                send_back(core, client, actor, form, view, exc.user_message)
                return
            onboard(core, client, actor, form, view)

        # The checks read the store: in a pool, awaited ANSWER_WITHIN so their field errors
        # stay in the ack; later, the ack says it is onboarding and the outcome follows there.
        checks = checked_within(
            core.after_ack,
            lambda: quick_checks(core, form),
            lambda late: go_on(lambda: checked_late(late)),
            if_cut=cut_off(show, "the onboarding checks", cut),
        )
        if refused_in_ack(checks, ack, RoleUpError, _inline_errors):
            return
        ack(response_action="update", view=message_view(ONBOARDING))
        if checks is not None:
            go_on(lambda: onboard(core, client, actor, form, view))

    @app.action(V.INTEGRATION_ACTION)
    def integration_chosen(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = body.get("view") or {}
        action = (body.get("actions") or [{}])[0]
        chosen = str((action.get("selected_option") or {}).get("value") or "")
        context = OnboardContext.load(view.get("private_metadata"))

        def refill() -> None:
            fresh = onboard_view(
                core,
                client,
                body["user"]["id"],
                context,
                integration_id=int(chosen) if chosen.isdigit() else None,
            )
            client.views_update(view_id=view["id"], hash=view.get("hash"), view=fresh)

        run_after_ack(
            core.after_ack,
            lambda text: client.views_update(view_id=view["id"], view=message_view(text)),
            "switching integration",
            refill,
        )

    # An options request is answered in its ack: options_within bounds how long it may take.
    def policy_options(body: dict[str, Any]) -> list[dict[str, Any]]:
        integration_id = _allowed_integration(core, body)
        if integration_id is None:
            return []
        found = lifecycle.search_policies(core, integration_id, str(body.get("value") or "")[:128])
        return bk.options((p.name, p.arn) for p in found)

    def group_options(body: dict[str, Any]) -> list[dict[str, Any]]:
        integration_id = _allowed_integration(core, body)
        if integration_id is None:
            return []
        needle = str(body.get("value") or "").lower()[:128]
        names = [g for g in lifecycle.grantable_groups(core, integration_id) if needle in g.lower()]
        return bk.options((g, g) for g in names)

    app.options(V.POLICIES_ACTION)(
        options_within(core.after_ack, "searching policies", policy_options)
    )
    app.options(V.GROUPS_ACTION)(options_within(core.after_ack, "searching groups", group_options))


def _inline_errors(exc: RoleUpError) -> dict[str, str]:
    """A refusal of the form, by the field it names (else by the username)."""
    return field_errors(exc, V.FIELDS) or {V.USERNAME: exc.user_message[:150]}


def _allowed_integration(core: Core, body: dict[str, Any]) -> int | None:
    """The modal's integration, if the person asking may onboard into it."""
    context = OnboardContext.load((body.get("view") or {}).get("private_metadata"))
    if context.integration_id is None:
        return None
    integration = listing.integration_by_id(core, context.integration_id)
    if integration is None:
        return None
    ok = allowed(
        body["user"]["id"],
        Action.ONBOARD,
        integration,
        core.settings.admins,
        core.people,
    )
    return context.integration_id if ok else None
