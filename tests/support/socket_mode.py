"""A stand-in for Slack's Socket Mode endpoint, and `roleup socket` started against it."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE = 0x1, 0x8


class SocketModeStandIn:
    """Accepts the WebSocket handshake of `roleup socket`, then sends it the envelopes a test
    gives (`send`) and keeps what the process answers (`answers`, its acks by envelope id). It
    never pings, and answers no ping, which the client does not require."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []
        self.connected = threading.Event()
        self.answers: dict[str, dict[str, Any]] = {}
        self.answered = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.listener.getsockname()[1]}/link"

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        """An envelope of `kind` ("slash_commands", "interactive") to the latest connection;
        its id."""
        envelope_id = str(uuid.uuid4())
        message = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": True,
        }
        data = json.dumps(message).encode()
        size = len(data)
        if size < 126:
            header = struct.pack("!BB", 0x80 | TEXT, size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | TEXT, 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | TEXT, 127, size)
        self.connections[-1].sendall(header + data)
        return envelope_id

    def answer(self, envelope_id: str, timeout: float) -> dict[str, Any]:
        """What the process acked `envelope_id` with (its payload, if any)."""
        with self.answered:
            if not self.answered.wait_for(lambda: envelope_id in self.answers, timeout):
                raise AssertionError(f"no ack of envelope {envelope_id}")
            return self.answers[envelope_id]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
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
            self.connected.set()
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        """The client's frames (masked, as a client's are): its acks are kept."""
        reader = conn.makefile("rb")
        try:
            while True:
                head = reader.read(2)
                if len(head) < 2:
                    return
                opcode, size = head[0] & 0x0F, head[1] & 0x7F
                if size == 126:
                    size = struct.unpack("!H", reader.read(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", reader.read(8))[0]
                mask = reader.read(4) if head[1] & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(reader.read(size)))
                if opcode == CLOSE:
                    return
                if opcode == TEXT:
                    self._keep(json.loads(data))
        except (OSError, ValueError):
            return

    def _keep(self, message: dict[str, Any]) -> None:
        if "envelope_id" in message:
            with self.answered:
                self.answers[message["envelope_id"]] = message.get("payload") or {}
                self.answered.notify_all()


@pytest.fixture
def socket_mode() -> Iterator[SocketModeStandIn]:
    stand_in = SocketModeStandIn()
    yield stand_in
    stand_in.close()


@pytest.fixture
def socket_mode_url(socket_mode: SocketModeStandIn) -> str:
    """A stand-in for Slack's Socket Mode endpoint that stays quiet (no event comes), which is
    all a process needs to run."""
    return socket_mode.url


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
