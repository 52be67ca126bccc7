"""Block Kit of invites: the manager's "make an invite" modal, the DM, the invitee's modal.

Each modal is a small class with its callback id, block ids, `build()` and `parse()`, so it is
tested without Slack. User-supplied text is escaped for mrkdwn; nothing secret is ever put in a
view (the password fields are always built empty).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from bot.services import account_expiry, grants
from bot.services.errors import InvalidInput
from bot.services.iam import PasswordRules
from bot.services.invites import CreatedInvite, OpenInvite, policy_rules
from bot.services.reasons import NONE, Justification
from bot.slack import blocks as bk
from bot.slack.justification import JustificationFields
from bot.slack.modals import expires_block
from bot.slack.mrkdwn import date, escape
from bot.slack.state import ViewState
from bot.slack.term import parse_term, term_blocks

OPEN_ACTION = "invite_open"
TITLE = "AWS sign-in"


def when(moment: datetime) -> str:
    """A Slack date token that each reader sees in their own time zone."""
    return date(moment, "{date_short_pretty} at {time}")


def loading_view(callback_id: str) -> dict[str, Any]:
    return bk.loading_modal(callback_id, TITLE, private_metadata=None)


# --- the manager's modal ---------------------------------------------------------------------
@dataclass(frozen=True)
class InviteRequestForm:
    integration_id: int
    slack_user_id: str | None
    groups: list[str]
    policies: list[str]
    why: Justification = NONE
    term: grants.Term = field(default_factory=grants.Term)  # how long the groups last
    account_expires: datetime | None = None  # offboarded at 00:00 UTC of this date


class InviteCreateModal:
    CALLBACK_ID = "invite_create"
    USER = "invite_user"
    GROUPS = "invite_groups"
    FOR = "invite_for"
    UNTIL = "invite_until"
    EXPIRES = "invite_account_expires"
    TERM_ACTION = "value"
    POLICIES = "invite_policies"
    USER_ACTION = "invite_user_select"
    GROUPS_ACTION = "invite_groups_select"
    POLICIES_ACTION = "invite_policies_select"

    @classmethod
    def build(
        cls,
        *,
        integration_id: int,
        integration: str,
        slack_user_id: str | None,
        groups: list[str],
        policies: list[tuple[str, str]],
        ttl_hours: float,
    ) -> dict[str, Any]:
        """`policies` are (arn, name) pairs; only what Block Kit can carry is offered."""
        user = bk.users_select(cls.USER_ACTION, initial=slack_user_id)
        blocks: list[dict[str, Any]] = [
            bk.section(
                f"Invite someone to *{escape(integration)}*. They choose their own username "
                f"and initial password; an approver checks it before the account is made. "
                f"The link works once and expires after {ttl_hours:g} hours."
            ),
            bk.input_block(cls.USER, "Slack user", user),
        ]
        selects = (
            (cls.GROUPS, "Groups", cls.GROUPS_ACTION, [(g, g) for g in groups], "groups"),
            (
                cls.POLICIES,
                "Managed policies",
                cls.POLICIES_ACTION,
                [(n, a) for a, n in policies],
                "managed policies",
            ),
        )
        for block_id, label, action, pairs, what in selects:
            element = bk.multi_select(action, pairs, placeholder=f"Choose {what}")
            if element["options"]:  # only what Block Kit can carry is offered
                blocks.append(bk.input_block(block_id, label, element, optional=True))
        blocks += term_blocks(cls.FOR, cls.UNTIL, cls.TERM_ACTION)
        blocks.append(expires_block(cls.EXPIRES, cls.TERM_ACTION))
        blocks += JustificationFields.blocks()
        return bk.modal(
            callback_id=cls.CALLBACK_ID,
            title="Invite to AWS",
            submit="Send invite",
            private_metadata=json.dumps({"integration_id": integration_id}),
            blocks=blocks,
        )

    @classmethod
    def parse(cls, view: dict[str, Any]) -> InviteRequestForm:
        values = view.get("state", {}).get("values", {})
        meta = _metadata(view)
        user = values.get(cls.USER, {}).get(cls.USER_ACTION, {}).get("selected_user")
        groups = values.get(cls.GROUPS, {}).get(cls.GROUPS_ACTION, {})
        policies = values.get(cls.POLICIES, {}).get(cls.POLICIES_ACTION, {})
        return InviteRequestForm(
            integration_id=_meta_id(meta, "integration_id"),
            slack_user_id=str(user) if user else None,
            groups=[o["value"] for o in groups.get("selected_options") or []],
            policies=[o["value"] for o in policies.get("selected_options") or []],
            why=JustificationFields.parse(view),
            term=parse_term(ViewState(view), cls.FOR, cls.UNTIL, cls.TERM_ACTION),
            account_expires=parse_expires(ViewState(view), cls.EXPIRES, cls.TERM_ACTION),
        )


def parse_expires(state: ViewState, block_id: str, action: str) -> datetime | None:
    """The *Account expires* date, or InvalidInput with `field` set to the block."""
    try:
        return account_expiry.parse_date(state.date(block_id, action))
    except InvalidInput as exc:
        exc.field = block_id
        raise


def invite_sent_view(created: CreatedInvite) -> dict[str, Any]:
    return bk.message_modal(
        "Invite sent",
        f":email: Invite sent to <@{escape(created.slack_user_id or '')}> for "
        f"*{escape(created.integration)}*. The link works once and expires "
        f"{when(created.expires_at)}. You will see the request in the approvals when "
        "they answer.",
    )


# --- the DM ----------------------------------------------------------------------------------
def invite_dm(
    created: CreatedInvite,
    *,
    manager: str,
    groups: list[str],
    policies: list[str],
    account_expires: datetime | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The invitee's message: a button for the Slack modal, and the web link."""
    text = f"You are invited to an AWS account in {created.integration}."
    granted = ", ".join(escape(g) for g in groups) or "none"
    named = ", ".join(escape(p.rsplit("/", 1)[-1]) for p in policies) or "none"
    until = (
        f"\n*Account expires:* {account_expiry.shown(account_expires)} (00:00 UTC)"
        if account_expires is not None
        else ""
    )
    blocks = [
        bk.section(
            f":wave: <@{escape(manager)}> invited you to an AWS account in "
            f"*{escape(created.integration)}*.\n*Groups:* {granted}\n*Managed policies:* {named}"
            f"{until}"
        ),
        bk.section(
            "Choose the username and the initial password you will sign in with. An approver "
            "checks the request before the account is made."
        ),
        bk.actions(
            [
                bk.button(
                    "Choose username and password",
                    OPEN_ACTION,
                    str(created.invite_id),
                    style="primary",
                )
            ],
            block_id="invite_actions",
        ),
        bk.context(
            f"Or use the web page: <{created.url}|open your invite>. "
            f"It works once and expires {when(created.expires_at)}."
        ),
    ]
    return text, blocks


def answered_dm(username: str, integration: str) -> tuple[str, list[dict[str, Any]]]:
    text = (
        f":hourglass_flowing_sand: You asked for the username *{escape(username)}* in "
        f"*{escape(integration)}*. It is waiting for approval; you will get a message here "
        "when your account is ready."
    )
    return text, [bk.section(text)]


# --- the invitee's modal ---------------------------------------------------------------------
@dataclass(frozen=True)
class InviteAnswerForm:
    invite_id: int
    username: str
    password: str
    confirm: str
    channel: str | None
    ts: str | None
    #: The password policy read when the form was opened (None: read it again).
    rules: PasswordRules | None

    def __repr__(self) -> str:  # the password must not reach a log through a repr
        return f"InviteAnswerForm(invite_id={self.invite_id}, username={self.username!r})"

    def choice(self) -> dict[str, str]:
        """What the invitee chose, as the invite service's checks take it."""
        return {"username": self.username, "password": self.password, "confirm": self.confirm}


class InviteAnswerModal:
    CALLBACK_ID = "invite_answer"
    USERNAME = "username"
    PASSWORD = "password"  # noqa: S105 (a block id)
    CONFIRM = "confirm"
    INPUT = "value"
    #: service field name -> block id, for ack(response_action="errors")
    FIELD_BLOCKS = {"username": USERNAME, "password": PASSWORD, "confirm": CONFIRM}
    LABELS = {"username": "Username", "password": "Initial password", "confirm": "Confirm"}

    @classmethod
    def build(
        cls,
        invite: OpenInvite,
        rules: PasswordRules,
        *,
        channel: str | None = None,
        ts: str | None = None,
        username: str = "",
    ) -> dict[str, Any]:
        username_input = bk.text_input(cls.INPUT, max_length=64, initial_value=username)
        rule_lines = "\n".join(f"• {escape(rule)}" for rule in policy_rules(rules))
        blocks = [
            bk.section(
                f"Your AWS sign-in for *{escape(invite.integration)}*. An approver checks it "
                "before the account is made."
            ),
        ]
        blocks += [
            bk.input_block(
                cls.USERNAME,
                "Username",
                username_input,
                hint="1 to 64 characters: letters, numbers and + = , . @ _ -",
            ),
            bk.input_block(
                cls.PASSWORD, "Initial password", bk.text_input(cls.INPUT, max_length=128)
            ),
            bk.context("*Password policy*\n" + rule_lines),
            bk.input_block(
                cls.CONFIRM,
                "Confirm initial password",
                bk.text_input(cls.INPUT, max_length=128),
            ),
        ]
        meta = {"invite_id": invite.id, "channel": channel, "ts": ts, "rules": asdict(rules)}
        return bk.modal(
            callback_id=cls.CALLBACK_ID,
            title=TITLE,
            submit="Send for approval",
            private_metadata=json.dumps(meta),
            blocks=blocks,
        )

    @classmethod
    def with_errors(cls, view: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
        """The form with `errors` listed above the fields (found past the ack, so Slack's own
        field errors are no longer possible)."""
        notes = []
        for name, message in errors.items():
            label = cls.LABELS.get(name)
            where = f"*{label}*: " if label else ""
            notes.append(bk.section(f":warning: {where}{escape(message)}"))
        blocks = view["blocks"]
        return {**view, "blocks": [blocks[0], *notes, *blocks[1:]]}

    @classmethod
    def parse(cls, view: dict[str, Any]) -> InviteAnswerForm:
        values = view.get("state", {}).get("values", {})
        meta = _metadata(view)

        def value(block: str) -> str:
            return str(values.get(block, {}).get(cls.INPUT, {}).get("value") or "")

        return InviteAnswerForm(
            invite_id=_meta_id(meta, "invite_id"),
            username=value(cls.USERNAME).strip(),
            password=value(cls.PASSWORD),
            confirm=value(cls.CONFIRM),
            channel=meta.get("channel") if isinstance(meta.get("channel"), str) else None,
            ts=meta.get("ts") if isinstance(meta.get("ts"), str) else None,
            rules=_rules(meta.get("rules")),
        )


def _rules(raw: Any) -> PasswordRules | None:
    if not isinstance(raw, dict):
        return None
    known = {f.name for f in fields(PasswordRules)}
    try:
        return PasswordRules(**{k: v for k, v in raw.items() if k in known})
    except TypeError:
        return None


def sending_view() -> dict[str, Any]:
    return bk.message_modal(
        TITLE, ":hourglass_flowing_sand: Checking your choice with AWS and sending it…"
    )


def answered_view(username: str, integration: str) -> dict[str, Any]:
    return bk.message_modal(
        "Request sent",
        f":white_check_mark: Your request for the username *{escape(username)}* in "
        f"*{escape(integration)}* is waiting for approval. You will get a message here when "
        "your account is ready; at the first sign-in you must change the initial password.",
    )


def _meta_id(meta: dict[str, Any], key: str) -> int:
    """A row id from private_metadata; 0 (no such row) for anything that is not a small id."""
    value = str(meta.get(key) or "0")
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else 0


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}
