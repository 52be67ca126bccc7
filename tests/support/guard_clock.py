"""A clock for the retry guard (bot.slack.retry_guard.time) that runs ahead: a retry's claim
won after its signature's 5 minutes, without waiting them."""

from __future__ import annotations

import time


class LaterClock:
    """The retry guard's clock, `ahead` seconds on (its flush thread still sleeps for real)."""

    def __init__(self, ahead: float) -> None:
        self.ahead = ahead

    def time(self) -> float:
        return time.time() + self.ahead

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
