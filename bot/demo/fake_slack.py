"""A real local HTTP server standing in for the Slack Web API, recording every call.

The app's WebClient is pointed at it with SLACK_API_URL (the way Bolt's own tests stand in for
Slack). Tests assert on the calls the app made; `roleup demo` renders them as text. It
answers like Slack for what RoleUp uses: messages keep their ts across chat.update, views keep
their id across views.update, users.info reads a small directory, and response_url posts
(`/respond/...`) are recorded as "response_url:<path>".
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

JSON_PARAMS = ("blocks", "view", "attachments", "users", "metadata")


@dataclass
class Call:
    method: str  # e.g. "chat.postMessage"; response_url posts are "response_url:<path>"
    params: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    # What the stand-in answered (ts of a new message, id of a new view, ...).
    response: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass
class SlackUser:
    id: str
    name: str
    real_name: str
    is_bot: bool = False


Responder = Callable[[Call], "tuple[int, dict[str, Any], dict[str, str]] | dict[str, Any]"]
# A scripted answer (FakeSlackApi.script) is an HTTP error status with its headers (Slack's
# error body goes with it), or DROP: the call is answered as usual, then the connection is
# closed before the answer is sent (Slack acted; the caller never hears it).
DROP = "drop"
ERRORS_BY_STATUS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}
Listener = Callable[[Call], None]


class FakeSlackApi:
    """Answers the Web API on a loopback port; `calls` holds every request, in order."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.overrides: dict[str, Responder] = {}
        self.scripts: dict[str, list[Any]] = {}
        self.users: dict[str, SlackUser] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.closed: set[str] = set()  # views a person closed: views.update answers not_found
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._in_flight = 0
        self.server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------
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
        """Forget calls, overrides, views and messages (the user directory stays)."""
        with self._lock:
            self.calls.clear()
            self.overrides.clear()
            self.scripts.clear()
            self.views.clear()
            self.closed.clear()
            self.messages.clear()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(call)` after each request is answered (from the server's thread)."""
        self._listeners.append(listener)

    @property
    def busy(self) -> bool:
        """True while a request is being answered."""
        with self._lock:
            return self._in_flight > 0

    def get_view(self, view_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.views.get(view_id)

    def put_view(self, view: dict[str, Any]) -> None:
        """Store a view as Slack would show it (for `response_action: update` and `push`)."""
        with self._lock:
            self.views[str(view["id"])] = view

    def close_view(self, view_id: str) -> None:
        """The person closes the modal: it is gone, and views.update of it is `not_found`."""
        with self._lock:
            self.views.pop(view_id, None)
            self.closed.add(view_id)

    def add_user(self, user_id: str, name: str, real_name: str | None = None) -> SlackUser:
        user = SlackUser(user_id, name, real_name or name)
        self.users[user_id] = user
        return user

    # --- answering ---------------------------------------------------------------------
    def handle(self, path: str, raw: str, content_type: str, headers: dict[str, str]) -> Any:
        params = _parse_params(raw, content_type)
        method = path[len("/api/") :] if path.startswith("/api/") else "response_url:" + path
        call = Call(method, params, headers)
        with self._lock:
            self._in_flight += 1
        try:
            with self._lock:
                call.seq = next(self._ids)
                self.calls.append(call)
                override = self.overrides.get(method)
                waiting = self.scripts.get(method)
                scripted = waiting.pop(0) if waiting else None
            if isinstance(scripted, tuple):
                status, extra = scripted
                body = {"ok": False, "error": ERRORS_BY_STATUS.get(status, f"http_{status}")}
                call.response = {"status": status, **body}
                return status, body, extra
            if override is not None:
                result = override(call)
                status, body, extra = result if isinstance(result, tuple) else (200, result, {})
            else:
                status, body, extra = 200, self._default(call), {}
            call.response = body
            for listener in list(self._listeners):
                listener(call)
            if scripted == DROP:
                call.response = {"dropped": True, **body}
                return None, body, extra
            return status, body, extra
        finally:
            with self._lock:
                self._in_flight -= 1

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
        if method in ("chat.postMessage", "chat.postEphemeral", "chat.update"):
            return self._message(call)
        if method == "chat.delete":
            key = (str(call.params.get("channel")), str(call.params.get("ts")))
            with self._lock:
                self.messages.pop(key, None)
            return {"ok": True, "channel": key[0], "ts": key[1]}
        if method == "views.update" and call.params.get("view_id") in self.closed:
            return {"ok": False, "error": "not_found"}
        if method in ("views.open", "views.update", "views.push", "views.publish"):
            return {"ok": True, "view": self._view(call)}
        if method == "conversations.open":
            users = str(call.params.get("users", "U0"))
            return {"ok": True, "channel": {"id": "D" + users.split(",")[0]}}
        if method == "users.info":
            return {"ok": True, "user": self._user(str(call.params.get("user", "U0")))}
        if method == "usergroups.users.list":
            group = str(call.params.get("usergroup", ""))
            return {"ok": True, "users": list(self.usergroups.get(group, []))}
        return {"ok": True}

    def _message(self, call: Call) -> dict[str, Any]:
        channel = str(call.params.get("channel", "C0"))
        if call.method == "chat.update":
            ts = str(call.params.get("ts", ""))
        else:
            ts = f"{int(time.time())}.{next(self._ids):06d}"
        message: dict[str, Any] = {
            key: call.params[key]
            for key in ("text", "blocks", "attachments", "thread_ts", "user")
            if key in call.params
        }
        if call.method != "chat.postEphemeral":
            with self._lock:
                self.messages[(channel, ts)] = {**message, "ts": ts, "bot_id": "BBOT"}
        return {"ok": True, "channel": channel, "ts": ts, "message_ts": ts}

    def _view(self, call: Call) -> dict[str, Any]:
        view = dict(call.params.get("view") or {})
        view_id = str(call.params.get("view_id") or "")
        if call.method == "views.update" and not view_id:
            external = call.params.get("external_id")
            with self._lock:
                view_id = next(
                    (
                        i
                        for i, v in self.views.items()
                        if external and v.get("external_id") == external
                    ),
                    "",
                )
        if call.method != "views.update" or not view_id:
            view_id = f"V{next(self._ids):06d}"
        with self._lock:
            previous = self.views.get(view_id, {})
        stored = {
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "previous_view_id": previous.get("previous_view_id"),
            "root_view_id": previous.get("root_view_id", view_id),
            "app_id": "A0001",
            "team_id": "T0001",
            "bot_id": "BBOT",
            **view,
            "id": view_id,
            "hash": f"h{next(self._ids)}",
        }
        with self._lock:
            self.views[view_id] = stored
        return stored

    def _user(self, user_id: str) -> dict[str, Any]:
        known = self.users.get(user_id)
        name = known.name if known else user_id.lower()
        real_name = known.real_name if known else user_id
        return {
            "id": user_id,
            "name": name,
            "real_name": real_name,
            "is_bot": bool(known and known.is_bot),
            "deleted": False,
            "profile": {"real_name": real_name, "display_name": name},
        }

    # --- what tests read -------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 30.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls_to(method) if where is None or where(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                with self._lock:
                    seen = [c.method for c in self.calls]
                raise AssertionError(f"expected {count} call(s) to {method}; saw {seen}")
            time.sleep(0.02)

    def script(self, method: str, *answers: Any) -> None:
        """Answer the next calls to `method` with `answers` in order (see DROP), then as
        usual: `script("chat.update", (429, {"Retry-After": "1"}))`, `script(m, DROP)`."""
        with self._lock:
            self.scripts.setdefault(method, []).extend(answers)

    def answered(self, method: str) -> list[Call]:
        """The calls to `method` Slack acted on (not those answered with a scripted error)."""
        return [c for c in self.calls_to(method) if "status" not in c.response]

    def fail(
        self, method: str, error: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        """Make `method` answer with an error (e.g. channel_not_found, ratelimited)."""
        self.overrides[method] = lambda call: (status, {"ok": False, "error": error}, headers or {})

    def all_text(self) -> str:
        """Everything the app ever sent to Slack, for secret scans."""
        with self._lock:
            return "\n".join(json.dumps(c.params, default=str) for c in self.calls)


def _parse_params(raw: str, content_type: str) -> dict[str, Any]:
    if "json" in content_type and raw:
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {"body": parsed}
    params: dict[str, Any] = dict(parse_qsl(raw, keep_blank_values=True))
    for key in JSON_PARAMS:
        if isinstance(params.get(key), str) and params[key][:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(params[key])
    return params


class _QuietServer(ThreadingHTTPServer):
    """A client dropping a kept-alive connection (a process stopping) is no error worth a
    traceback; anything else still prints one."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(api: FakeSlackApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive like Slack, for clients that keep connections (every answer is sized).
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if not raw and "?" in self.path:
                raw = urlparse(self.path).query
            status, body, headers = api.handle(
                urlparse(self.path).path,
                raw,
                self.headers.get("Content-Type", ""),
                dict(self.headers.items()),
            )
            if status is None:  # DROP: no answer at all, the connection just closes
                self.close_connection = True
                return
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST

    return Handler
