"""Keep secrets out of the logs that the libraries write at DEBUG.

slack_sdk logs every Web API request and response body at DEBUG (a generated password shown
with chat.postEphemeral would be in it), its webhook client logs response_url bodies, its
Socket Mode client logs incoming payloads (a submitted password), and botocore logs every
request's parameters (CreateLoginProfile's Password) and response bodies. None of this is
needed to run the app, so those DEBUG records are dropped at the loggers that make them; their
INFO and above still flow. Logger filters only see records made by that very logger, hence the
explicit list.
"""

from __future__ import annotations

import logging

# Loggers that write request or response bodies at DEBUG.
BODY_LOGGERS = (
    "slack_sdk.web.base_client",
    "slack_sdk.web.internal_utils",
    "slack_sdk.webhook.client",
    "slack_sdk.socket_mode.builtin.client",
    "slack_sdk.socket_mode.client",
    "slack_sdk.socket_mode.websocket_client",
    "slack_bolt.adapter.socket_mode",
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.hooks",
    "botocore.auth",
    "botocore.httpsession",
    "botocore.awsrequest",
    "botocore.retryhandler",
    "botocore.regions",
    "urllib3.connectionpool",
)


class DropDebugBodies(logging.Filter):
    """Drops DEBUG (and lower) records; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def install_log_guards(extra: tuple[str, ...] = ()) -> None:
    """Attach the filter to each body-logging logger, once (safe to call again)."""
    for name in (*BODY_LOGGERS, *extra):
        target = logging.getLogger(name)
        if not any(isinstance(f, DropDebugBodies) for f in target.filters):
            target.addFilter(DropDebugBodies())
