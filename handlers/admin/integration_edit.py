"""`/roleup integration edit <name>`: the integration's settings in a modal, every field filled
in, the secrets never shown (empty credential fields keep the key or role).

Admins only, checked when it opens and again when it is submitted. The modal carries the
version of the settings it shows: submitted after someone else changed the integration, it is
refused rather than put back what it showed. Saving goes through
bot.services.integration_update (checked with AWS first when the credentials change), so the
modal and `roleup integrations update` change and audit the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.services import integrations, listing
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound, InvalidInput
from bot.services.integration_update import (
    IntegrationChanges,
    UpdateResult,
    check_changes,
    settings_version,
    update_integration,
)
from bot.services.policy import Action, is_usergroup
from bot.slack import blocks as bk
from bot.slack import ids
from bot.slack.access import require
from bot.slack.errors import ack_with_error
from bot.slack.mrkdwn import escape
from bot.slack.state import ViewState
from handlers.admin.integration_add import (
    ACCESS_KEY_ID,
    PATH_PREFIX,
    ROLE_ARN,
    IntegrationAddView,
    admins_only,
    field_error,
    show_outcome,
    text_input,
)

if TYPE_CHECKING:
    from bot.services.records import IntegrationInfo

ADD = IntegrationAddView
LIST_TEXT_MAX = 3000  # characters of a comma-separated list field
CHECKBOXES = (
    ("Read-only (refuse every change)", "read_only"),
    ("Onboarding needs approval", "approve_onboarding"),
    ("Group grants need approval", "approve_group_grants"),
    ("Every request needs a reason", "require_reason"),
)


class IntegrationEditView:
    CALLBACK_ID = "integration_edit"
    BREAKGLASS = "breakglass"
    PRIVILEGED_POLICIES = "privileged_policies"
    PRIVILEGED_GROUPS = "privileged_groups"
    ROTATE = "rotate_every_days"
    REVIEW = "review_every_days"
    A = ADD.ACTION

    @classmethod
    def build(cls, row: IntegrationInfo) -> dict[str, Any]:
        metadata = json.dumps({"id": row.id, "name": row.name, "v": settings_version(row)})
        blocks = [
            bk.section(
                f"*{escape(row.name)}* · {escape(integrations.credentials_label(row))}\n"
                "Leave the credential fields empty to keep them; the secret is never shown."
            ),
            text_input(ADD.KEY_ID, "New access key ID", max_length=128, optional=True),
            text_input(ADD.SECRET, "New secret access key", max_length=128, optional=True),
            text_input(ADD.ROLE, "Role ARN", max_length=2048, optional=True, initial=row.role_arn),
            text_input(
                ADD.EXTERNAL,
                "New external ID",
                max_length=1224,
                optional=True,
                hint="Empty keeps the current one (never shown).",
            ),
            cls._options(row),
            text_input(ADD.PREFIX, "Path prefix", max_length=512, initial=row.path_prefix),
            cls._people(ADD.MANAGERS, "Managers", row.managers),
            cls._people(ADD.APPROVERS, "Approvers", row.approvers),
            cls._people(cls.BREAKGLASS, "Break-glass", row.breakglass),
            cls._channel(row.approvals_channel),
            bk.input_block(
                ADD.INTERVAL,
                "Sync interval (minutes)",
                {
                    "type": "number_input",
                    "action_id": cls.A,
                    "is_decimal_allowed": False,
                    "initial_value": str(row.sync_interval_minutes),
                    "min_value": "1",
                    "max_value": "1440",
                },
            ),
            cls._quorum(row.approvals_required),
            *cls._optional_texts(row),
        ]
        return bk.modal(
            callback_id=cls.CALLBACK_ID,
            title="Edit integration",
            blocks=blocks,
            submit="Save",
            private_metadata=metadata,
        )

    @classmethod
    def _optional_texts(cls, row: IntegrationInfo) -> list[bk.Block]:
        """The lists and day counts, empty when unset."""
        fields = (
            (cls.PRIVILEGED_POLICIES, "Privileged policies", LIST_TEXT_MAX,
             ", ".join(row.privileged_policies or []),
             "Names or ARNs, comma separated: granting one always needs an approver."),
            (cls.PRIVILEGED_GROUPS, "Privileged groups", LIST_TEXT_MAX,
             ", ".join(row.privileged_groups or []), None),
            (cls.ROTATE, "Rotate the access key every (days)", 3,
             str(row.rotate_every_days or ""), "Empty: never. Only for an access key."),
            (cls.REVIEW, "Start an access review every (days)", 3,
             str(row.review_every_days or ""), "Empty: never. 7 to 366 days."),
        )  # fmt: skip
        return [
            text_input(block, label, max_length=size, optional=True, initial=initial, hint=hint)
            for block, label, size, initial, hint in fields
        ]

    @classmethod
    def _options(cls, row: IntegrationInfo) -> bk.Block:
        choices = bk.options(CHECKBOXES)
        element: dict[str, Any] = {"type": "checkboxes", "action_id": cls.A, "options": choices}
        on = [c for c in choices if getattr(row, c["value"])]
        if on:
            element["initial_options"] = on
        return bk.input_block(ADD.OPTIONS, "Options", element, optional=True)

    @classmethod
    def _people(cls, block: str, label: str, entries: list[str] | None) -> bk.Block:
        users = [e for e in entries or [] if ids.is_user(e)]
        groups = [e for e in entries or [] if is_usergroup(e)]
        element: dict[str, Any] = {"type": "multi_users_select", "action_id": cls.A}
        if users:
            element["initial_users"] = users
        hint = f"User groups kept as they are: {', '.join(groups)}." if groups else None
        return bk.input_block(block, label, element, optional=True, hint=hint)

    @classmethod
    def _channel(cls, channel: str | None) -> bk.Block:
        element: dict[str, Any] = {
            "type": "conversations_select",
            "action_id": cls.A,
            "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        }
        if channel:
            element["initial_conversation"] = channel
        return bk.input_block(ADD.CHANNEL, "Approvals channel", element, optional=True)

    @classmethod
    def _quorum(cls, required: int) -> bk.Block:
        choices = bk.options((str(n), str(n)) for n in range(1, 4))
        initial = next((c for c in choices if c["value"] == str(required)), choices[0])
        element = {
            "type": "static_select",
            "action_id": cls.A,
            "options": choices,
            "initial_option": initial,
        }
        return bk.input_block(ADD.QUORUM, "Approvers needed", element, optional=True)

    # --- parse ---------------------------------------------------------------------------
    @classmethod
    def parse(cls, view: Any, row: IntegrationInfo) -> IntegrationChanges:
        """Every field as submitted (the service changes only what differs), or InvalidInput
        whose .field is the block id to flag."""
        state = ViewState(view)
        a = cls.A
        prefix = state.text(ADD.PREFIX, a) or "/"
        if not PATH_PREFIX.fullmatch(prefix):
            raise InvalidInput("A path starts and ends with /, e.g. /staff/.", field=ADD.PREFIX)
        interval = state.text(ADD.INTERVAL, a) or str(row.sync_interval_minutes)
        if not (interval.isascii() and interval.isdigit() and len(interval) <= 4):
            raise InvalidInput("A whole number of minutes, 1 to 1440.", field=ADD.INTERVAL)
        rotate = state.text(cls.ROTATE, a)
        if rotate and not (rotate.isascii() and rotate.isdigit()):
            raise InvalidInput("A whole number of days, 1 to 365.", field=cls.ROTATE)
        review = state.text(cls.REVIEW, a)
        if review and not (review.isascii() and review.isdigit()):
            raise InvalidInput("A whole number of days, 7 to 366.", field=cls.REVIEW)
        checked = set(state.selected_many(ADD.OPTIONS, a))
        quorum = state.selected(ADD.QUORUM, a) or str(row.approvals_required)
        if quorum not in ("1", "2", "3"):
            raise InvalidInput("Choose 1, 2 or 3 approvers.", field=ADD.QUORUM)
        changes = IntegrationChanges(
            read_only="read_only" in checked,
            path_prefix=prefix,
            managers=cls._kept(state.users(ADD.MANAGERS, a), row.managers),
            approvers=cls._kept(state.users(ADD.APPROVERS, a), row.approvers),
            breakglass=cls._kept(state.users(cls.BREAKGLASS, a), row.breakglass),
            approvals_channel=state.conversation(ADD.CHANNEL, a) or "",
            sync_interval_minutes=int(interval),
            approve_onboarding="approve_onboarding" in checked,
            approve_group_grants="approve_group_grants" in checked,
            require_reason="require_reason" in checked,
            approvals_required=int(quorum),
            privileged_policies=_split(state.text(cls.PRIVILEGED_POLICIES, a)),
            privileged_groups=_split(state.text(cls.PRIVILEGED_GROUPS, a)),
            rotate_every_days=int(rotate) if rotate else 0,
            review_every_days=int(review) if review else 0,
        )
        return cls._credentials(state, row, changes)

    @classmethod
    def _kept(cls, chosen: list[str], before: list[str] | None) -> list[str]:
        """The people picked, and the user groups the picker could not show, kept."""
        return [u for u in chosen if ids.is_user(u)] + [e for e in before or [] if is_usergroup(e)]

    @classmethod
    def _credentials(
        cls, state: ViewState, row: IntegrationInfo, changes: IntegrationChanges
    ) -> IntegrationChanges:
        a = cls.A
        key_id, secret = state.text(ADD.KEY_ID, a), state.raw_text(ADD.SECRET, a).strip()
        role, external = state.text(ADD.ROLE, a), state.raw_text(ADD.EXTERNAL, a).strip()
        new_role = bool(role) and (role != row.role_arn or bool(external))
        if (key_id or secret) and new_role:
            raise InvalidInput("Give a new key pair or a role ARN, not both.", field=ADD.ROLE)
        if key_id or secret:
            if not ACCESS_KEY_ID.fullmatch(key_id):
                raise InvalidInput("An access key ID looks like AKIA… (16+ characters).",
                                   field=ADD.KEY_ID)  # fmt: skip
            if not 16 <= len(secret) <= 128 or any(c.isspace() for c in secret):
                raise InvalidInput("Give the secret access key of that key ID.", field=ADD.SECRET)
            changes.access_key_id, changes.secret_access_key = key_id, secret
            return changes
        if not role:
            if row.role_arn:
                raise InvalidInput("Give a role ARN, or a new key pair instead.", field=ADD.ROLE)
            if external:
                raise InvalidInput("A new external ID goes with a role ARN.", field=ADD.EXTERNAL)
            return changes
        if new_role:
            if not ROLE_ARN.fullmatch(role):
                raise InvalidInput("Like arn:aws:iam::123456789012:role/RoleUp.", field=ADD.ROLE)
            changes.role_arn, changes.external_id = role, external or None
        return changes


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


#: The service's field names -> this modal's block ids.
FIELD_BLOCKS = {
    "access_key_id": ADD.KEY_ID,
    "secret_access_key": ADD.SECRET,
    "role_arn": ADD.ROLE,
    "external_id": ADD.EXTERNAL,
    "path_prefix": ADD.PREFIX,
    "managers": ADD.MANAGERS,
    "approvers": ADD.APPROVERS,
    "breakglass": IntegrationEditView.BREAKGLASS,
    "approvals_channel": ADD.CHANNEL,
    "sync_interval_minutes": ADD.INTERVAL,
    "approvals_required": ADD.QUORUM,
    "privileged_policies": IntegrationEditView.PRIVILEGED_POLICIES,
    "privileged_groups": IntegrationEditView.PRIVILEGED_GROUPS,
    "rotate_every_days": IntegrationEditView.ROTATE,
    "review_every_days": IntegrationEditView.REVIEW,
    ADD.OPTIONS: ADD.OPTIONS,
}


def result_view(text: str) -> dict[str, Any]:
    return bk.message_modal(
        "Edit integration",
        text,
        callback_id=IntegrationEditView.CALLBACK_ID + "_done",
        private_metadata="",
    )


def result_text(result: UpdateResult) -> str:
    name = escape(result.name)
    if not result.changes:
        return f"Nothing to change in *{name}*."
    lines = "\n".join(f"• {escape(line)}" for line in result.changes[:40])
    failed = ""
    if result.failed_requests:
        failed = (
            f"\n{len(result.failed_requests)} pending request(s) failed: they would now be "
            "refused (read-only)."
        )
    return f":white_check_mark: Integration *{name}* updated:\n{lines}{failed}"


def open_integration_edit(
    core: Core, ack: Ack, client: WebClient, command: dict[str, Any], name: str
) -> None:
    """Admins only: the modal opens inside the trigger's 3 seconds (one store read)."""
    try:
        require(
            command["user_id"],
            Action.MANAGE_INTEGRATIONS,
            None,
            core.settings.admins,
            core.people,
        )
        view = IntegrationEditView.build(integrations.find(core, name))
    except Exception as exc:
        ack_with_error(ack, exc, "/roleup integration edit")
        return
    ack()
    client.views_open(trigger_id=command["trigger_id"], view=view)


def _current(core: Core, view: dict[str, Any]) -> tuple[IntegrationInfo, str]:
    """The integration the modal was opened for (by id and name, so a tampered or stale modal,
    the integration removed or another added under its name, changes nothing) and the version
    of the settings the modal showed."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        integration_id, name = int(meta["id"]), str(meta["name"])[:64]
        shown = str(meta.get("v") or "")[:64]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IntegrationNotFound("This form no longer matches an integration.") from None
    row = listing.integration_by_id(core, integration_id)
    if row is None or row.name != name:
        raise IntegrationNotFound(f"Integration {name} no longer exists.")
    return row, shown


def register(app: App, core: Core) -> None:
    view_cls = IntegrationEditView

    @app.view(view_cls.CALLBACK_ID)
    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        actor = body["user"]["id"]
        if not admins_only(core, ack, actor, ADD.PREFIX, "edit"):
            return
        try:
            row, shown = _current(core, view)
            changes = view_cls.parse(view, row)
            check_changes(row, changes)
        except InvalidInput as exc:
            ack(response_action="errors", errors=field_error(exc, FIELD_BLOCKS, ADD.PREFIX))
            return
        except IntegrationNotFound as exc:
            ack(response_action="update", view=result_view(escape(exc.user_message)))
            return
        ack(response_action="update", view=result_view(":hourglass_flowing_sand: Saving…"))
        secrets = [changes.secret_access_key, changes.external_id]
        show_outcome(
            client,
            view,
            result_view,
            "updating an integration",
            secrets,
            lambda: result_text(
                update_integration(core, row.name, changes, actor=actor, shown_version=shown)
            ),
        )
