"""Bolt's `respond()` over one keep-alive connection pool per process.

Bolt builds a new slack_sdk WebhookClient for every `respond()`, so every answer to a command or
click opens a new connection to Slack's response_url host (a TLS handshake, against Slack) and
goes through urllib's opener machinery: the largest single cost of a command after its ack. Here
the same message goes out through a urllib3 pool built once by create_app, reusing connections.

Same contract as Bolt's: the message is built by Bolt's own `_build_message`, the answer comes
back as a WebhookResponse whatever its HTTP status, and a connection error raises. Only a
connection that could not be made is tried again (once): a post that may have reached Slack is
never repeated, so a message is never posted twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import urllib3
from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.context.respond import Respond
from slack_bolt.context.respond.internals import _build_message
from slack_bolt.middleware import Middleware
from slack_sdk.webhook import WebhookResponse

TIMEOUT = urllib3.Timeout(connect=10, read=30)  # slack_sdk's WebhookClient waits 30 s
POOLS = 4  # hosts kept (Slack answers response_urls from one)
PER_HOST = 16  # connections kept per host: the listener pool's size (bot.app)
# Where Slack's response_urls point (commercial and GovSlack). A signed payload naming any other
# host is not Slack's doing: RoleUp never posts a reply, which may name accounts, there.
SLACK_RESPONSE_ORIGINS = ("https://hooks.slack.com", "https://hooks.slack-gov.com")

logger = logging.getLogger(__name__)


def response_pool() -> urllib3.PoolManager:
    return urllib3.PoolManager(
        num_pools=POOLS,
        maxsize=PER_HOST,
        timeout=TIMEOUT,
        retries=urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0),
    )


class PooledRespond(Respond):
    """`respond()` for one request, posting through the process's pool."""

    def __init__(self, *, response_url: str | None, pool: urllib3.PoolManager) -> None:
        super().__init__(response_url=response_url)
        self.pool = pool

    def __deepcopy__(self, memo: dict[int, Any]) -> PooledRespond:
        # Bolt copies the context for some listeners; the pool (and its locks) is shared.
        return PooledRespond(response_url=self.response_url, pool=self.pool)

    def __call__(  # type: ignore[override]
        self, text: str | dict[str, Any] = "", **kwargs: Any
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        if isinstance(text, dict):
            message = _build_message(**text)
        elif isinstance(text, str):
            message = _build_message(text=text, **kwargs)
        else:
            raise ValueError(f"The arg is unexpected type ({type(text)})")
        answer = self.pool.request(
            "POST",
            self.response_url,
            body=json.dumps(message).encode(),
            headers={"Content-Type": "application/json;charset=utf-8"},
        )
        return WebhookResponse(
            url=self.response_url,
            status_code=answer.status,
            body=answer.data.decode("utf-8", "replace"),
            headers=dict(answer.headers),
        )


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def response_url_allowed(url: str, slack_api_url: str | None = None) -> bool:
    """Is `url` one of Slack's response_urls (or on the Slack API stand-in SLACK_API_URL names)?
    By prefix up to the path's first slash, so no user part or odd host spelling slips by."""
    if any(ord(c) <= 0x20 or c in "\\\x7f" for c in url):
        return False
    origins = list(SLACK_RESPONSE_ORIGINS)
    if slack_api_url:
        origins.append(origin(slack_api_url))
    return any(url.lower().startswith(o + "/") for o in origins)


class PooledResponses(Middleware):
    """A global middleware giving every listener a `respond` that posts through `pool`, and only
    to a response_url of Slack's: any other is dropped (the listener's replies then fail and
    are logged, like replies to an expired response_url). A Middleware subclass: Bolt calls it
    without matching its arguments by name on every request."""

    def __init__(self, pool: urllib3.PoolManager, slack_api_url: str | None = None) -> None:
        self.pool = pool
        self.slack_api_url = slack_api_url

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # Bolt passes it by this name
    ) -> BoltResponse | None:
        context = req.context
        url = context.response_url
        if url is not None and not response_url_allowed(url, self.slack_api_url):
            # The URL itself is not logged: a real one lets whoever holds it post as the app.
            logger.warning("a response_url outside Slack was dropped (host %s)", _host(url))
            context["response_url"] = None
            url = None
        # Bolt has built its own respond from the payload's URL already: always replace it.
        if context.get("respond") is not None or url is not None:
            context["respond"] = PooledRespond(response_url=url, pool=self.pool)
        return next()


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "-")[:64]
    except ValueError:
        return "-"
