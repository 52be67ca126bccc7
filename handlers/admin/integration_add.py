"""`/roleup integration add`: the modal, its validation, and saving through the service.

Credentials are validated by bot.services.integrations.add_integration (STS + an IAM read,
then a first sync), which takes seconds: the modal is acked with a "Checking…" view at once
and updated with the outcome. The secret access key never reaches a log or a message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.services import integrations, listing
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound, InvalidInput
from bot.services.integration_spec import IntegrationSpec
from bot.services.policy import Action
from bot.slack import blocks as bk
from bot.slack import ids
from bot.slack.access import require
from bot.slack.acked_work import cut_off
from bot.slack.commands import checked_within
from bot.slack.errors import ack_with_error, run_after_ack, run_in_modal
from bot.slack.modal_reply import ModalReply, outcome
from bot.slack.mrkdwn import escape, plain
from bot.slack.state import ViewState

# The service's own rules (clean_spec checks the same again): the modal only places the error.
MIN_MINUTES, MAX_MINUTES = integrations.MIN_SYNC_MINUTES, integrations.MAX_SYNC_MINUTES
INTERVAL_RULE = f"A whole number of minutes, {MIN_MINUTES} to {MAX_MINUTES}."
ACCESS_KEY_ID = integrations.ACCESS_KEY_ID
ROLE_ARN = integrations.ROLE_ARN
PATH_PREFIX = integrations.PATH_PREFIX

T = TypeVar("T")


@dataclass
class IntegrationForm:
    name: str
    access_key_id: str | None
    secret_access_key: str | None = field(repr=False)
    role_arn: str | None
    external_id: str | None = field(repr=False)
    read_only: bool
    path_prefix: str
    managers: list[str]
    approvers: list[str]
    approvals_channel: str | None
    sync_interval_minutes: int
    approve_onboarding: bool
    approve_group_grants: bool
    require_reason: bool = False
    approvals_required: int = 1


def text_input(
    block: str,
    label: str,
    *,
    optional: bool = False,
    max_length: int = 256,
    hint: str | None = None,
    initial: str | None = None,
) -> bk.Block:
    """A one-line text input of these modals (every input's action id is ACTION)."""
    element = bk.text_input(IntegrationAddView.ACTION, max_length=max_length, initial_value=initial)
    return bk.input_block(block, label, element, optional=optional, hint=hint)


OPTIONS = (
    ("Read-only (refuse every change)", "read_only"),
    ("Onboarding needs approval", "approve_onboarding"),
    ("Group grants need approval", "approve_group_grants"),
    ("Every request needs a reason", "require_reason"),
)


def options_block(row: Any = None) -> bk.Block:
    """The on/off settings; ticked as `row` has them (an integration), none for a new one."""
    on = [value for _, value in OPTIONS if row is not None and getattr(row, value)]
    element = bk.checkboxes(IntegrationAddView.ACTION, OPTIONS, ticked=on)
    return bk.input_block(IntegrationAddView.OPTIONS, "Options", element, optional=True)


def people_block(
    block: str, label: str, users: list[str] | None = None, hint: str | None = None
) -> bk.Block:
    element = bk.multi_users_select(IntegrationAddView.ACTION, initial=users or ())
    return bk.input_block(block, label, element, optional=True, hint=hint)


def channel_block(channel: str | None = None, hint: str | None = None) -> bk.Block:
    element = bk.conversations_select(IntegrationAddView.ACTION, initial=channel)
    label = "Approvals channel"
    return bk.input_block(IntegrationAddView.CHANNEL, label, element, optional=True, hint=hint)


def interval_block(minutes: int) -> bk.Block:
    """The sync interval within the service's own bounds, the same in Add and Edit."""
    element = bk.number_input(
        IntegrationAddView.ACTION,
        initial=minutes,
        least=integrations.MIN_SYNC_MINUTES,
        most=integrations.MAX_SYNC_MINUTES,
    )
    return bk.input_block(IntegrationAddView.INTERVAL, "Sync interval (minutes)", element)


def quorum_block(required: int = 1, hint: str | None = None) -> bk.Block:
    """1 to 3 approvers, `required` picked (1 when out of range)."""
    initial = str(required) if 1 <= required <= 3 else "1"
    element = bk.static_select(
        IntegrationAddView.ACTION, ((str(n), str(n)) for n in range(1, 4)), initial=initial
    )
    label = "Approvers needed"
    return bk.input_block(IntegrationAddView.QUORUM, label, element, optional=True, hint=hint)


class IntegrationAddView(bk.FormModal):
    CALLBACK_ID = "integration_add"
    TITLE = "Add integration"
    NAME = "name"
    KEY_ID = "access_key_id"
    SECRET = "secret_access_key"  # noqa: S105 - a block id, not a secret
    ROLE = "role_arn"
    EXTERNAL = "external_id"
    OPTIONS = "options"
    PREFIX = "path_prefix"
    MANAGERS = "managers"
    APPROVERS = "approvers"
    CHANNEL = "approvals_channel"
    INTERVAL = "sync_interval"
    QUORUM = "approvals_required"
    ACTION = "value"  # every input's action id: block ids tell them apart

    @classmethod
    def build(cls, private_metadata: str = "") -> dict[str, Any]:
        text = text_input
        blocks = [
            text(cls.NAME, "Name", max_length=64, hint="Letters, digits, . _ - (e.g. prod)"),
            bk.section("*Credentials:* an access key pair, *or* a role ARN to assume."),
            text(cls.KEY_ID, "Access key ID", optional=True, max_length=128),
            text(
                cls.SECRET,
                "Secret access key",
                optional=True,
                max_length=128,
                hint="Stored encrypted; never shown again.",
            ),
            text(cls.ROLE, "Role ARN", optional=True, max_length=2048),
            text(cls.EXTERNAL, "External ID", optional=True, max_length=1224),
            options_block(),
            text(
                cls.PREFIX,
                "Path prefix",
                max_length=512,
                initial="/",
                hint="Only IAM users under this path are synced and touched.",
            ),
            people_block(cls.MANAGERS, "Managers"),
            people_block(cls.APPROVERS, "Approvers"),
            channel_block(hint="Approval requests go here (else to approvers by DM)."),
            interval_block(15),
            quorum_block(hint="Distinct approvers for offboarding, privileged grants and removal."),
        ]
        return cls.form(blocks, "Add", private_metadata)

    @classmethod
    def parse(cls, view: Any) -> IntegrationForm:
        """The form, or InvalidInput whose .field is the block id to flag."""
        state = ViewState(view)
        a = cls.ACTION
        name = state.text(cls.NAME, a)
        if not integrations.NAME.fullmatch(name):
            raise InvalidInput("Use up to 64 of a-z, 0-9, - and _.", field=cls.NAME)
        key_id, secret = state.text(cls.KEY_ID, a), state.raw_text(cls.SECRET, a).strip()
        role, external = state.text(cls.ROLE, a), state.raw_text(cls.EXTERNAL, a).strip()
        cls._check_credentials(key_id, secret, role)
        prefix = state.text(cls.PREFIX, a) or "/"
        if not PATH_PREFIX.fullmatch(prefix):
            raise InvalidInput("A path starts and ends with /, e.g. /staff/.", field=cls.PREFIX)
        interval = state.text(cls.INTERVAL, a) or "15"
        whole = interval.isascii() and interval.isdigit() and len(interval) <= 4
        if not whole or not MIN_MINUTES <= int(interval) <= MAX_MINUTES:
            raise InvalidInput(INTERVAL_RULE, field=cls.INTERVAL)
        checked = set(state.selected_many(cls.OPTIONS, a))
        return IntegrationForm(
            name=name,
            access_key_id=key_id or None,
            secret_access_key=secret or None,
            role_arn=role or None,
            external_id=external or None,
            read_only="read_only" in checked,
            path_prefix=prefix,
            managers=[u for u in state.users(cls.MANAGERS, a) if ids.is_user(u)],
            approvers=[u for u in state.users(cls.APPROVERS, a) if ids.is_user(u)],
            approvals_channel=state.conversation(cls.CHANNEL, a),
            sync_interval_minutes=int(interval),
            approve_onboarding="approve_onboarding" in checked,
            approve_group_grants="approve_group_grants" in checked,
            require_reason="require_reason" in checked,
            approvals_required=cls._quorum(state.selected(cls.QUORUM, a)),
        )

    @classmethod
    def _quorum(cls, chosen: str | None) -> int:
        if chosen is None:
            return 1
        if chosen not in ("1", "2", "3"):
            raise InvalidInput("Choose 1, 2 or 3 approvers.", field=cls.QUORUM)
        return int(chosen)

    @classmethod
    def _check_credentials(cls, key_id: str, secret: str, role: str) -> None:
        if role and (key_id or secret):
            raise InvalidInput("Give a key pair or a role ARN, not both.", field=cls.ROLE)
        if role:
            if not ROLE_ARN.fullmatch(role):
                raise InvalidInput("Like arn:aws:iam::123456789012:role/RoleUp.", field=cls.ROLE)
            return
        if not key_id:
            raise InvalidInput("Give an access key ID (or a role ARN).", field=cls.KEY_ID)
        if not ACCESS_KEY_ID.fullmatch(key_id):
            raise InvalidInput(
                "An access key ID is 16 to 128 capital letters and digits, like AKIA….",
                field=cls.KEY_ID,
            )
        # AWS secret access keys are 40 characters; 128 leaves room without taking a novel.
        if not secret or not 16 <= len(secret) <= 128 or any(c.isspace() for c in secret):
            raise InvalidInput("Give the secret access key of that key ID.", field=cls.SECRET)


def result_view(text: str) -> dict[str, Any]:
    return result_views(IntegrationAddView)(text)


def open_integration_add(core: Core, ack: Ack, client: WebClient, command: dict[str, Any]) -> None:
    """Admins only (a settings check, no I/O): open the modal inside the trigger's 3 seconds."""
    metadata = json.dumps({"channel": command.get("channel_id")})
    open_for_admins(
        core,
        ack,
        client,
        command,
        "/roleup integration add",
        lambda: IntegrationAddView.build(metadata),
    )


def to_spec(form: IntegrationForm) -> IntegrationSpec:
    """The service's IntegrationSpec, checked by the service's own rules (no I/O)."""
    spec = IntegrationSpec(
        name=form.name,
        access_key_id=form.access_key_id,
        secret_access_key=form.secret_access_key,
        role_arn=form.role_arn,
        external_id=form.external_id,
        read_only=form.read_only,
        path_prefix=form.path_prefix,
        managers=form.managers,
        approvers=form.approvers,
        approvals_channel=form.approvals_channel,
        sync_interval_minutes=form.sync_interval_minutes,
        approve_onboarding=form.approve_onboarding,
        approve_group_grants=form.approve_group_grants,
        require_reason=form.require_reason,
        approvals_required=form.approvals_required,
    )
    return integrations.clean_spec(spec)


def check_name_free(core: Core, name: str) -> None:
    if listing.integration_by_name(core, name) is not None:
        raise InvalidInput(f"An integration named {name} already exists.", field="name")


def save(core: Core, spec: IntegrationSpec, actor: str) -> str:
    """Validate with AWS and save (then the first sync); the text of the result view."""
    added = integrations.add_integration(core, spec, actor=actor)
    account = f" (AWS account {escape(added.aws_account_id)})" if added.aws_account_id else ""
    return f":white_check_mark: Integration *{escape(added.name)}* added{account}."


#: The service's field names -> this modal's block ids.
FIELD_BLOCKS = {
    "name": IntegrationAddView.NAME,
    "access_key_id": IntegrationAddView.KEY_ID,
    "secret_access_key": IntegrationAddView.SECRET,
    "role_arn": IntegrationAddView.ROLE,
    "external_id": IntegrationAddView.EXTERNAL,
    "path_prefix": IntegrationAddView.PREFIX,
    "managers": IntegrationAddView.MANAGERS,
    "approvers": IntegrationAddView.APPROVERS,
    "approvals_channel": IntegrationAddView.CHANNEL,
    "sync_interval_minutes": IntegrationAddView.INTERVAL,
    **{block: block for block in ("options", "sync_interval", "approvals_required")},
}


# --- shared with the Edit modal (handlers.admin.integration_edit) -----------------------------
def open_for_admins(
    core: Core,
    ack: Ack,
    client: WebClient,
    command: dict[str, Any],
    what: str,
    build: Callable[[], dict[str, Any]],
) -> None:
    """The modal `build` makes, opened for a RoleUp admin. Who asks (users.info) and `build`
    (a store read) run in a pool, awaited ANSWER_WITHIN so a refusal or a failure is answered
    in the ack; the modal opens after the ack (the ack is sent when the listener returns,
    bot.app, and must not wait for views.open). Later than that, the ack is empty and the rest
    follows in the pool; a failure there is one ephemeral line in the channel."""
    actor = command["user_id"]

    def checked() -> dict[str, Any]:
        require(actor, Action.MANAGE_INTEGRATIONS, None, core.settings.admins, core.people)
        return build()

    def tell(text: str) -> None:
        client.chat_postEphemeral(channel=command.get("channel_id") or actor, user=actor, text=text)

    def open_modal(view: Callable[[], dict[str, Any]]) -> None:
        client.views_open(trigger_id=command["trigger_id"], view=view())

    modal = checked_within(
        core.after_ack,
        checked,
        lambda late: run_after_ack(core.after_ack, tell, what, lambda: open_modal(late.result)),
        if_cut=cut_off(tell, what),
    )
    if modal is None:
        ack()
        return
    try:
        modal.result()
    except Exception as exc:
        ack_with_error(ack, exc, what)
        return
    ack()
    run_after_ack(core.after_ack, tell, what, lambda: open_modal(modal.result))


def result_views(form: type[bk.FormModal]) -> Callable[[str], dict[str, Any]]:
    """The form's outcome view: one message under its title, nothing to submit."""

    def result_view(text: str) -> dict[str, Any]:
        done = form.CALLBACK_ID + "_done"
        return bk.message_modal(form.TITLE, text, callback_id=done, private_metadata="")

    return result_view


def admins_only(core: Core, ack: Ack, actor: str, block: str, verb: str) -> bool:
    """True for a RoleUp admin; anyone else is refused on `block` and the modal stays open."""
    if actor in core.settings.admins:
        return True
    ack(response_action="errors", errors={block: f"Only RoleUp admins can {verb} integrations."})
    return False


def field_error(exc: InvalidInput, blocks: Mapping[str, str], default: str) -> dict[str, str]:
    """The modal's `errors` for a form or service error: the block of its field (a service
    field name mapped by `blocks`, or already one of their block ids), else `default`."""
    field = exc.field or ""
    block = blocks.get(field) or (field if field in blocks.values() else default)
    return {block: plain(exc.user_message, 150)}


SECRET_BLOCKS = (IntegrationAddView.SECRET, IntegrationAddView.EXTERNAL)


def typed_secrets(view: dict[str, Any]) -> list[str | None]:
    """The secret access key and the external ID as typed (and stripped, as they are read),
    masked in a failure's log line: known before the form is read, so a late check's too."""
    state = ViewState(view)
    typed = [state.raw_text(block, IntegrationAddView.ACTION) for block in SECRET_BLOCKS]
    return [*typed, *(t.strip() for t in typed)]


def register_settings_form(
    app: App,
    core: Core,
    form: type[bk.FormModal],
    *,
    verb: str,
    doing: str,
    block: str,
    blocks: Mapping[str, str],
    read: Callable[[dict[str, Any]], T],
    waiting: str,
    work: Callable[[str, T], str],
) -> None:
    """The submission of an integration's settings: admins only (refused on `block`, as is a
    field `read` cannot place), `waiting` at once, then the outcome of `work(actor, read)`.
    `read` asks the store (a name taken, the integration gone): it runs in a pool, awaited
    ANSWER_WITHIN (bot.slack.commands.checked_within), so its field errors are in the ack when
    the store answers in time; later, the ack is `waiting` and its refusal, or `work`'s
    outcome, is shown in the modal once it does."""
    result = result_views(form)

    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        actor = body["user"]["id"]
        if not admins_only(core, ack, actor, block, verb):
            return
        secrets = typed_secrets(view)
        modal = ModalReply.of(client, body)

        def show(text: str) -> None:
            modal.show(result(text))

        checks = checked_within(
            core.after_ack,
            lambda: read(view),
            lambda late: run_after_ack(
                core.decisions,
                show,
                doing,
                lambda: show(work(actor, late.result())),  # a refusal is shown as one line
                secrets=secrets,
            ),
            if_cut=cut_off(show, doing),
        )
        if checks is None:
            ack(response_action="update", view=result(waiting))
            return
        try:
            read_ = checks.result()
        except InvalidInput as exc:
            ack(response_action="errors", errors=field_error(exc, blocks, block))
            return
        except IntegrationNotFound as exc:  # the integration went while the modal was open
            ack(response_action="update", view=outcome(result(escape(exc.user_message))))
            return
        run_in_modal(
            core.decisions,
            ack,
            modal,
            result,
            doing,
            lambda show: show(work(actor, read_)),
            waiting=waiting,
            secrets=secrets,
        )

    app.view(form.CALLBACK_ID)(submitted)


def register(app: App, core: Core) -> None:
    def read(view: dict[str, Any]) -> tuple[IntegrationForm, IntegrationSpec]:
        form = IntegrationAddView.parse(view)
        spec = to_spec(form)
        check_name_free(core, spec.name)
        return form, spec

    register_settings_form(
        app,
        core,
        IntegrationAddView,
        verb="add",
        doing="adding an integration",
        block=IntegrationAddView.NAME,
        blocks=FIELD_BLOCKS,
        read=read,
        waiting=":hourglass_flowing_sand: Checking the credentials with AWS…",
        work=lambda actor, read: save(core, read[1], actor),
    )
