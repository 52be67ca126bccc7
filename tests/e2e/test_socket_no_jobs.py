"""`roleup socket --no-jobs`, as `roleup serve --no-jobs`: a Socket Mode process that answers Slack
and claims no scheduled job, beside one without the flag that runs them all."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from storage.models import JobClaim
from tests.e2e.instances import ROOT, pid_of, scheduled_syncs, wait_until
from tests.e2e.instances import add_integration_with_own_user as add_integration
from tests.support.slack_api import FakeSlackApi

pytestmark = pytest.mark.slow
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture
def socket_mode_url() -> Iterator[str]:
    """A stand-in for Slack's Socket Mode endpoint: it accepts the WebSocket handshake and then
    stays quiet (no event comes), which is all a process needs to run."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept_key = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID.encode()).digest())  # noqa: S324
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key + b"\r\n\r\n"
            )

    threading.Thread(target=accept, daemon=True).start()
    yield f"ws://127.0.0.1:{listener.getsockname()[1]}/link"
    listener.close()
    for conn in held:
        conn.close()


def start_socket(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "socket", *options],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_socket_no_jobs_claims_no_job_beside_a_socket_that_runs_them(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    slack_api: FakeSlackApi,
    aws: Any,
    own_db: Engine,
    own_env: dict[str, str],
    socket_mode_url: str,
) -> None:
    engine = own_db
    env = {
        **os.environ,
        **own_env,
        "SLACK_APP_TOKEN": "xapp-1-A0001-0000-socketmodetoken",
    }
    slack_api.overrides["apps.connections.open"] = lambda call: {"ok": True, "url": socket_mode_url}
    add_integration(engine, aws, "prod", every=1)

    quiet = start_socket(env, tmp_path / "quiet.log", "--no-jobs")
    request.addfinalizer(quiet.kill)
    slack_api.wait_for("apps.connections.open", timeout=60)
    assert "scheduled jobs are off" in (tmp_path / "quiet.log").read_text()

    busy = start_socket(env, tmp_path / "busy.log")
    request.addfinalizer(busy.kill)
    wait_until(lambda: len(scheduled_syncs(engine, "prod")) >= 3, timeout=60)
    assert quiet.poll() is None and busy.poll() is None
    # All along, the --no-jobs process was up and never claimed a tick of any job.
    with engine.connect() as conn:
        claimants = {pid_of(i) for i in conn.scalars(select(JobClaim.instance).distinct())}
    assert claimants == {busy.pid}
