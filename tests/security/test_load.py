"""Load through the HTTP path against a moto server: 200 people answer their invite pages at
once, then approvers approve all 200 with 50 clicks in flight (each request double-clicked).
Every HTTP request is answered, every onboarding runs exactly once, none is lost: checked in
IAM, in the store and in the audit log. Bounded: 200 + 400 requests, loopback only.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import select

from bot.app import create_core
from bot.services import approvals, invites
from storage.models import AuditEvent, Request
from tests.support.approvals import click, wait_until
from tests.support.config import BOT_TOKEN, SIGNING_SECRET, TEST_KEY
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.postgres import free_port
from tests.support.seed import add_integration
from tests.support.sender import SlackSender

PEOPLE = 200
APPROVALS_IN_FLIGHT = 50

pytestmark = [pytest.mark.slow, pytest.mark.moto_server]


def answer_invite(live, token: str, username: str, address: str) -> int:
    browser = requests.Session()
    # Each person from an address of their own, behind the one proxy the server trusts: the
    # invite page's rate limit is per client address.
    browser.headers["X-Forwarded-For"] = address
    url = f"{live.url}/invite/{token}"
    form = browser.get(url, timeout=120)
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text)
    if not found:
        return form.status_code if form.status_code != 200 else -1
    data = {
        "csrf_token": found.group(1),
        "username": username,
        "password": GOOD_PASSWORD,
        "confirm": GOOD_PASSWORD,
    }
    return browser.post(url, data=data, timeout=120).status_code


def requests_by_state(core) -> Counter[str]:
    with core.sessions() as s:
        return Counter(s.scalars(select(Request.state)).all())


@pytest.fixture
def served(settings, slack_api, moto_url):
    """`roleup serve` as deployed (gunicorn gthread) in its own process, over the test store."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ROLEUP_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api.url,
        ROLEUP_ENCRYPTION_KEYS=TEST_KEY,
        ROLEUP_ADMINS="UADMIN",
        ROLEUP_SCHEDULER="off",
        ROLEUP_TRUSTED_PROXIES="1",
        AWS_ENDPOINT_URL=moto_url,
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), timeout=120)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_200_onboardings_and_their_approvals_run_once_each(settings, served, slack_api, aws):
    core = create_core(settings)
    live = SimpleNamespace(url=served)
    slack = SlackSender(served, SIGNING_SECRET, slack_api.response_url_base)
    integration_id = add_integration(core, approvers=["UAPPROVER", "UAPPROVER2"])
    tokens = [
        invites.create_invite(
            core,
            integration_id=integration_id,
            slack_user_id=None,
            groups=[],
            policies=[],
            created_by="UMANAGER",
        ).token
        for _ in range(PEOPLE)
    ]
    with ThreadPoolExecutor(max_workers=APPROVALS_IN_FLIGHT) as pool:
        statuses = list(
            pool.map(
                lambda i: answer_invite(live, tokens[i], f"load{i:03d}", f"198.51.100.{i}"),
                range(PEOPLE),
            )
        )
    assert Counter(statuses) == {200: PEOPLE}
    assert requests_by_state(core) == {approvals.PENDING: PEOPLE}

    with core.sessions() as s:
        pending = list(s.scalars(select(Request.id)))

    def approve_twice(request_id: str) -> None:
        # A double click by two approvers: one of them wins. click() asserts a 200 ack.
        click(slack, "approval_approve", request_id, user="UAPPROVER")
        click(slack, "approval_approve", request_id, user="UAPPROVER2")

    with ThreadPoolExecutor(max_workers=APPROVALS_IN_FLIGHT) as pool:
        list(pool.map(approve_twice, pending))
    wait_until(lambda: requests_by_state(core) == {approvals.DONE: PEOPLE}, timeout=600)

    users = [
        u["UserName"] for page in aws.get_paginator("list_users").paginate() for u in page["Users"]
    ]
    assert sorted(users) == [f"load{i:03d}" for i in range(PEOPLE)]
    with core.sessions() as s:
        actions = Counter(
            s.scalars(select(AuditEvent.action).where(AuditEvent.request_id.in_(pending)))
        )
        secrets_left = s.scalars(
            select(Request.id).where(Request.secret_ciphertext.is_not(None))
        ).all()
    assert actions["request.approved"] == PEOPLE
    assert actions["request.running"] == PEOPLE
    assert actions["request.done"] == PEOPLE
    assert actions["request.failed"] == 0
    assert secrets_left == []
    core.engine.dispose()
