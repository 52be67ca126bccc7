"""Bolt's `respond()` over one keep-alive connection pool per process.

Bolt builds a new slack_sdk WebhookClient for every `respond()`, so every answer to a command or
click opens a new connection to Slack's response_url host (a TLS handshake, against Slack) and
goes through urllib's opener machinery: the largest single cost of a command after its ack. Here
the same message goes out through connections kept alive by one ResponsePool per process, built
by create_app: the standard library's http.client, which costs a command about a third of the
CPU urllib3's pool did for the same post (its retries, header dictionaries, URL parsing and
response wrapper run on every request; bench/ack.py).

Same contract as Bolt's: the message is built by Bolt's own `_build_message`, the answer comes
back as a WebhookResponse whatever its HTTP status, and a connection error raises. Only a
connection that could not be made is tried again (once): a post that may have reached Slack is
never repeated, so a message is never posted twice. A kept connection the other end has closed
is noticed before it is used (it is readable while idle) and replaced, never written to.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.context.respond import Respond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk.webhook import WebhookResponse
from urllib3.util.wait import wait_for_read

from bot.slack.middleware import RequestMiddleware

CONNECT_TIMEOUT = 10
READ_TIMEOUT = 30  # slack_sdk's WebhookClient waits 30 s
# Idle connections kept per host: about as many as answer at once after acks (bot.app).
PER_HOST = 16
HEADERS = {"Content-Type": "application/json;charset=utf-8"}
# Where Slack's response_urls point (commercial and GovSlack). A signed payload naming any other
# host is not Slack's doing: RoleUp never posts a reply, which may name accounts, there.
SLACK_RESPONSE_ORIGINS = ("https://hooks.slack.com", "https://hooks.slack-gov.com")

logger = logging.getLogger(__name__)

Host = tuple[str, str, int]  # scheme, host, port


class ResponsePool:
    """Kept-alive HTTP(S) connections to response_url hosts, shared by the process's threads
    (each connection used by one thread at a time). HTTPS verifies the certificate and host
    name (the default context)."""

    def __init__(self, per_host: int = PER_HOST) -> None:
        self.per_host = per_host
        self._idle: dict[Host, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context()

    def post(self, url: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """POST `body` as JSON to `url`: (status, body, headers) whatever the status."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a response_url is an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = (parts.scheme, parts.hostname, port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = self._take(host) or self._connect(host)
        try:
            connection.request("POST", path, body=body, headers=HEADERS)
            answer = connection.getresponse()
            data = answer.read()
        except BaseException:
            connection.close()  # in an unknown state: never reused, and never re-sent
            raise
        if answer.will_close:
            connection.close()
        else:
            self._give(host, connection)
        return answer.status, data, dict(answer.getheaders())

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _take(self, host: Host) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                idle = self._idle.get(host)
                if not idle:
                    return None
                connection = idle.pop()
            sock = connection.sock
            # Idle and readable: the other end closed it (or sent what nobody asked for).
            if sock is not None and not wait_for_read(sock, timeout=0):
                return connection
            connection.close()

    def _give(self, host: Host, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(host, [])
            if len(idle) < self.per_host:
                idle.append(connection)
                return
        connection.close()

    def _connect(self, host: Host) -> http.client.HTTPConnection:
        """A new connection, connected; one that could not be made is tried once more (nothing
        was sent on it)."""
        try:
            return self._open(host)
        except OSError:
            return self._open(host)

    def _open(self, host: Host) -> http.client.HTTPConnection:
        scheme, name, port = host
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                name, port, timeout=CONNECT_TIMEOUT, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(name, port, timeout=CONNECT_TIMEOUT)
        try:
            connection.connect()
        except BaseException:
            connection.close()
            raise
        if connection.sock is not None:
            connection.sock.settimeout(READ_TIMEOUT)
        return connection


def response_pool() -> ResponsePool:
    return ResponsePool()


class PooledRespond(Respond):
    """`respond()` for one request, posting through the process's pool."""

    def __init__(self, *, response_url: str | None, pool: ResponsePool) -> None:
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
        status, body, headers = self.pool.post(self.response_url, json.dumps(message).encode())
        return WebhookResponse(
            url=self.response_url,
            status_code=status,
            body=body.decode("utf-8", "replace"),
            headers=headers,
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


class PooledResponses(RequestMiddleware):
    """A global middleware giving every listener a `respond` that posts through `pool`, and only
    to a response_url of Slack's: any other is dropped (the listener's replies then fail and
    are logged, like replies to an expired response_url)."""

    def __init__(self, pool: ResponsePool, slack_api_url: str | None = None) -> None:
        self.pool = pool
        self.slack_api_url = slack_api_url

    def handle(self, req: BoltRequest, next_: Callable[[], BoltResponse]) -> BoltResponse | None:
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
        return next_()


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "-")[:64]
    except ValueError:
        return "-"
