"""Sends really signed Slack requests (slash commands, interactivity) to the app over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bot.demo.payloads import Actor
from bot.demo.signing import command_body, payload_body, signed_headers


@dataclass
class Reply:
    """The app's HTTP answer: its status and its body (JSON when it sent JSON)."""

    status: int
    text: str

    @property
    def json(self) -> dict[str, Any] | None:
        try:
            parsed = json.loads(self.text) if self.text.strip() else None
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None


class SignedSlack:
    """Plays Slack's side of the Request URL: every body signed with the app's secret."""

    def __init__(self, base_url: str, signing_secret: str, timeout: float = 30.0) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.secret = signing_secret
        self.timeout = timeout

    def post(self, body: str) -> Reply:
        request = urllib.request.Request(  # noqa: S310 - a loopback URL the demo built itself
            self.url, data=body.encode(), headers=signed_headers(self.secret, body), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return Reply(response.status, response.read().decode())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read().decode(errors="replace"))

    def command(
        self,
        actor: Actor,
        command: str,
        text: str,
        *,
        channel_id: str,
        channel_name: str,
        trigger_id: str,
        response_url: str,
    ) -> Reply:
        body = command_body(
            command,
            text,
            user_id=actor.id,
            user_name=actor.name,
            channel_id=channel_id,
            channel_name=channel_name,
            trigger_id=trigger_id,
            response_url=response_url,
        )
        return self.post(body)

    def interact(self, payload: dict[str, Any]) -> Reply:
        return self.post(payload_body(payload))
