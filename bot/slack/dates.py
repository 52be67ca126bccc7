"""Dates in messages: Slack's <!date> token shows each reader their own time zone."""

from __future__ import annotations

from datetime import datetime


def when(moment: datetime | None, *, never: str = "never") -> str:
    if moment is None:
        return never
    stamp = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{fallback}>"
