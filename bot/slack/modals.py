"""Modal pieces several features share: the closing message view and the *Account expires*
date picker (/onboard, the invite, an account's Extend)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.services import account_expiry
from bot.slack import blocks as bk

# The closing view keeps the ids it had as the onboarding modal's (`onboard_done`, "Onboard").
MESSAGE_CALLBACK_ID = "onboard_done"
DEFAULT_TITLE = "Onboard"

EXPIRES_HINT = (
    "Optional: RoleUp offboards the account at 00:00 UTC on this date, without asking again "
    f"(from tomorrow to {account_expiry.MAX_DAYS} days ahead). The requester is reminded 7 days "
    "and 1 day before, with Extend."
)


def expires_block(
    block_id: str, action: str, chosen: datetime | None = None, *, optional: bool = True
) -> bk.Block:
    """*Account expires*: a date picker (read back with account_expiry.parse_date)."""
    shown = account_expiry.shown(chosen) if chosen is not None else None
    element = bk.datepicker(action, initial=shown)
    hint = EXPIRES_HINT if optional else "RoleUp offboards the account at 00:00 UTC on this date."
    return bk.input_block(block_id, "Account expires", element, optional=optional, hint=hint)


def message_view(text: str, title: str = DEFAULT_TITLE) -> dict[str, Any]:
    """A closing view with one message (progress, outcome or refusal)."""
    return bk.message_modal(title, text, callback_id=MESSAGE_CALLBACK_ID, private_metadata="")
