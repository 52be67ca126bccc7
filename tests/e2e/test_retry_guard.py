"""The retry guard: delivery keys, the atomic claim across engines, and a retry end to end."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import event, select

from bot.slack.retry_guard import (
    MAX_KEY,
    DeliveryLog,
    claim,
    delivery_key,
    prune,
    retry_number,
)
from handlers.accounts.messages import NEXT, AccountsQuery
from storage.db import make_engine, make_sessionmaker
from storage.models import SlackDelivery
from tests.support import seed
from tests.support.approvals import click, wait_for
from tests.support.seed import ADMIN, MANAGER, add_account
from tests.support.slack_answers import RESPOND, _acked, _text

# The handler tests' integrations: synced, without a key.
add_integration = partial(seed.add_integration, key=None, **seed.SYNCED)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"type": "event_callback", "event_id": "Ev1", "event": {}}, "event:Ev1"),
        ({"command": "/accounts", "trigger_id": "1.2.3"}, "trigger:1.2.3"),
        ({"type": "view_submission", "trigger_id": "4.5.6"}, "trigger:4.5.6"),
        (
            {
                "type": "block_actions",
                "trigger_id": "7.8.9",
                "actions": [{"action_id": "approve", "action_ts": "1700.01"}],
            },
            "action:1700.01:approve",
        ),
        ({"type": "block_actions", "trigger_id": "7.8.9", "actions": []}, "trigger:7.8.9"),
        ({"type": "block_suggestion", "action_id": "x", "value": "a"}, None),
        ({"type": "url_verification", "challenge": "c"}, None),
        ({"ssl_check": "1"}, None),
        ({"type": "view_closed", "trigger_id": "1"}, None),
        ({}, None),
    ],
)
def test_delivery_keys(body, key):
    assert delivery_key(body) == key


def test_huge_identifiers_are_hashed_to_fit_the_column():
    key = delivery_key({"trigger_id": "x" * 5000})
    assert key is not None and len(key) <= MAX_KEY and key.startswith("trigger:sha256:")


@pytest.mark.parametrize(
    ("headers", "number"),
    [({}, 0), ({"x-slack-retry-num": ["2"]}, 2), ({"x-slack-retry-num": ["x"]}, 0)],
)
def test_retry_number(headers, number):
    assert retry_number(headers) == number


def test_one_winner_among_processes_claiming_the_same_key(database_url):
    engines = [make_engine(database_url) for _ in range(4)]
    makers = [make_sessionmaker(e) for e in engines]
    wins: list[bool] = []
    barrier = threading.Barrier(len(makers))

    def contender(maker):
        barrier.wait()
        with maker.begin() as session:
            wins.append(claim(session, "event:EvSAME"))

    threads = [threading.Thread(target=contender, args=(m,)) for m in makers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert sorted(wins) == [False, False, False, True]


def test_prune_forgets_old_keys(sessions):
    with sessions.begin() as session:
        assert claim(session, "event:old")
    assert prune(sessions, timedelta(hours=1)) == 0
    assert prune(sessions, timedelta(seconds=-1)) == 1
    with sessions.begin() as session:
        assert claim(session, "event:old")


RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
VIEWS_OPEN = "views.open"
GUARD_LOG = "bot.slack.retry_guard"


def test_a_slack_retry_of_a_command_that_works_does_no_work_twice(slack, slack_api, roleup, caplog):
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    first = slack.command("/roleup", "integration add", user_id=ADMIN, trigger_id="9.9.retry")
    assert first.status_code == 200
    wait_for(slack_api, VIEWS_OPEN)  # the modal opens after the ack
    retry = slack.command(
        "/roleup", "integration add", user_id=ADMIN, trigger_id="9.9.retry", headers=RETRY
    )
    assert retry.status_code == 200 and retry.text == ""
    assert "dropped Slack retry of trigger" in caplog.text
    # A different delivery still runs; the retry opened no second modal.
    slack.command("/roleup", "integration add", user_id=ADMIN, trigger_id="9.9.other")
    opened = wait_for(slack_api, VIEWS_OPEN, count=2)
    assert [c.params["trigger_id"] for c in opened] == ["9.9.retry", "9.9.other"]


def test_a_slack_retry_of_a_listing_is_answered_again_and_writes_no_key(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice")
    first = slack.command("/accounts", "prod", user_id=MANAGER, trigger_id="9.9.list")
    assert "*alice*" in _text(_acked(first))  # answered in its ack
    retry = slack.command(
        "/accounts", "prod", user_id=MANAGER, trigger_id="9.9.list", headers=RETRY
    )
    assert "*alice*" in _text(_acked(retry))  # answered again, not dropped
    roleup.core.deliveries.flush()
    assert stored_keys(roleup.core.sessions) == set()
    assert slack_api.calls_to(RESPOND) == []


def test_a_retry_whose_first_delivery_never_arrived_is_handled(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice")
    response = slack.command(
        "/accounts",
        "prod",
        user_id=MANAGER,
        trigger_id="9.9.lost",
        headers={"X-Slack-Retry-Num": "1"},
    )
    assert "*alice*" in _text(_acked(response))


def stored_keys(sessions) -> set[str]:
    with sessions() as session:
        return set(session.scalars(select(SlackDelivery.key)))


def test_first_deliveries_are_noted_off_the_request_and_written_in_one_statement(sessions):
    log = DeliveryLog(sessions, interval=3600)  # only flush() writes in this test
    with sessions.begin() as session:
        claim(session, "trigger:already")
    statements: list[str] = []
    engine = sessions.kw["bind"]

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        for key in ("trigger:1", "event:Ev2", "trigger:1", "trigger:already"):
            log.note(key)
        assert stored_keys(sessions) == {"trigger:already"}  # nothing written by note()
        statements.clear()
        log.flush()
        inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
        log.flush()  # nothing left: no statement at all
        inserts_after = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        log.close()
    assert len(inserts) == 1 and inserts_after == inserts
    assert stored_keys(sessions) == {"trigger:already", "trigger:1", "event:Ev2"}


def test_the_log_writes_by_itself_soon_after_a_key_is_noted(sessions):
    log = DeliveryLog(sessions, interval=0.01)
    try:
        log.note("trigger:soon")
        deadline = threading.Event()
        for _ in range(500):  # the background thread writes within its interval
            if "trigger:soon" in stored_keys(sessions):
                break
            deadline.wait(0.01)
        assert "trigger:soon" in stored_keys(sessions)
    finally:
        log.close()


def test_a_retry_is_dropped_while_its_first_deliverys_key_still_waits_to_be_written(
    slack, slack_api, roleup, caplog
):
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    roleup.core.deliveries.interval = 3600  # the batch is not written by itself
    slack.command("/roleup", "integration add", user_id=ADMIN, trigger_id="9.9.held")
    wait_for(slack_api, VIEWS_OPEN)
    assert "trigger:9.9.held" not in stored_keys(roleup.core.sessions)
    retry = slack.command(
        "/roleup", "integration add", user_id=ADMIN, trigger_id="9.9.held", headers=RETRY
    )
    assert retry.status_code == 200 and retry.text == ""
    assert "dropped Slack retry of trigger" in caplog.text
    assert "trigger:9.9.held" in stored_keys(roleup.core.sessions)


def test_a_slack_retry_of_a_paging_click_renders_again_and_writes_no_key(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    for n in range(25):  # two pages
        add_account(roleup.core.sessions, prod, f"user{n:02}")
    page_two = AccountsQuery("prod", None, 1).to_value()
    click(slack, NEXT, page_two, user=MANAGER, channel="CLIST")
    click(slack, NEXT, page_two, user=MANAGER, channel="CLIST", retry=1)
    pages = wait_for(slack_api, f"response_url:/respond/click-{MANAGER}", count=2)
    assert all("*user24*" in c.params["text"] + str(c.params["blocks"]) for c in pages)
    roleup.core.deliveries.flush()
    assert stored_keys(roleup.core.sessions) == set()
