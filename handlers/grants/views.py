"""The Extend modal of a time-bound grant: a new end, asked as a request under the usual rules."""

from __future__ import annotations

from typing import Any

from bot.notices import GRANT_EXTEND_ACTION
from bot.services import grants
from bot.services.errors import InvalidInput, RoleUpError
from bot.services.grants import GrantRow
from bot.slack import blocks as bk
from bot.slack.extend import ExtendModal
from bot.slack.mrkdwn import escape
from bot.slack.state import ViewState, row_id
from bot.slack.term import parse_term, term_blocks


class ExtendView(ExtendModal[GrantRow, grants.Term]):
    CALLBACK_ID = "grant_extend"
    FOR = "for"
    UNTIL = "until"
    TITLE = "Extend access"
    BUTTON = GRANT_EXTEND_ACTION
    DOING = "extending the grant"

    @classmethod
    def heading(cls, grant: GrantRow) -> str:
        return (
            f"*{escape(grant.group)}* for IAM user *{escape(grant.user_name)}* in "
            f"*{escape(grant.integration)}* ends at *{grants.shown(grant.ends_at)}*. "
            "Choose how long it lasts from now; it may need an approver, like the grant did."
        )

    @classmethod
    def fields(cls) -> list[bk.Block]:
        return term_blocks(cls.FOR, cls.UNTIL, cls.ACTION, permanent=False)

    @classmethod
    def row_id(cls, grant: GrantRow) -> int:
        return grant.id

    @classmethod
    def parse(cls, view: Any) -> tuple[int, grants.Term]:
        """The grant and its new term; InvalidInput (`field` set) when not readable."""
        grant_id = row_id(view, field=cls.FOR)
        term = parse_term(ViewState(view), cls.FOR, cls.UNTIL, cls.ACTION)
        if term.permanent:
            raise InvalidInput("Choose how long the access lasts.", field=cls.FOR)
        return grant_id, term

    @classmethod
    def errors(cls, exc: RoleUpError) -> dict[str, str]:
        field = exc.field if exc.field in (cls.FOR, cls.UNTIL) else None
        return {field or cls.FOR: exc.user_message[:150]}
