"""Listener matching without Bolt's per-request argument lookup.

Bolt tries a request against each listener in turn, and each listener's matchers (the command
name, the action id, a callback id, our own subcommand checks) are called with their arguments
found by name (`build_required_kwargs`, which inspects and builds a dict) on every request. RoleUp
has some forty listeners, so a click on a button registered late (Approve) paid that about forty
times before its ack: what a bare Bolt app with one listener never pays. Every one of our
matchers takes only the request's body, so each is swapped once, after registration, for one
that passes the body straight through: the same functions decide, in the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.listener_matcher import ListenerMatcher

logger = logging.getLogger(__name__)


class BodyMatcher(ListenerMatcher):
    """A matcher whose function takes only `body`, called with it directly."""

    def __init__(self, func: Callable[..., bool]) -> None:
        self.func = func

    def matches(self, req: BoltRequest, resp: BoltResponse) -> bool:
        return bool(self.func(body=req.body))


def takes_only_body(matcher: Any) -> bool:
    return list(getattr(matcher, "arg_names", ()) or ()) == ["body"] and callable(
        getattr(matcher, "func", None)
    )


def match_by_body(app: App) -> int:
    """Swap every registered listener's body-only matchers for BodyMatchers (others are kept
    as they are); how many were swapped."""
    swapped = 0
    listeners = getattr(app, "_listeners", None)  # Bolt keeps them here, in the order tried
    if not isinstance(listeners, list):  # another Bolt: its own matching, slower but correct
        logger.warning("listener matching left to Bolt: this slack-bolt keeps no _listeners")
        return 0
    for listener in listeners:
        matchers = list(listener.matchers)
        for index, matcher in enumerate(matchers):
            if takes_only_body(matcher):
                matchers[index] = BodyMatcher(matcher.func)
                swapped += 1
        listener.matchers = matchers
    return swapped
