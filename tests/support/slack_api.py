"""A real local HTTP server standing in for the Slack Web API, recording every call.

Modelled on bolt-python's tests/mock_web_api_server: the app's WebClient is pointed at it
with SLACK_API_URL, and tests assert on the calls the app made.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse


@dataclass
class Call:
    method: str  # e.g. "chat.postMessage"; response_url posts are "response_url:<path>"
    params: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[Call], "tuple[int, dict[str, Any], dict[str, str]] | dict[str, Any]"]


class FakeSlackApi:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.overrides: dict[str, Responder] = {}
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype and raw:
                    params: dict[str, Any] = json.loads(raw)
                else:
                    params = dict(parse_qsl(raw, keep_blank_values=True))
                    for key in ("blocks", "view", "attachments"):
                        if isinstance(params.get(key), str):
                            with contextlib.suppress(ValueError):
                                params[key] = json.loads(params[key])
                path = urlparse(self.path).path
                method = (
                    path[len("/api/") :] if path.startswith("/api/") else "response_url:" + path
                )
                call = Call(method, params, dict(self.headers.items()))
                status, body, headers = api._respond(call)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    @property
    def response_url_base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/respond/"

    def start(self) -> FakeSlackApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.overrides.clear()

    def _respond(self, call: Call) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.calls.append(call)
            override = self.overrides.get(call.method)
        if override is not None:
            result = override(call)
            if isinstance(result, tuple):
                return result
            return 200, result, {}
        return 200, self._default(call), {}

    def _default(self, call: Call) -> dict[str, Any]:
        method = call.method
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": "UBOT",
                "bot_id": "BBOT",
                "team_id": "T0001",
                "team": "RoleUp Test",
                "user": "roleup",
                "url": "https://roleup-test.slack.com/",
            }
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            return {
                "ok": True,
                "channel": call.params.get("channel", "C0"),
                "ts": ts,
                "message_ts": ts,
            }
        if method in ("views.open", "views.update", "views.push", "views.publish"):
            view = call.params.get("view") or {}
            return {
                "ok": True,
                "view": {
                    **view,
                    "id": "V" + str(next(self._ts)),
                    "hash": "h" + str(next(self._ts)),
                },
            }
        if method == "conversations.open":
            users = call.params.get("users", "U0")
            return {"ok": True, "channel": {"id": "D" + str(users).split(",")[0]}}
        if method == "users.info":
            user = call.params.get("user", "U0")
            return {"ok": True, "user": {"id": user, "name": user.lower(), "real_name": user}}
        if method == "usergroups.users.list":
            return {"ok": True, "users": []}
        return {"ok": True}

    # --- what tests read -------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls_to(method) if where is None or where(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [c.method for c in self.calls]
                raise AssertionError(f"expected {count} call(s) to {method}; saw {seen}")
            time.sleep(0.02)

    def fail(
        self, method: str, error: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        """Make `method` answer with an error (e.g. channel_not_found, ratelimited)."""
        self.overrides[method] = lambda call: (status, {"ok": False, "error": error}, headers or {})

    def all_text(self) -> str:
        """Everything the app ever sent to Slack, for secret scans."""
        with self._lock:
            return "\n".join(json.dumps(c.params, default=str) for c in self.calls)
