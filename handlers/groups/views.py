"""The /groups modal: a person's current groups preselected among the grantable ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.services import grants
from bot.services.errors import InvalidInput
from bot.slack import blocks as bk
from bot.slack.justification import JustificationFields
from bot.slack.mrkdwn import escape
from bot.slack.state import ViewState
from bot.slack.term import parse_term, term_blocks


@dataclass(frozen=True)
class GroupsContext:
    integration_id: int
    user_name: str

    def dump(self) -> str:
        return json.dumps({"i": self.integration_id, "u": self.user_name})

    @classmethod
    def load(cls, raw: Any) -> GroupsContext:
        try:
            data = json.loads(raw) if isinstance(raw, str) else None
            integration_id, user_name = data["i"], data["u"]  # type: ignore[index]
        except (ValueError, TypeError, KeyError):
            raise InvalidInput("This form is out of date: run /groups again.") from None
        if not isinstance(integration_id, int) or not isinstance(user_name, str):
            raise InvalidInput("This form is out of date: run /groups again.")
        return cls(integration_id, user_name)


class GroupsView:
    CALLBACK_ID = "groups"
    GROUPS = "groups"
    ACTION = "value"
    SEARCH_ACTION = "groups_search"  # external select when there are more than 100 groups
    FOR = "for"
    UNTIL = "until"
    TITLE = "Groups"

    @classmethod
    def build(
        cls,
        *,
        integration: str,
        context: GroupsContext,
        current: list[str],
        grantable: list[str],
        ends: dict[str, datetime] | None = None,
    ) -> dict[str, Any]:
        choices = sorted(set(grantable) | set(current))
        heading = (
            f"Groups of *{escape(context.user_name)}* in *{escape(integration)}*. "
            "Removing a group needs an approver."
        )
        temporary = [g for g in current if ends and g in ends]
        if temporary and ends:
            heading += "\nFor a while: " + ", ".join(
                f"{escape(g)} (until {grants.shown(ends[g])})" for g in temporary
            )
        element = bk.multi_choice(cls.ACTION, cls.SEARCH_ACTION, choices, current)
        blocks: list[bk.Block] = [bk.section(heading)]
        if choices:
            blocks.append(bk.input_block(cls.GROUPS, "Groups", element, optional=True))
            blocks += term_blocks(cls.FOR, cls.UNTIL, cls.ACTION)
            blocks += JustificationFields.blocks()
        else:
            blocks.append(bk.section("_No groups are synced for this integration yet._"))
        return bk.modal(
            callback_id=cls.CALLBACK_ID,
            title=cls.TITLE,
            blocks=blocks,
            submit="Apply" if choices else None,
            private_metadata=context.dump(),
        )

    @classmethod
    def parse(cls, view: Any) -> tuple[GroupsContext, list[str], grants.Term]:
        """What was asked; InvalidInput (its `field` the block to show it by) when not."""
        state = ViewState(view)
        context = GroupsContext.load(
            view.get("private_metadata") if isinstance(view, dict) else None
        )
        wanted = state.selected_many(cls.GROUPS, cls.ACTION) or state.selected_many(
            cls.GROUPS, cls.SEARCH_ACTION
        )
        term = parse_term(state, cls.FOR, cls.UNTIL, cls.ACTION)
        return context, wanted, term
