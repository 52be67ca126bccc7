"""The retry guard: delivery keys, the atomic claim across engines, and a retry end to end."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.slack.retry_guard import MAX_KEY, claim, delivery_key, prune, retry_number
from storage.db import make_engine, make_sessionmaker
from tests.handlers.seed import MANAGER, add_account, add_integration

RESPOND = "response_url:/respond/cmd"


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


def test_a_slack_retry_of_a_handled_command_does_no_work_twice(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice")
    first = slack.command("/accounts", "prod", user_id=MANAGER, trigger_id="9.9.retry")
    assert first.status_code == 200
    slack_api.wait_for(RESPOND)
    retry = slack.command(
        "/accounts",
        "prod",
        user_id=MANAGER,
        trigger_id="9.9.retry",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert retry.status_code == 200 and retry.text == ""
    # A different delivery still runs; once it has answered, the retry is known not to have.
    slack.command("/accounts", "prod", user_id=MANAGER, trigger_id="9.9.other")
    slack_api.wait_for(RESPOND, 2)
    assert len(slack_api.calls_to(RESPOND)) == 2


def test_a_retry_whose_first_delivery_never_arrived_is_handled(slack, slack_api, roleup):
    add_integration(roleup.core.sessions)
    response = slack.command(
        "/accounts",
        "prod",
        user_id=MANAGER,
        trigger_id="9.9.lost",
        headers={"X-Slack-Retry-Num": "1"},
    )
    assert response.status_code == 200
    slack_api.wait_for(RESPOND)
