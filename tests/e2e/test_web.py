"""The HTTP surface: health, signature verification, unknown routes."""

from __future__ import annotations

import time

import requests

from tests.support.config import SIGNING_SECRET
from tests.support.signing import command_body, signed_headers


def test_healthz_answers_200_with_json_when_the_store_answers(live, backend):
    response = requests.get(f"{live.url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_answers_503_when_the_store_is_gone(roleup, live):
    roleup.core.engine.dispose()
    # Point the engine at a database that cannot exist.
    from storage.db import make_engine

    roleup.core.engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = requests.get(f"{live.url}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_unsigned_request_is_refused_with_401(live, slack_api):
    body = command_body("/accounts")
    response = requests.post(
        f"{live.url}/slack/events",
        data=body,
        timeout=5,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    assert slack_api.calls == []


def test_wrongly_signed_request_is_refused_with_401(live, slack_api):
    body = command_body("/accounts")
    headers = signed_headers("not-the-secret", body)
    response = requests.post(f"{live.url}/slack/events", data=body, headers=headers, timeout=5)
    assert response.status_code == 401
    assert slack_api.calls == []


def test_stale_request_older_than_five_minutes_is_refused(live, slack_api):
    body = command_body("/accounts")
    headers = signed_headers(SIGNING_SECRET, body, timestamp=int(time.time()) - 6 * 60)
    response = requests.post(f"{live.url}/slack/events", data=body, headers=headers, timeout=5)
    assert response.status_code == 401
    assert slack_api.calls == []


def test_body_tampered_after_signing_is_refused(live):
    body = command_body("/accounts", "prod")
    headers = signed_headers(SIGNING_SECRET, body)
    tampered = body.replace("prod", "dev")
    response = requests.post(f"{live.url}/slack/events", data=tampered, headers=headers, timeout=5)
    assert response.status_code == 401


def test_unknown_route_is_404(live):
    assert requests.get(f"{live.url}/nope", timeout=5).status_code == 404
    assert requests.get(f"{live.url}/slack/events", timeout=5).status_code == 405


def test_every_listener_of_the_bot_is_matched_on_the_body_alone(roleup):
    """Bolt tries each listener in turn: none of the bot's pays Bolt's argument lookup per
    request (bot.slack.matching)."""
    from bot.slack.matching import BodyMatcher

    matchers = [m for listener in roleup.bolt._listeners for m in listener.matchers]
    assert len(matchers) >= 40 and all(isinstance(m, BodyMatcher) for m in matchers)
