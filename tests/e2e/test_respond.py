"""respond() through the process's pool: Bolt's message, kept-alive connections, no repeats."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.slack.respond import PooledRespond, response_pool


class Recorder:
    """A response_url host that remembers each body and the connection it came on."""

    def __init__(self, status: int = 200, *, after: str = "keep") -> None:
        """`after` each post: "keep" the connection, "close" it once answered (without saying
        so), or "drop" it without answering (the answer is lost)."""
        self.bodies: list[dict[str, Any]] = []
        self.connections: set[tuple[str, int]] = set()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.bodies.append(json.loads(raw))
                recorder.connections.add(self.client_address)
                if after == "drop":
                    self.close_connection = True
                    return
                answer = b"ok" if status == 200 else b"no_text"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                self.close_connection = after == "close"

        class Server(ThreadingHTTPServer):
            def shutdown_request(self, request: Any) -> None:
                super().shutdown_request(request)
                recorder.closed.release()  # this end has closed that connection

        self.closed = threading.Semaphore(0)
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/respond/T1/B2"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.stop()


def test_answers_go_out_as_bolt_builds_them_over_one_kept_connection(recorder):
    pool = response_pool()
    first = PooledRespond(response_url=recorder.url, pool=pool)
    second = PooledRespond(response_url=recorder.url, pool=pool)
    answer = first(text="Accounts", blocks=[{"type": "divider"}], response_type="ephemeral")
    second({"text": "again", "replace_original": True})
    second("plain")
    assert answer.status_code == 200 and answer.body == "ok"
    assert recorder.bodies == [
        {"text": "Accounts", "blocks": [{"type": "divider"}], "response_type": "ephemeral"},
        {"text": "again", "replace_original": True},
        {"text": "plain"},
    ]
    assert len(recorder.connections) == 1  # one TCP (and, at Slack, TLS) handshake for all three


def test_slacks_refusal_is_the_answer_not_an_exception():
    server = Recorder(status=404)
    try:
        answer = PooledRespond(response_url=server.url, pool=response_pool())("expired")
    finally:
        server.stop()
    assert answer.status_code == 404 and answer.body == "no_text"


def test_a_kept_connection_the_host_closed_is_replaced_before_a_post_goes_on_it():
    server = Recorder(after="close")
    try:
        pool = response_pool()
        answers = []
        for i in range(3):
            answers.append(PooledRespond(response_url=server.url, pool=pool)(f"n{i}"))
            assert server.closed.acquire(timeout=10)  # the kept connection is now dead
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert server.bodies == [{"text": "n0"}, {"text": "n1"}, {"text": "n2"}]  # each once
    assert len(server.connections) == 3


def test_a_post_whose_answer_was_lost_raises_and_is_not_sent_again():
    server = Recorder(after="drop")
    try:
        with pytest.raises(ConnectionError):
            PooledRespond(response_url=server.url, pool=response_pool())("once")
    finally:
        server.stop()
    assert server.bodies == [{"text": "once"}]


def test_a_host_that_cannot_be_reached_raises():
    server = Recorder()
    url = server.url
    server.stop()  # nothing listens there any more
    with pytest.raises(ConnectionError):
        PooledRespond(response_url=url, pool=response_pool())("hello")


def test_a_copy_of_the_context_shares_the_pool_and_no_response_url_is_refused(recorder):
    pool = response_pool()
    respond = PooledRespond(response_url=recorder.url, pool=pool)
    copied = copy.deepcopy(respond)
    assert copied.pool is pool and copied.response_url == recorder.url
    with pytest.raises(ValueError, match="no response_url"):
        PooledRespond(response_url=None, pool=pool)("hello")
