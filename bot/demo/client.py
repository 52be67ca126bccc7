"""Sends really signed Slack requests (slash commands, interactivity) to the app over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from bot.demo.payloads import APP_ID, TEAM, Actor
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

    def post(self, body: str, content_type: str | None = None) -> Reply:
        headers = signed_headers(self.secret, body, content_type=content_type)
        request = urllib.request.Request(  # noqa: S310 - a loopback URL the demo built itself
            self.url, data=body.encode(), headers=headers, method="POST"
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

    def event(self, event: dict[str, Any]) -> Reply:
        """An Events API delivery (JSON), as Slack posts it to the same Request URL."""
        now = int(time.time())
        envelope = {
            "token": "legacy-unused",
            "team_id": TEAM["id"],
            "api_app_id": APP_ID,
            "event": {**event, "event_ts": f"{now}.000100"},
            "type": "event_callback",
            "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": now,
            "authorizations": [{"team_id": TEAM["id"], "user_id": "UBOT", "is_bot": True}],
        }
        return self.post(json.dumps(envelope), content_type="application/json")
