"""A recording HTTP proxy in front of the moto server: what RoleUp actually sent to AWS.

moto does not keep AssumeRole's SourceIdentity or Tags, so tests read them off the wire: each
request's form-encoded Query API body (STS and IAM), and the access key id that signed it (the
session it belongs to). `refuse` answers matching requests with an error before moto sees them.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from werkzeug.wrappers import Request, Response

from tests.support.live import LiveServer

HOP_BY_HOP = {
    "connection",
    "content-encoding",
    "content-length",
    "keep-alive",
    "transfer-encoding",
    "host",
}
SIGNED_BY = re.compile(r"Credential=([A-Z0-9]+)/")
TAG_KEY = re.compile(r"Tags\.member\.(\d+)\.Key")


@dataclass(frozen=True)
class WireCall:
    action: str
    params: dict[str, str]
    key_id: str  # the access key id that signed the request

    def tags(self) -> dict[str, str]:
        """AssumeRole's Tags.member.N.Key / .Value as a dict."""
        found = {}
        for name, value in self.params.items():
            member = TAG_KEY.fullmatch(name)
            if member:
                found[value] = self.params.get(f"Tags.member.{member.group(1)}.Value", "")
        return found


@pytest.fixture(name="wire")
def recording_wire(moto_url: str) -> Iterator[AwsWire]:
    """A recording proxy in front of the moto server (point the app's AWS endpoint at its url)."""
    proxy = AwsWire(moto_url).start()
    yield proxy
    proxy.stop()


@pytest.fixture(name="settings")
def settings_through_wire(settings: Any, wire: AwsWire) -> Any:
    """For a module that imports it: RoleUp's AWS calls go through `wire`, which can hold them
    (a slow AWS) or refuse them."""
    return dataclasses.replace(settings, aws_endpoint_url=wire.url)


Refusal = tuple[Callable[[WireCall], bool], str]


class AwsWire:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls: list[WireCall] = []
        self._refusals: list[Refusal] = []
        self._holds: list[tuple[Callable[[WireCall], bool], threading.Event]] = []
        self._lock = threading.Lock()
        self._server = LiveServer(self._app)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> AwsWire:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def of(self, action: str) -> list[WireCall]:
        with self._lock:
            return [call for call in self.calls if call.action == action]

    def refuse(self, when: Callable[[WireCall], bool], code: str = "AccessDenied") -> None:
        self._refusals.append((when, code))

    def hold(self, when: Callable[[WireCall], bool]) -> threading.Event:
        """Keep matching requests waiting (a slow AWS) until the returned event is set."""
        gate = threading.Event()
        self._holds.append((when, gate))
        return gate

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        call = _parse(request, body)
        if call is not None:
            with self._lock:
                self.calls.append(call)
            for held, gate in self._holds:
                if held(call):
                    gate.wait(timeout=120)
            for when, code in self._refusals:
                if when(call):
                    return _error(code)(environ, start_response)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        answer = requests.request(
            request.method,
            self.upstream + request.full_path.rstrip("?"),
            data=body,
            headers=headers,
            timeout=30,
        )
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP]
        return Response(answer.content, status=answer.status_code, headers=kept)(
            environ, start_response
        )


def _parse(request: Request, body: bytes) -> WireCall | None:
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    action = form.pop("Action", "")
    if not action:
        return None
    form.pop("Version", None)
    signed = SIGNED_BY.search(request.headers.get("Authorization", ""))
    return WireCall(action=action, params=form, key_id=signed.group(1) if signed else "")


def _error(code: str) -> Response:
    xml = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>refused by the test</Message>"
        "</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    )
    return Response(xml, status=403, content_type="text/xml")
