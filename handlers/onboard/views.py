"""The onboarding modal as code: block/action ids, build() and parse(), tested without Slack.

Fields (as README.md, "Slack commands", names them): Integration, Username, Initial password
(typed, or Generate), Groups (from the synced store), Managed policies (external select: the
list can be long) and Slack user. A typed password is never put back into a view, a message or
a log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.services import account_expiry, grants
from bot.services.errors import InvalidInput, PasswordPolicyViolation
from bot.services.reasons import NONE, Justification
from bot.slack import blocks as bk
from bot.slack.justification import JustificationFields
from bot.slack.modals import expires_block
from bot.slack.mrkdwn import escape
from bot.slack.state import ViewState
from bot.slack.term import parse_term, term_blocks

GENERATE = "generate"


@dataclass(frozen=True)
class OnboardContext:
    """What the modal carries in private_metadata: where it was opened from."""

    integration_id: int | None = None
    channel_id: str | None = None
    response_url: str | None = None

    def dump(self) -> str:
        return json.dumps({"i": self.integration_id, "c": self.channel_id, "r": self.response_url})

    @classmethod
    def load(cls, raw: Any) -> OnboardContext:
        try:
            data = json.loads(raw) if isinstance(raw, str) and raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        integration = data.get("i")
        channel, url = data.get("c"), data.get("r")
        return cls(
            integration if isinstance(integration, int) else None,
            channel if isinstance(channel, str) else None,
            url if isinstance(url, str) else None,
        )


@dataclass
class OnboardForm:
    integration_id: int
    username: str
    password: str | None = field(repr=False)  # None: generate one
    groups: list[str]
    policies: list[str]
    slack_user_id: str | None
    term: grants.Term = field(default_factory=grants.Term)  # how long the groups last
    why: Justification = NONE
    account_expires: datetime | None = None  # offboarded at 00:00 UTC of this date

    @property
    def generate(self) -> bool:
        return self.password is None


class OnboardView:
    CALLBACK_ID = "onboard"
    INTEGRATION = "integration"
    USERNAME = "username"
    PASSWORD = "password"  # noqa: S105 - a block id, not a password
    PASSWORD_MODE = "password_mode"  # noqa: S105 - a block id
    GROUPS = "groups"
    POLICIES = "policies"
    SLACK_USER = "slack_user"
    FOR = "for"
    UNTIL = "until"
    EXPIRES = "account_expires"
    ACTION = "value"
    INTEGRATION_ACTION = "onboard_integration"  # dispatches: the groups follow the integration
    POLICIES_ACTION = "onboard_policies"  # the options listener's action id
    GROUPS_ACTION = "onboard_groups"  # external select when there are more than 100 groups
    TITLE = "Onboard"
    #: which block an error's .field belongs to
    FIELDS = {
        "integration": INTEGRATION,
        "username": USERNAME,
        "password": PASSWORD,
        "groups": GROUPS,
        "policies": POLICIES,
        "slack_user": SLACK_USER,
        "for": FOR,
        "until": UNTIL,
        "account_expires": EXPIRES,
        **JustificationFields.FIELDS,
    }

    @classmethod
    def build(
        cls,
        *,
        integrations: list[tuple[int, str]],
        current: int,
        groups: list[str],
        context: OnboardContext,
        error: str | None = None,
        values: OnboardForm | None = None,
    ) -> dict[str, Any]:
        """The full modal for `current`; `values` refills a form sent back with an `error`."""
        blocks: list[bk.Block] = []
        if error:
            blocks.append(bk.section(f":warning: {escape(error)}"))
        blocks += [
            cls._integration_block(integrations, current),
            cls._username_block(values),
            bk.input_block(
                cls.PASSWORD,
                "Initial password",
                bk.text_input(cls.ACTION, max_length=128),
                optional=True,
                hint="Must be changed at first sign-in. Leave empty and tick Generate instead.",
            ),
            cls._generate_block(values),
            cls._groups_block(groups, values),
            *term_blocks(cls.FOR, cls.UNTIL, cls.ACTION, chosen=values.term if values else None),
            cls._policies_block(),
            cls._slack_user_block(values),
            expires_block(cls.EXPIRES, cls.ACTION, values.account_expires if values else None),
        ]
        blocks += JustificationFields.blocks(values.why if values else None)
        return bk.modal(
            callback_id=cls.CALLBACK_ID,
            title=cls.TITLE,
            blocks=blocks,
            submit="Onboard",
            private_metadata=OnboardContext(
                current, context.channel_id, context.response_url
            ).dump(),
        )

    @classmethod
    def _integration_block(cls, integrations: list[tuple[int, str]], current: int) -> bk.Block:
        pairs = ((name, str(i)) for i, name in integrations)
        element = bk.static_select(cls.INTEGRATION_ACTION, pairs, initial=str(current))
        return bk.input_block(cls.INTEGRATION, "Integration", element, dispatch_action=True)

    @classmethod
    def _username_block(cls, values: OnboardForm | None) -> bk.Block:
        element = bk.text_input(
            cls.ACTION,
            max_length=64,
            placeholder="e.g. alice.smith",
            initial_value=values.username if values else None,
        )
        return bk.input_block(cls.USERNAME, "Username", element)

    @classmethod
    def _generate_block(cls, values: OnboardForm | None) -> bk.Block:
        choice = ("Generate a password (shown once, only to you)", GENERATE)
        ticked = [GENERATE] if values is not None and values.generate else []
        element = bk.checkboxes(cls.ACTION, [choice], ticked=ticked)
        return bk.input_block(cls.PASSWORD_MODE, "Generate", element, optional=True)

    @classmethod
    def _groups_block(cls, groups: list[str], values: OnboardForm | None) -> bk.Block:
        if not groups:
            # A select needs at least one option: say there is nothing to pick.
            return bk.section("*Groups*: none synced for this integration yet.")
        chosen = [g for g in (values.groups if values else []) if g in groups]
        element = bk.multi_choice(cls.ACTION, cls.GROUPS_ACTION, groups, chosen)
        return bk.input_block(cls.GROUPS, "Groups", element, optional=True)

    @classmethod
    def _policies_block(cls) -> bk.Block:
        element = bk.search_select(cls.POLICIES_ACTION, placeholder="Type to search")
        return bk.input_block(cls.POLICIES, "Managed policies", element, optional=True)

    @classmethod
    def _slack_user_block(cls, values: OnboardForm | None) -> bk.Block:
        element = bk.users_select(cls.ACTION, initial=values.slack_user_id if values else None)
        return bk.input_block(
            cls.SLACK_USER,
            "Slack user",
            element,
            optional=True,
            hint="The person this account belongs to (linked as a tag on the IAM user).",
        )

    @classmethod
    def parse(cls, view: Any) -> OnboardForm:
        """The form, or InvalidInput whose .field names the block to flag."""
        state = ViewState(view)
        context = OnboardContext.load(
            view.get("private_metadata") if isinstance(view, dict) else None
        )
        chosen = state.selected(cls.INTEGRATION, cls.INTEGRATION_ACTION)
        integration_id = int(chosen) if chosen and chosen.isdigit() else context.integration_id
        if integration_id is None:
            raise InvalidInput("Choose an integration.", field="integration")
        username = state.text(cls.USERNAME, cls.ACTION)
        if not username:
            raise InvalidInput("A username is required.", field="username")
        typed = state.raw_text(cls.PASSWORD, cls.ACTION)
        generate = GENERATE in state.selected_many(cls.PASSWORD_MODE, cls.ACTION)
        if typed and generate:
            raise PasswordPolicyViolation("Type a password or tick Generate, not both.")
        if not typed and not generate:
            raise PasswordPolicyViolation("Type a password, or tick Generate.")
        groups = state.selected_many(cls.GROUPS, cls.ACTION) or state.selected_many(
            cls.GROUPS, cls.GROUPS_ACTION
        )
        term = parse_term(state, cls.FOR, cls.UNTIL, cls.ACTION)
        expires = account_expiry.parse_date(state.date(cls.EXPIRES, cls.ACTION))
        return OnboardForm(
            integration_id=integration_id,
            username=username,
            password=typed or None,
            groups=groups,
            policies=state.selected_many(cls.POLICIES, cls.POLICIES_ACTION),
            slack_user_id=state.user(cls.SLACK_USER, cls.ACTION),
            term=term,
            why=JustificationFields.parse(view),
            account_expires=expires,
        )
