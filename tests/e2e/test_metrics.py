"""GET /metrics on the real app over HTTP, on both stores: what a scenario leaves in the counters,
the store's numbers read at scrape time, the bearer token, and labels that never name a person."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

import boto3
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError

from bot.app import create_app
from bot.services import approvals
from bot.services.errors import RequestConflict
from storage.models import Grant, Integration, Request, utcnow
from tests.support import seed
from tests.support.live import LiveServer
from tests.support.requests import submit_request

TOKEN = "metrics-token-0123456789abcdef"


def scrape(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return answer.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels; 0 when there is none."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


# Without a key.
add_integration = partial(seed.add_integration, key=None, approvers=["UAPPROVER1", "UAPPROVER2"])


def offboard(core: Any, integration_id: int, user: str) -> Request:
    return submit_request(
        core,
        kind="offboard",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={
            "target": user,
            "accounts": [
                {"integration_id": integration_id, "integration": "prod", "user_name": user}
            ],
        },
    )


@pytest.fixture
def served(settings):
    app = create_app(settings)
    server = LiveServer(app.web).start()
    yield app, server.url
    server.stop()
    app.close()


@pytest.fixture
def guarded(settings):
    app = create_app(replace(settings, metrics_token=TOKEN))
    server = LiveServer(app.web).start()
    yield app, server.url
    server.stop()
    app.close()


def test_requests_are_counted_once_by_kind_and_outcome_with_their_wait(served):
    app, url = served
    core = app.core
    prod = add_integration(core)
    denied = offboard(core, prod, "alice-the-person")
    expiring = offboard(core, prod, "bob-the-person")

    approvals.decide(core, denied.id, approver="UAPPROVER1", approve=False)
    with pytest.raises(RequestConflict):  # a second click decides nothing and counts nothing
        approvals.decide(core, denied.id, approver="UAPPROVER2", approve=False)
    with core.sessions.begin() as session:
        session.get_one(Request, expiring.id).expires_at = utcnow() - timedelta(seconds=1)
    assert approvals.expire_pending(core) == 1

    text = scrape(url)
    assert value(text, "roleup_requests_total", kind="offboard", outcome="denied") == 1
    assert value(text, "roleup_requests_total", kind="offboard", outcome="expired") == 1
    assert (
        value(text, "roleup_approval_wait_seconds_count", kind="offboard", decision="denied") == 1
    )
    # Expiry is no decision: it is not an approval wait.
    assert (
        value(text, "roleup_approval_wait_seconds_count", kind="offboard", decision="approved") == 0
    )
    # Nobody is a label: not the people the requests were about, nor who asked or decided.
    for person in ("alice-the-person", "bob-the-person", "UMANAGER", "UAPPROVER1"):
        assert person not in text


def test_a_move_rolled_back_is_not_counted(served):
    app, url = served
    core = app.core
    row = offboard(core, add_integration(core), "carol")
    with pytest.raises(RuntimeError), core.sessions.begin() as session:
        assert approvals.move(session, row.id, from_states=("pending",), to="cancelled")
        raise RuntimeError("the transaction around the move fails")
    assert approvals.load(core, row.id).state == "pending"
    assert value(scrape(url), "roleup_requests_total", kind="offboard", outcome="cancelled") == 0


def test_store_numbers_are_read_at_scrape_time(served):
    app, url = served
    core = app.core
    prod = add_integration(core)
    add_integration(core, "staging")
    offboard(core, prod, "dave")
    with core.sessions.begin() as session:
        for group in ("admins", "ops"):
            session.add(
                Grant(
                    integration_id=prod,
                    user_name="dave",
                    group_name=group,
                    requester="UMANAGER",
                    starts_at=utcnow(),
                    ends_at=utcnow() + timedelta(hours=1),
                )
            )
    text = scrape(url)
    assert value(text, "roleup_store_up") == 1
    assert value(text, "roleup_grants_active", integration="prod") == 2
    assert value(text, "roleup_grants_active", integration="staging") == 0
    assert value(text, "roleup_requests_pending") == 1
    assert value(text, "roleup_accounts", integration="prod") == 0
    assert value(text, "roleup_sync_failing", integration="prod") == 0
    assert "dave" not in text


def test_aws_calls_and_errors_are_counted_by_operation(served, mocked_aws):
    app, url = served
    iam = app.core.aws.iam_with_key("AKIAEXAMPLEEXAMPLE12", "s" * 40)
    iam.list_users()
    iam.list_users()
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName="nobody-here")
    boto3.client("iam", region_name="us-east-1").list_users()  # not RoleUp's client: not counted

    text = scrape(url)
    assert value(text, "roleup_aws_calls_total", service="iam", operation="ListUsers") == 2
    assert value(text, "roleup_aws_calls_total", service="iam", operation="GetUser") == 1
    errors = value(
        text, "roleup_aws_errors_total", service="iam", operation="GetUser", code="NoSuchEntity"
    )
    assert errors == 1
    assert (
        value(text, "roleup_aws_errors_total", service="iam", operation="ListUsers", code="") == 0
    )
    assert "nobody-here" not in text


def test_slack_errors_are_counted_by_method_and_error(served, slack_api):
    app, url = served
    slack_api.fail("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError):
        app.slack.chat_postMessage(channel="CGONE", text="hello")
    app.slack.chat_update(channel="C1", ts="1.0", text="fine")

    text = scrape(url)
    failed = value(
        text, "roleup_slack_api_errors_total", method="chat.postMessage", error="channel_not_found"
    )
    assert failed == 1
    assert "chat.update" not in text


def test_the_sync_and_its_drift_are_measured(served, mocked_aws):
    from bot.services.aws import key_hint, seal_key_pair
    from bot.services.sync import sync_integration

    app, url = served
    core = app.core
    admin = boto3.client("iam", region_name="us-east-1")
    admin.create_user(UserName="roleup")
    key = admin.create_access_key(UserName="roleup")["AccessKey"]
    prod = add_integration(core)
    with core.sessions.begin() as session:
        row = session.get_one(Integration, prod)
        row.access_key_hint = key_hint(key["AccessKeyId"])
        row.credentials_ciphertext = seal_key_pair(
            core.require_box(), key["AccessKeyId"], key["SecretAccessKey"]
        )
    sync_integration(core, prod, actor="test")
    admin.create_user(UserName="made-outside")
    admin.create_user(UserName="also-outside")
    sync_integration(core, prod, actor="test")

    text = scrape(url)
    assert value(text, "roleup_sync_duration_seconds_count", integration="prod", outcome="ok") == 2
    assert value(text, "roleup_drift_changes_total", integration="prod") == 2
    assert value(text, "roleup_accounts", integration="prod") == 3
    assert value(text, "roleup_last_sync_timestamp_seconds", integration="prod") > 0
    assert "made-outside" not in text


def test_the_token_guards_metrics_in_constant_time(guarded):
    _, url = guarded
    assert requests.get(f"{url}/metrics", timeout=10).status_code == 401
    for wrong in ("Bearer nope", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"):
        answer = requests.get(f"{url}/metrics", headers={"Authorization": wrong}, timeout=10)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in answer.text
    assert "roleup_store_up 1.0" in scrape(url, TOKEN)
