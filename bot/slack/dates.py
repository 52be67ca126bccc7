"""Dates in messages: Slack's <!date> token shows each reader their own time zone."""

from __future__ import annotations

from datetime import datetime

from bot.slack.mrkdwn import date


def when(moment: datetime | None, *, never: str = "never") -> str:
    return never if moment is None else date(moment)
