"""A request's *Reason* (free text) and *Ticket* (an https:// link or an id like SEC-123).

Both are checked here, once, for every surface (commands, modals, the invite form, the CLI):
a value is either accepted as it will be stored, or refused with InvalidInput naming the field
and the rule, never echoing a hostile value. Mentions and links in a reason are kept as text:
every renderer escapes it (bot/slack/mrkdwn.escape), so `<!channel>` pings nobody.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.services.errors import InvalidInput

MAX_REASON = 500
MAX_TICKET_URL = 500
# C0/C1 control characters other than newline and tab, and every Bidi_Control character
# (embeddings, overrides, isolates, the ALM/LRM/RLM marks): what could make a text render as
# something else. A reason holding one is refused; bot.slack.mrkdwn strips them from any text.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
TICKET_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,19}-[0-9]{1,12}")
# What may appear in a ticket link: no spaces, quotes or the characters mrkdwn links use.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
TICKET_RULE = "A ticket is an https:// link or an id like SEC-123."


@dataclass(frozen=True)
class Justification:
    """Why a request is made: both optional unless the integration requires a reason."""

    reason: str | None = None
    ticket: str | None = None


NONE = Justification()


def clean_reason(raw: str | None) -> str | None:
    """The reason as stored (trimmed), None when blank; InvalidInput when hostile or too long."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    if len(text) > MAX_REASON:
        raise InvalidInput(
            f"The reason is too long ({len(text)} characters): at most {MAX_REASON}.",
            field="reason",
        )
    if CONTROL.search(text):
        raise InvalidInput(
            "The reason contains control or direction-changing characters: type plain text.",
            field="reason",
        )
    return text


def clean_ticket(raw: str | None) -> str | None:
    """The ticket as stored, None when blank; InvalidInput unless an https:// link or an id."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    if TICKET_ID.fullmatch(text):
        return text
    if len(text) > MAX_TICKET_URL:
        raise InvalidInput(
            f"The ticket link is too long: at most {MAX_TICKET_URL}.", field="ticket"
        )
    if text.lower().startswith("https://") and _URL_CHARS.fullmatch(text):
        parts = urlsplit(text)
        if parts.scheme.lower() == "https" and parts.hostname and "@" not in parts.netloc:
            return text
    raise InvalidInput(TICKET_RULE, field="ticket")


def clean(reason: str | None, ticket: str | None) -> Justification:
    return Justification(clean_reason(reason), clean_ticket(ticket))


def is_link(ticket: str | None) -> bool:
    """May this stored ticket be rendered as a link? Only an https:// URL that passes the check
    (a row written some other way is shown as text)."""
    if not ticket or TICKET_ID.fullmatch(ticket):
        return False
    try:
        return clean_ticket(ticket) == ticket
    except InvalidInput:
        return False


class ReasonRequired(InvalidInput):
    """The integration wants every request to say why, and this one does not."""

    def __init__(self, names: list[str]) -> None:
        which = ", ".join(names)
        super().__init__(
            f"Integration {which} requires a reason for every request: say why.", field="reason"
        )
