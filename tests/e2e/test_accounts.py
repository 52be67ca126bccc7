"""/accounts end to end: signed commands into the live app, answers read from their acks (and
from the Slack stand-in, for what is posted to response_url)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import event, update
from sqlalchemy import text as sql

from bot.services import listing
from bot.slack import commands
from handlers.accounts import messages
from storage import db
from storage.db import make_engine, make_sessionmaker
from storage.models import Account, AccountExpiry, Grant, Integration
from tests.support import seed
from tests.support.ended_sessions import end_other_sessions
from tests.support.seed import (
    ADMIN,
    APPROVER,
    MANAGER,
    STRANGER,
    add_account,
)
from tests.support.slack_answers import RESPOND, _acked, _answer, _click, _text

# The handler tests' integrations: synced, without a key.
add_integration = partial(seed.add_integration, key=None, **seed.SYNCED)


def test_manager_sees_accounts_groups_and_links(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev", "ops"), slack_user_id="UALICE")
    add_account(roleup.core.sessions, prod, "bob")
    message = _acked(slack.command("/accounts", "prod", user_id=MANAGER))
    assert message["response_type"] == "ephemeral"
    text = _text(message)
    assert "*alice*" in text and "`dev`" in text and "`ops`" in text and "<@UALICE>" in text
    assert "*bob*" in text and "_not linked_" in text
    assert "prod synced <!date^" in text
    buttons = [e["text"]["text"] for e in message["blocks"][-1]["elements"]]
    assert buttons == ["Refresh"]
    assert slack_api.calls_to(RESPOND) == []  # the ack was the answer: nothing posted after it


def test_filter_matches_username_or_group(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    add_account(roleup.core.sessions, prod, "bob", ("ops",))
    add_account(roleup.core.sessions, prod, "carol_ops")
    text = _text(_acked(slack.command("/accounts", "prod ops", user_id=APPROVER)))
    assert "*bob*" in text and "carol_ops" in text and "alice" not in text


def test_paging_with_previous_and_next_inside_block_limits(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    for i in range(45):
        add_account(roleup.core.sessions, prod, f"user{i:02d}", ("g",))
    first = _acked(slack.command("/accounts", "", user_id=ADMIN))
    assert len(first["blocks"]) <= 50
    nav = first["blocks"][-1]["elements"]
    assert [b["text"]["text"] for b in nav] == ["Refresh", "Next"]
    assert "page 1 of 3" in _text(first)
    next_button = nav[1]
    slack.interact(_click(next_button, ADMIN, slack_api.response_url_base + "cmd"))
    second = _answer(slack_api)
    assert second["replace_original"] is True
    assert "user20" in _text(second) and "user00" not in _text(second)
    assert [b["text"]["text"] for b in second["blocks"][-1]["elements"]] == [
        "Refresh",
        "Previous",
        "Next",
    ]


def test_stranger_is_refused_and_told_who_can_help(slack, slack_api, roleup):
    add_integration(roleup.core.sessions)
    text = _acked(slack.command("/accounts", "prod", user_id=STRANGER))["text"]
    assert "can't list accounts" in text and f"<@{MANAGER}>" in text


def test_no_integrations_yet_says_how_to_add_one(slack, slack_api, roleup):
    answer = _acked(slack.command("/accounts", "", user_id=ADMIN))
    assert "/roleup integration add" in answer["text"]


def test_injection_in_names_and_filters_is_escaped(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    # IAM names cannot hold < or >, but groups synced from elsewhere and filters can be anything.
    add_account(roleup.core.sessions, prod, "eve", ("<!channel>",))
    text = _text(_acked(slack.command("/accounts", "prod <!channel>", user_id=MANAGER)))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    text = _text(_acked(slack.command("/accounts", "<https://evil.example|bank>", user_id=MANAGER)))
    assert "<https://evil" not in text


def test_malformed_input_gets_a_usage_line_in_the_ack(slack, slack_api, roleup):
    for text in ["a b c", "x" * 10_000, '"unclosed', "\x00\x01\x02 a b c"]:
        response = slack.command("/accounts", text, user_id=MANAGER)
        assert response.status_code == 200
        assert "Usage: `/accounts" in response.json()["text"]
        assert response.json()["response_type"] == "ephemeral"
    assert slack_api.calls_to(RESPOND) == []


def test_unknown_integration_with_a_filter_is_a_usage_error(slack, slack_api, roleup):
    add_integration(roleup.core.sessions)
    answer = _acked(slack.command("/accounts", "nope alice", user_id=MANAGER))
    assert "no integration" in answer["text"] and answer["response_type"] == "ephemeral"


def test_a_slack_guest_listed_as_manager_sees_no_accounts(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    slack_api.overrides["users.info"] = lambda call: {
        "ok": True,
        "user": {"id": call.params["user"], "is_restricted": True, "deleted": False},
    }
    for text in ("", "prod"):  # every integration, or one named
        message = _acked(slack.command("/accounts", text, user_id=MANAGER))
        assert "Slack guests can't use RoleUp." in _text(message)
        assert "alice" not in _text(message)


def test_a_filter_with_like_wildcards_matches_them_literally(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "a_b")
    add_account(roleup.core.sessions, prod, "axb")
    add_account(roleup.core.sessions, prod, "c%d", ("team/x",))
    add_account(roleup.core.sessions, prod, "cxd", ("teamyx",))
    underscore, percent, slash = (
        _text(_acked(slack.command("/accounts", f"prod {words}", user_id=MANAGER)))
        for words in ("a_b", "%", "m/x")
    )
    assert "axb" not in underscore and "1 account matching" in underscore
    assert "1 account matching" in percent and "cxd" not in percent
    assert "1 account matching" in slash and "cxd" not in slash


def test_every_integration_is_listed_by_integration_then_user_with_its_name(
    slack, slack_api, roleup
):
    zeta = add_integration(roleup.core.sessions, "zeta", managers=[MANAGER])
    alpha = add_integration(roleup.core.sessions, "alpha", managers=[MANAGER])
    add_account(roleup.core.sessions, zeta, "aaron")
    add_account(roleup.core.sessions, alpha, "zoe", ("dev",))
    add_account(roleup.core.sessions, alpha, "bea")
    text = _text(_acked(slack.command("/accounts", "", user_id=MANAGER)))
    order = [
        text.index(f"*{name}* in {where}")
        for name, where in (("bea", "alpha"), ("zoe", "alpha"), ("aaron", "zeta"))
    ]
    assert order == sorted(order) and "3 accounts" in text and "`dev`" in text


def test_commands_do_not_ask_slack_who_the_caller_is_each_time(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice")
    for _ in range(3):
        assert "*alice*" in _text(_acked(slack.command("/accounts", "prod", user_id=MANAGER)))
    # One users.info for the caller's standing, kept for a minute (bot.slack.people).
    assert len(slack_api.calls_to("users.info")) == 1


@contextmanager
def stalled(engine, table):
    """The store stalled on `table`: its statements wait until the yielded event is set; the
    threads they ran in are noted in the yielded list."""
    release, threads = threading.Event(), []

    def slow(conn, cursor, statement, *args):
        if f" {table}" in statement:
            threads.append(threading.current_thread().name)
            release.wait(30)

    event.listen(engine, "before_cursor_execute", slow)
    try:
        yield release, threads
    finally:
        release.set()
        event.remove(engine, "before_cursor_execute", slow)


def test_a_listing_the_store_is_too_slow_for_is_posted_once_after_a_working_ack(
    slack, slack_api, roleup, monkeypatch
):
    """The ack never waits on a slow store for long: past ANSWER_WITHIN it says it is working,
    and the listing, made outside the listener threads, is posted to response_url once."""
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    expected = _acked(slack.command("/accounts", "prod", user_id=MANAGER))
    monkeypatch.setattr(commands, "ANSWER_WITHIN", 0.05)
    with stalled(roleup.core.engine, "accounts") as (release, threads):
        ack = _acked(slack.command("/accounts", "prod", user_id=MANAGER))
        assert ack == {"text": commands.WORKING, "response_type": "ephemeral"}
        assert slack_api.calls_to(RESPOND) == []
        release.set()
        assert _answer(slack_api) == expected  # the same message the ack would have carried
    # Once: the next listing, answered in its ack again, is the only thing that follows.
    assert "*alice*" in _text(_acked(slack.command("/accounts", "prod", user_id=MANAGER)))
    assert len(slack_api.calls_to(RESPOND)) == 1
    assert threads and all(name.startswith("roleup-after-ack") for name in threads)


def test_a_refusal_the_store_is_too_slow_for_is_posted_once_after_a_working_ack(
    slack, slack_api, roleup, monkeypatch
):
    add_integration(roleup.core.sessions)
    monkeypatch.setattr(commands, "ANSWER_WITHIN", 0.05)
    with stalled(roleup.core.engine, "integrations") as (release, _):
        ack = _acked(slack.command("/accounts", "prod", user_id=STRANGER))
        assert ack["text"] == commands.WORKING
        release.set()
        refusal = _answer(slack_api)
    assert "can't list accounts" in refusal["text"] and f"<@{MANAGER}>" in refusal["text"]
    assert refusal["response_type"] == "ephemeral"
    assert (
        "can't list accounts"
        in _acked(slack.command("/accounts", "prod", user_id=STRANGER))["text"]
    )
    assert len(slack_api.calls_to(RESPOND)) == 1


def test_each_listing_shows_the_store_as_another_process_left_it(
    slack, slack_api, roleup, database_url
):
    """Nothing read for a listing is kept between commands: what another instance writes
    between two of them (a new account, a manager removed) shows in the next."""
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice")
    assert "1 account" in _text(_acked(slack.command("/accounts", "prod", user_id=MANAGER)))
    other = make_engine(database_url)  # its own engine and connections, as another process
    try:
        add_account(make_sessionmaker(other), prod, "bob", ("ops",))
        second = _text(_acked(slack.command("/accounts", "prod", user_id=MANAGER)))
        assert "2 accounts" in second and "*bob*" in second and "`ops`" in second
        with make_sessionmaker(other).begin() as session:
            session.get_one(Integration, prod).managers = []
        third = _acked(slack.command("/accounts", "prod", user_id=MANAGER))["text"]
        assert "can't list accounts" in third and "bob" not in third
    finally:
        other.dispose()


def test_a_listing_read_again_unchanged_reuses_its_message_and_any_change_shows(
    slack, slack_api, roleup, database_url, monkeypatch
):
    """The message made from a page is kept for the same page read again (the store is read
    every time); whatever the store changes between two commands, in any column the listing
    shows, makes a new one."""
    made: list[str] = []
    decoded: list[str] = []
    real_build, real_rows = messages._build, listing._rows

    def counted(page, query):
        made.append(query.text_filter or "")
        return real_build(page, query)

    def rows_counted(found, names):
        decoded.append("page")
        return real_rows(found, names)

    monkeypatch.setattr(messages, "_build", counted)
    monkeypatch.setattr(listing, "_rows", rows_counted)
    messages._made.cache_clear()
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))

    def listed(words: str = "prod") -> str:
        return _text(_acked(slack.command("/accounts", words, user_id=MANAGER)))

    first = listed()
    assert listed() == first and listed() == first and len(made) == len(decoded) == 1
    assert listed("prod dev") != first and len(made) == 2  # another query, another message
    engine = make_engine(database_url)  # its own connections, as another process's
    other = make_sessionmaker(engine)
    try:
        when = datetime(2026, 11, 5, 6, 7, tzinfo=UTC)
        token = f"<!date^{int(when.timestamp())}^"
        changes = [
            (update(Account).values(slack_user_id="UALICE"), "<@UALICE>"),
            (update(Account).values(password_last_used=when), f"Last sign-in: {token}"),
            (update(Integration).values(last_sync_at=when), f"synced {token}"),
            (update(Account).values(user_name="alicia"), "*alicia*"),
        ]
        for change, shown in changes:
            with other.begin() as session:
                session.execute(change)
            assert shown in listed(), shown
        with other.begin() as session:
            session.add(
                Grant(
                    integration_id=prod,
                    user_name="alicia",
                    group_name="dev",
                    requester=ADMIN,
                    starts_at=when,
                    ends_at=when,
                )
            )
        assert "`dev` (until 2026-11-05 06:07 UTC)" in listed()
        with other.begin() as session:
            session.add(
                AccountExpiry(
                    integration_id=prod, user_name="alicia", requester=ADMIN, expires_at=when
                )
            )
        assert "expires 2026-11-05" in listed()
        add_account(other, prod, "bob", ("ops",))
        assert "*bob*" in listed() and "2 accounts" in listed()
        assert len(made) == len(decoded) == 2 + len(changes) + 3
    finally:
        engine.dispose()


def test_a_listing_after_the_database_ended_every_pooled_connection_is_answered(
    slack, slack_api, roleup, database_url
):
    """A restart, a failover or an administrator ending every session leaves the process's
    pooled connections dead: the next commands are answered as usual, on new connections (on
    PostgreSQL; SQLite has no server to end them)."""
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    for _ in range(3):  # a few connections in the pool
        assert "*alice*" in _text(_acked(slack.command("/accounts", "prod", user_id=MANAGER)))
    if roleup.core.engine.dialect.name == "postgresql":
        other = make_engine(database_url)
        try:
            with other.connect() as connection:
                ended = connection.scalar(
                    sql(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
        finally:
            other.dispose()
        assert ended >= 1
    for _ in range(3):
        answer = _acked(slack.command("/accounts", "prod", user_id=MANAGER))
        assert "*alice*" in _text(answer), answer


def test_the_same_listing_asked_again_after_a_manager_is_taken_off_shows_them_nothing(
    slack, slack_api, roleup
):
    """A listing asked again reads its integrations and the page it guesses in one statement
    (bot.services.listing.accounts_listing): who may see it is still decided from the
    integration as it is now. The ack is the message as JSON, ephemeral."""
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    first = slack.command("/accounts", "prod", user_id=MANAGER)
    assert first.headers["content-type"].startswith("application/json")
    assert _acked(first)["response_type"] == "ephemeral" and "*alice*" in _text(_acked(first))
    with roleup.core.sessions.begin() as session:
        session.execute(update(Integration).values(managers=[]))
    again = _acked(slack.command("/accounts", "prod", user_id=MANAGER))
    assert again["response_type"] == "ephemeral"
    assert "alice" not in _text(again) and "blocks" not in again, again


def test_a_listing_whose_connection_was_ended_before_its_notice_arrived_is_answered(
    slack, slack_api, roleup, database_url, monkeypatch
):
    """The server's notice that it ended a pooled connection may reach its socket after the
    checkout looked (pg_terminate_backend returns before the backend is gone): the statement
    finds it, and the listing, which only reads, is read again on a new connection."""
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    for _ in range(3):
        assert "*alice*" in _text(_acked(slack.command("/accounts", "prod", user_id=MANAGER)))
    if roleup.core.engine.dialect.name != "postgresql":
        return  # SQLite has no server to end a connection
    monkeypatch.setattr(db, "_readable", lambda fd: False)  # the checkout sees nothing yet
    ended = end_other_sessions(database_url)
    assert ended
    for _ in range(3):
        answer = _acked(slack.command("/accounts", "prod", user_id=MANAGER))
        assert "*alice*" in _text(answer), answer
