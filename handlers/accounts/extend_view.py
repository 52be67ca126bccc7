"""The Extend modal of an expiring account: a later date, asked as a request under the same
rules as onboarding the account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.notices import ACCOUNT_EXTEND_ACTION
from bot.services import account_expiry
from bot.services.account_expiry import ExpiryRow
from bot.services.errors import InvalidInput, RoleUpError
from bot.slack import blocks as bk
from bot.slack.extend import ExtendModal
from bot.slack.modals import expires_block
from bot.slack.mrkdwn import escape
from bot.slack.state import ViewState, row_id


class AccountExtendView(ExtendModal[ExpiryRow, datetime]):
    CALLBACK_ID = "account_extend"
    EXPIRES = "account_expires"
    TITLE = "Extend account"
    BUTTON = ACCOUNT_EXTEND_ACTION
    DOING = "extending the account"

    @classmethod
    def heading(cls, expiry: ExpiryRow) -> str:
        return (
            f"The account IAM user *{escape(expiry.user_name)}* in "
            f"*{escape(expiry.integration)}* expires on "
            f"*{account_expiry.shown(expiry.expires_at)}* (00:00 UTC). Choose a later date "
            "(at most 365 days ahead); it may need an approver, like onboarding it did."
        )

    @classmethod
    def fields(cls) -> list[bk.Block]:
        return [expires_block(cls.EXPIRES, cls.ACTION, optional=False)]

    @classmethod
    def row_id(cls, expiry: ExpiryRow) -> int:
        return expiry.id

    @classmethod
    def parse(cls, view: Any) -> tuple[int, datetime]:
        """The expiry and its new date; InvalidInput (`field` is the block) when not readable."""
        expiry_id = row_id(view, field=cls.EXPIRES)
        try:
            expires = account_expiry.parse_date(ViewState(view).date(cls.EXPIRES, cls.ACTION))
        except InvalidInput as exc:
            exc.field = cls.EXPIRES
            raise
        if expires is None:
            raise InvalidInput("Choose the new date.", field=cls.EXPIRES)
        return expiry_id, expires

    @classmethod
    def errors(cls, exc: RoleUpError) -> dict[str, str]:
        return {cls.EXPIRES: exc.user_message[:150]}  # parse names no other block
