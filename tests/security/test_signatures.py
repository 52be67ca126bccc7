"""Forged, altered, stale, replayed and malformed requests on /slack/events change nothing."""

from __future__ import annotations

import logging
import time

import pytest
import requests

from tests.security.commands import declared_commands
from tests.security.payloads import every_kind_of_body, view_submission
from tests.security.snapshot import leaks, store_snapshot
from tests.support.config import SIGNING_SECRET
from tests.support.signing import command_body, payload_body, signature, signed_headers

BODIES = every_kind_of_body(declared_commands())
IDS = [label for label, _, _ in BODIES]


def post(live, body: str, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{live.url}/slack/events", data=body.encode(), headers=headers, timeout=10
    )


@pytest.mark.parametrize(("label", "body", "ctype"), BODIES, ids=IDS)
def test_forged_signature_is_refused_before_any_effect(live, slack_api, engine, label, body, ctype):
    before = store_snapshot(engine)
    headers = signed_headers("a-guessed-signing-secret", body, content_type=ctype)
    response = post(live, body, headers)
    assert response.status_code == 401, label
    assert "Traceback" not in response.text
    assert slack_api.calls == []
    assert store_snapshot(engine) == before


@pytest.mark.parametrize(("label", "body", "ctype"), BODIES, ids=IDS)
def test_stale_timestamp_is_refused(live, slack_api, engine, label, body, ctype):
    before = store_snapshot(engine)
    six_minutes_ago = int(time.time()) - 6 * 60
    headers = signed_headers(SIGNING_SECRET, body, timestamp=six_minutes_ago, content_type=ctype)
    assert post(live, body, headers).status_code == 401
    assert slack_api.calls == []
    assert store_snapshot(engine) == before


def test_body_altered_after_signing_is_refused(live, slack_api, engine):
    before = store_snapshot(engine)
    body = command_body("/offboard", "alice")
    headers = signed_headers(SIGNING_SECRET, body)
    altered = body.replace("alice", "admin")
    assert post(live, altered, headers).status_code == 401
    # Same length, one byte flipped in the signature itself.
    flipped = headers["X-Slack-Signature"][:-1] + (
        "0" if headers["X-Slack-Signature"][-1] != "0" else "1"
    )
    assert post(live, body, {**headers, "X-Slack-Signature": flipped}).status_code == 401
    assert slack_api.calls == []
    assert store_snapshot(engine) == before


def _malformed_headers(body: str) -> list[tuple[str, dict[str, str]]]:
    now = str(int(time.time()))
    good = signature(SIGNING_SECRET, now, body)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    future = str(int(time.time()) + 6 * 60)
    return [
        ("no headers", form),
        ("no timestamp", {**form, "X-Slack-Signature": good}),
        ("no signature", {**form, "X-Slack-Request-Timestamp": now}),
        ("empty signature", {**form, "X-Slack-Request-Timestamp": now, "X-Slack-Signature": ""}),
        (
            "v1 scheme",
            {**form, "X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v1=" + good[3:]},
        ),
        ("bare hex", {**form, "X-Slack-Request-Timestamp": now, "X-Slack-Signature": good[3:]}),
        (
            "future",
            {
                **form,
                "X-Slack-Request-Timestamp": future,
                "X-Slack-Signature": signature(SIGNING_SECRET, future, body),
            },
        ),
        (
            "text timestamp",
            {**form, "X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": good},
        ),
        (
            "huge timestamp",
            {**form, "X-Slack-Request-Timestamp": "9" * 400, "X-Slack-Signature": good},
        ),
        (
            "negative timestamp",
            {**form, "X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": good},
        ),
    ]


def test_malformed_signature_headers_are_refused(live, slack_api, engine):
    before = store_snapshot(engine)
    body = command_body("/accounts")
    for label, headers in _malformed_headers(body):
        response = post(live, body, headers)
        assert response.status_code == 401, f"{label}: {response.status_code} {response.text[:200]}"
    assert slack_api.calls == []
    assert store_snapshot(engine) == before


def test_oversized_body_is_refused_before_reading(live, slack_api, engine):
    before = store_snapshot(engine)
    body = command_body("/accounts", "x" * (1024 * 1024 + 10))
    response = post(live, body, signed_headers(SIGNING_SECRET, body))
    assert response.status_code == 413
    assert slack_api.calls == []
    assert store_snapshot(engine) == before


def test_refused_request_body_is_not_logged(live, slack_api, caplog):
    """A real modal submission that arrives stale (clock skew, a slow retry) holds a password:
    the refusal must not write the body into the log."""
    caplog.set_level(logging.DEBUG)
    password = "Stale-Submit-Pw-81!kq"
    values = {"password": {"password": {"type": "plain_text_input", "value": password}}}
    body = payload_body(view_submission("onboard", values))
    headers = signed_headers(SIGNING_SECRET, body, timestamp=int(time.time()) - 10 * 60)
    assert post(live, body, headers).status_code == 401
    assert leaks(password, caplog.text) == []
