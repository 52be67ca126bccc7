"""The base of RoleUp's global Bolt middlewares (the retry guard, the pooled respond()).

A Middleware subclass is called by Bolt directly, where a function middleware has its arguments
matched by name (inspected) on every request: a cost the bare Bolt app never pays (bench/ack.py).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware


class RequestMiddleware(Middleware):
    """A middleware of the request alone: `handle(req, next_)` answers or calls `next_()`."""

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # Bolt passes it by this name
    ) -> BoltResponse | None:
        return self.handle(req, next)

    @abstractmethod
    def handle(
        self, req: BoltRequest, next_: Callable[[], BoltResponse]
    ) -> BoltResponse | None: ...
