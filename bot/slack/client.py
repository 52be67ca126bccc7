"""The one Slack Web API client of a process. Every call through it (approval messages, notices,
DMs, views, Bolt's own) is retried by slack_sdk's retry handlers: a rate limit (HTTP 429) after
the `Retry-After` Slack sends, a server error (500, 503) after a short backoff, a connection
error once. Two limits of our own, both deciding only *whether* to retry:

- a `Retry-After` longer than `MAX_RETRY_AFTER` is not waited out (it would hold a worker
  thread that long): the call fails as `ratelimited`, like any Slack error; so does one that is
  not a whole number of seconds from 0 (slack_sdk would hand a negative one to time.sleep, which
  raises ValueError out of the call instead of Slack's answer);
- a call that creates something (a message, a modal) is not repeated after a connection error
  that came once the request was sent: Slack may have acted on it and only the answer was lost,
  and a second `chat.postMessage` would post the message twice. Errors before anything was sent
  (refused, unreachable, DNS), which urllib raises as URLError, are retried for every method.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from bot.metrics import Metrics
from bot.slack.metered import MeteredWebClient

RETRIES = 2  # per call, whatever the cause (slack_sdk counts attempts across its handlers)
MAX_RETRY_AFTER = 30  # seconds
# Methods a repeated request could do twice: a second message, a second modal.
CREATING = ("chat.postMessage", "chat.postEphemeral", "views.open", "views.push")


class _NarrowedRetryHandler(RetryHandler):
    """One of slack_sdk's handlers retrying only part of what it would: `allows` says which."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        return self.allows(request, response, error)

    def allows(
        self, request: HttpRequest, response: HttpResponse | None, error: Exception | None
    ) -> bool:
        raise NotImplementedError


class BoundedRateLimitRetryHandler(_NarrowedRetryHandler, RateLimitErrorRetryHandler):
    """slack_sdk's: sleeps `Retry-After` (plus up to a second of jitter), but only up to
    `max_wait` seconds; beyond, the 429 is the call's answer."""

    def __init__(self, max_retry_count: int = RETRIES, max_wait: int = MAX_RETRY_AFTER) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def allows(
        self, request: HttpRequest, response: HttpResponse | None, error: Exception | None
    ) -> bool:
        assert response is not None  # a 429 is an answer
        return 0 <= retry_after(response) <= self.max_wait

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        """Wait what `_can_retry` judged (slack_sdk reads the header again by itself)."""
        assert response is not None  # only a 429 is retried here
        state.next_attempt_requested = True
        time.sleep(retry_after(response) + random.random())


class NoDoubleConnectionErrorRetryHandler(_NarrowedRetryHandler, ConnectionErrorRetryHandler):
    """slack_sdk's, except that a method in `CREATING` is retried only when the error came
    before its request was sent."""

    def allows(
        self, request: HttpRequest, response: HttpResponse | None, error: Exception | None
    ) -> bool:
        return isinstance(error, URLError) or not creates(request.url)


def retry_after(response: HttpResponse) -> int:
    """Seconds Slack asked to wait (1 when it did not say, as slack_sdk assumes); -1 when the
    header is not a whole number of seconds from 0 (garbage, a date, a negative number)."""
    for name, values in response.headers.items():
        if name.lower() == "retry-after":
            value = str(values[0] if isinstance(values, list) else values).strip()
            if not (value.isascii() and value.isdigit()):
                return -1  # unreadable: do not guess a wait
            return int(value)
    return 1


def creates(url: str) -> bool:
    method = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return method in CREATING


def retry_handlers() -> list[RetryHandler]:
    return [
        BoundedRateLimitRetryHandler(),
        ServerErrorRetryHandler(max_retry_count=RETRIES),
        NoDoubleConnectionErrorRetryHandler(max_retry_count=1),
    ]


def create_slack_client(
    token: str | None, base_url: str | None = None, metrics: Metrics | None = None
) -> WebClient:
    """The process's one WebClient (Bolt's `client` too), with the retry handlers above; with
    `metrics`, the calls Slack refused (after the retries) are counted by method."""
    options: dict[str, Any] = {"token": token, "retry_handlers": retry_handlers()}
    if base_url:
        options["base_url"] = base_url
    if metrics is not None:
        return MeteredWebClient(metrics=metrics, **options)
    return WebClient(**options)
