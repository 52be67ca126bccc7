"""Posts really signed Slack requests (commands, actions, view submissions) to a live app."""

from __future__ import annotations

from typing import Any

import requests

from tests.support.signing import command_body, payload_body, signed_headers


class SlackSender:
    def __init__(self, base_url: str, signing_secret: str, response_url_base: str = "") -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.secret = signing_secret
        self.response_url_base = response_url_base
        self.http = requests.Session()

    def post(
        self, body: str, *, headers: dict[str, str] | None = None, content_type: str | None = None
    ) -> requests.Response:
        all_headers = signed_headers(self.secret, body, content_type=content_type)
        all_headers.update(headers or {})
        return self.http.post(self.url, data=body.encode(), headers=all_headers, timeout=10)

    def command(
        self,
        command: str,
        text: str = "",
        *,
        user_id: str = "UMANAGER",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> requests.Response:
        extra.setdefault("response_url", self.response_url_base + "cmd")
        return self.post(command_body(command, text, user_id=user_id, **extra), headers=headers)

    def interact(
        self, payload: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return self.post(payload_body(payload), headers=headers)
