"""Serve a WSGI app on a free loopback port in a thread, for real HTTP requests in tests."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import make_server

# How often the serving thread looks for `stop`: `shutdown` waits for that look, and the
# socketserver default (half a second) was most of a test's teardown where one is used.
STOP_POLL_SECONDS = 0.02


class LiveServer:
    def __init__(self, wsgi_app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(STOP_POLL_SECONDS,), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
