"""Making user-supplied text safe and short for Slack surfaces.

Slack's mrkdwn gives `&`, `<` and `>` special meaning: `<!channel>` pings a channel and
`<https://evil|bank>` fakes a link. Every piece of text that did not come from this codebase
(IAM names, filters, Slack display names, error details) goes through `escape` before it is put
into a mrkdwn field, and through `plain` before it is put into a plain_text field.
"""

from __future__ import annotations

from datetime import datetime

from bot.services.reasons import CONTROL
from bot.slack import ids

ELLIPSIS = "…"


def strip_control(text: str) -> str:
    """Drop control and bidi-override characters; keep newlines and tabs."""
    return CONTROL.sub("", text)


def escape(text: object) -> str:
    """Escape text for a mrkdwn field: the three characters Slack asks apps to escape."""
    cleaned = strip_control(str(text))
    return cleaned.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, ending in an ellipsis when cut."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def truncate_escaped(text: str, limit: int) -> str:
    """Like truncate, for already escaped text: never cuts an `&amp;`-style entity in half."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def plain(text: object, limit: int = 3000) -> str:
    """Text for a plain_text field: no control characters, at most `limit` characters."""
    return truncate(strip_control(str(text)), limit)


def code(text: object, limit: int = 200) -> str:
    """An escaped inline-code span; backticks in the text would end it early, so drop them."""
    inner = truncate(escape(text).replace("`", "'"), limit)
    return f"`{inner}`" if inner else "``"


def user(user_id: str) -> str:
    """A mention of a Slack user or user group id; anything else is shown escaped."""
    if ids.is_user(user_id):
        return f"<@{user_id}>"
    if ids.is_usergroup(user_id):
        return f"<!subteam^{user_id}>"
    return escape(user_id)


def people(who: list[str] | tuple[str, ...], *, none: str = "nobody yet") -> str:
    return ", ".join(user(i) for i in who) if who else none


def date(moment: datetime, pattern: str = "{date_short_pretty} {time}") -> str:
    """A Slack `<!date>` that each reader sees in their own time zone (UTC in the fallback)."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{pattern}|{fallback}>"
