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
from bot.services.policy import is_usergroup
from bot.slack import blocks as bk
from bot.slack import ids
from bot.slack.mrkdwn import escape
from bot.slack.state import ViewState
from handlers.admin.integration_add import (
    ACCESS_KEY_ID,
    INTERVAL_RULE,
    PATH_PREFIX,
    ROLE_ARN,
    IntegrationAddView,
    channel_block,
    interval_block,
    open_for_admins,
    options_block,
    people_block,
    quorum_block,
    register_settings_form,
    result_views,
    text_input,
)

if TYPE_CHECKING:
    from bot.services.records import IntegrationInfo

ADD = IntegrationAddView
LIST_TEXT_MAX = 3000  # characters of a comma-separated list field


class IntegrationEditView(bk.FormModal):
    CALLBACK_ID = "integration_edit"
    TITLE = "Edit integration"
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
            options_block(row),
            text_input(ADD.PREFIX, "Path prefix", max_length=512, initial=row.path_prefix),
            cls._people(ADD.MANAGERS, "Managers", row.managers),
            cls._people(ADD.APPROVERS, "Approvers", row.approvers),
            cls._people(cls.BREAKGLASS, "Break-glass", row.breakglass),
            channel_block(row.approvals_channel),
            interval_block(row.sync_interval_minutes),
            quorum_block(row.approvals_required),
            *cls._optional_texts(row),
        ]
        return cls.form(blocks, "Save", metadata)

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
    def _people(cls, block: str, label: str, entries: list[str] | None) -> bk.Block:
        users = [e for e in entries or [] if ids.is_user(e)]
        groups = [e for e in entries or [] if is_usergroup(e)]
        hint = f"User groups kept as they are: {', '.join(groups)}." if groups else None
        return people_block(block, label, users, hint)

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
            raise InvalidInput(INTERVAL_RULE, field=ADD.INTERVAL)
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
                raise InvalidInput("An access key ID is 16 to 128 capital letters and digits, "
                                   "like AKIA….", field=ADD.KEY_ID)  # fmt: skip
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


result_view = result_views(IntegrationEditView)


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
    open_for_admins(
        core,
        ack,
        client,
        command,
        "/roleup integration edit",
        lambda: IntegrationEditView.build(integrations.find(core, name)),
    )


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
    def read(view: dict[str, Any]) -> tuple[IntegrationInfo, str, IntegrationChanges]:
        row, shown = _current(core, view)
        changes = IntegrationEditView.parse(view, row)
        check_changes(row, changes)
        return row, shown, changes

    def work(actor: str, read: tuple[IntegrationInfo, str, IntegrationChanges]) -> str:
        row, shown, changes = read
        return result_text(
            update_integration(core, row.name, changes, actor=actor, shown_version=shown)
        )

    register_settings_form(
        app,
        core,
        IntegrationEditView,
        verb="edit",
        doing="updating an integration",
        block=ADD.PREFIX,
        blocks=FIELD_BLOCKS,
        read=read,
        waiting=":hourglass_flowing_sand: Saving…",
        work=work,
    )
