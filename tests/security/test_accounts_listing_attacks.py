"""Attacks on /accounts keeping the message it made for a page (handlers.accounts.messages):
a write the kept message's key misses, a message made for one person shown to another, a
user growing what the process keeps, a receiver changing a kept message, and the listing's
connection going back to the pool unclean. Signed requests into the live app, on both stores.

The oracle is the same listing made with nothing kept (`_made.cache_clear()`): after any
write, what a person is answered must be exactly what a listing made afresh shows."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from bot.services import listing
from bot.slack.args import MAX_FILTER
from bot.slack.blocks import MAX_BUTTON_VALUE
from handlers.accounts import messages
from handlers.accounts.command import render_accounts
from handlers.accounts.messages import AccountsQuery
from storage.models import Account, AccountExpiry, Grant, Group, Integration, Membership
from tests.support import seed
from tests.support.seed import ADMIN, MANAGER, STRANGER, add_account
from tests.support.slack_answers import RESPOND, _acked, _answer, _click, _text
from tests.support.store_writers import store_writer  # noqa: F401 (the fixture `writer`)

add_integration = partial(seed.add_integration, key=None, **seed.SYNCED)
OTHER_MANAGER = "UMANAGERB"
GUEST = "UGUEST"
WHEN = datetime(2026, 11, 5, 6, 7, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _nothing_kept_between_tests() -> Iterator[None]:
    messages._made.cache_clear()
    yield
    messages._made.cache_clear()


def listed(slack: Any, words: str, user: str = MANAGER) -> dict[str, Any]:
    return _acked(slack.command("/accounts", words, user_id=user))


def afresh(slack: Any, words: str, user: str = MANAGER) -> dict[str, Any]:
    """The listing made with nothing kept: what the store shows now."""
    messages._made.cache_clear()
    return listed(slack, words, user)


def clicked(slack: Any, slack_api: Any, button: dict[str, Any], user: str = MANAGER) -> Any:
    count = len(slack_api.calls_to(RESPOND)) + 1
    slack.interact(_click(button, user, slack_api.response_url_base + "cmd"))
    return _answer(slack_api, count)


def nav(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["text"]["text"]: b for b in message["blocks"][-1]["elements"]}


def write(sessions: sessionmaker[Session], *statements: Any) -> None:
    with sessions.begin() as session:
        for statement in statements:
            session.execute(statement)


def _account(name: str) -> Any:
    return select(Account.id).where(Account.user_name == name).scalar_subquery()


def _swap(first: str, second: str) -> list[Any]:
    return [
        update(Account).where(Account.user_name == first).values(user_name="swap-tmp"),
        update(Account).where(Account.user_name == second).values(user_name=first),
        update(Account).where(Account.user_name == "swap-tmp").values(user_name=second),
    ]


def _changes(prod: int, stage: int) -> list[tuple[str, list[Any], Callable[[str], bool]]]:
    """(what, the statements, what the listing of every integration shows after them)."""
    later = WHEN + timedelta(days=3)
    tz = timezone(timedelta(hours=2))
    return [
        (
            "alice leaves ops",
            [
                delete(Membership).where(
                    Membership.account_id == _account("alice"),
                    Membership.group_id
                    == select(Group.id).where(Group.name == "ops").scalar_subquery(),
                )
            ],
            lambda t: "*alice* in prod" in t and t.count("`ops`") == 1,
        ),
        (
            "a group renamed",
            [update(Group).where(Group.name == "ops").values(name="operators")],
            lambda t: "`operators`" in t and "`ops`" not in t,
        ),
        (
            "a grant extended",
            [update(Grant).values(ends_at=later)],
            lambda t: "`dev` (until 2026-11-08 06:07 UTC)" in t,
        ),
        (
            "a grant ended",
            [update(Grant).values(state="ended")],
            lambda t: "(until" not in t,
        ),
        (
            "an expiry removed",
            [update(AccountExpiry).values(state="ended")],
            lambda t: "expires" not in t,
        ),
        (
            "an integration renamed",
            [update(Integration).where(Integration.id == stage).values(name="staging")],
            lambda t: "in staging" in t and "in stage\n" not in t and "staging synced" in t,
        ),
        (
            "a manager removed from an integration",
            [update(Integration).where(Integration.id == stage).values(managers=[])],
            lambda t: "staging" not in t and "*sam*" not in t,
        ),
        (
            "a sync finished",
            [update(Integration).values(last_sync_at=WHEN)],
            lambda t: f"prod synced <!date^{int(WHEN.timestamp())}^" in t,
        ),
        (
            "a user unlinked",
            [update(Account).where(Account.user_name == "bob").values(slack_user_id=None)],
            lambda t: "<@UBOB>" not in t,
        ),
        ("two accounts swapped names", _swap("alice", "carol"), lambda t: "*alice*" in t),
        (
            "a sign-in a microsecond later",
            [update(Account).values(password_last_used=WHEN + timedelta(microseconds=1))],
            lambda t: f"<!date^{int(WHEN.timestamp())}^" in t,
        ),
        (
            "a sign-in written in another time zone",
            [update(Account).values(password_last_used=WHEN.astimezone(tz) + timedelta(hours=1))],
            lambda t: f"<!date^{int(WHEN.timestamp()) + 3600}^" in t and "07:07 UTC" in t,
        ),
        (
            "an account added that the filter matches",
            [insert(Account).values(integration_id=prod, user_name="oscar")],
            lambda t: "*oscar*" in t,
        ),
    ]


def test_every_write_that_changes_a_listing_shows_in_the_next_one(slack, roleup, writer):
    sessions = roleup.core.sessions
    prod = add_integration(sessions)
    stage = add_integration(sessions, "stage")
    add_account(sessions, prod, "alice", ("dev", "ops"))
    add_account(sessions, prod, "bob", ("ops",), slack_user_id="UBOB")
    add_account(sessions, prod, "carol")
    add_account(sessions, stage, "sam", ("dev",))
    grant = {"integration_id": prod, "user_name": "alice", "group_name": "dev"}
    write(
        sessions,
        insert(Grant).values(**grant, requester=ADMIN, starts_at=WHEN, ends_at=WHEN),
        insert(AccountExpiry).values(
            integration_id=prod, user_name="bob", requester=ADMIN, expires_at=WHEN
        ),
    )
    views = ["", "prod", "prod o"]
    for words in views:  # each view kept before the first write
        listed(slack, words)
    for what, statements, shows in _changes(prod, stage):
        write(writer, *statements)
        for words in views:
            answer = listed(slack, words)
            assert answer == afresh(slack, words), f"{what}: /accounts {words}"
        assert shows(_text(listed(slack, ""))), what


def test_a_page_shifting_or_its_total_changing_shows_in_the_next_one(
    slack, slack_api, roleup, writer
):
    prod = add_integration(roleup.core.sessions)
    for i in range(25):
        add_account(roleup.core.sessions, prod, f"u{i:02d}", ("g",))
    first = listed(slack, "prod")
    assert "25 accounts" in _text(first) and "page 1 of 2" in _text(first)
    next_button = nav(first)["Next"]
    second = clicked(slack, slack_api, next_button)
    assert "*u20*" in _text(second) and "*u19*" not in _text(second)
    # An account before the page: the same button now shows the page one row earlier.
    add_account(writer, prod, "a00")
    shifted = clicked(slack, slack_api, next_button)
    assert "*u19*" in _text(shifted) and "26 accounts" in _text(shifted)
    messages._made.cache_clear()
    assert clicked(slack, slack_api, next_button) == shifted
    # An account after the first page: its rows are equal, its total is not.
    add_account(writer, prod, "zz")
    again = listed(slack, "prod")
    assert "27 accounts" in _text(again) and again == afresh(slack, "prod")
    # A page that shrank away: the button shows the last page there is.
    write(writer, delete(Membership), delete(Account).where(Account.user_name != "a00"))
    shrunk = clicked(slack, slack_api, next_button)
    assert "*a00*" in _text(shrunk) and "1 account" in _text(shrunk)
    assert [b for b in nav(shrunk)] == ["Refresh"]


def test_pages_show_one_order_that_the_paging_follows_on_either_store(slack, slack_api, roleup):
    """SQLite's page comes back as one JSON value and is sorted again in Python; PostgreSQL's
    comes in the statement's order. Either way the pages, in turn, are every account once,
    in the order the paging takes them (byte order: the test PostgreSQL has no locale)."""
    prod = add_integration(roleup.core.sessions)
    names = [f"{p}{i}" for p in ("B", "a", "_x", "Z", "a.b", "a-b", "a+b", "é") for i in range(4)]
    for name in names:
        add_account(roleup.core.sessions, prod, name, ("g",))
    shown: list[str] = []
    first = listed(slack, "prod")
    for message in (first, clicked(slack, slack_api, nav(first)["Next"])):
        page = _text(message)
        shown += [
            n for _, n in sorted((page.index(f"*{n}*"), n) for n in names if f"*{n}*" in page)
        ]
    assert shown == sorted(names, key=lambda n: n.encode())
    assert listed(slack, "prod") == first  # and read again, from what is kept


def test_the_same_words_never_show_one_person_what_was_made_for_another(slack, slack_api, roleup):
    sessions = roleup.core.sessions
    prod = add_integration(sessions, managers=[MANAGER, GUEST])
    stage = add_integration(sessions, "stage", managers=[OTHER_MANAGER])
    add_account(sessions, prod, "alice", ("dev",))
    add_account(sessions, stage, "sam", ("dev",))
    for words in ("", "dev", "prod", "stage"):
        listed(slack, words, ADMIN)  # every listing kept as the admin saw it
    mine, theirs = listed(slack, "dev"), listed(slack, "dev", OTHER_MANAGER)
    assert "*alice*" in _text(mine) and "sam" not in _text(mine)
    assert "*sam*" in _text(theirs) and "alice" not in _text(theirs)
    refused = listed(slack, "stage")
    assert "can't list accounts" in refused["text"] and "sam" not in _text(refused)
    for words in ("", "dev", "prod"):
        stranger = listed(slack, words, STRANGER)
        assert "alice" not in _text(stranger) and "sam" not in _text(stranger), words
    slack_api.overrides["users.info"] = lambda call: {
        "ok": True,
        "user": {"id": call.params["user"], "is_restricted": True, "deleted": False},
    }
    for words in ("", "prod", "dev"):
        guest = _text(listed(slack, words, GUEST))
        assert "Slack guests can't use RoleUp." in guest and "alice" not in guest, words


def test_forged_button_values_stay_refused_and_bounded(slack, slack_api, roleup):
    sessions = roleup.core.sessions
    prod = add_integration(sessions)
    stage = add_integration(sessions, "stage", managers=[OTHER_MANAGER])
    add_account(sessions, prod, "alice", ("dev",))
    add_account(sessions, stage, "sam", ("dev",))
    listed(slack, "stage", ADMIN)  # the other integration's listing kept

    def forged(value: dict[str, Any]) -> Any:
        button = {"action_id": messages.NEXT, "value": json.dumps(value)}
        return clicked(slack, slack_api, button)

    refused = forged({"i": "stage", "f": None, "p": 0})
    assert "can't list accounts" in refused["text"] and "sam" not in _text(refused)
    far = forged({"i": "prod", "f": None, "p": 10**9})
    assert "*alice*" in _text(far) and "1 account" in _text(far)
    for text_filter in ("a" * (MAX_FILTER + 1), "a" * 1_990, "%" * 4_000):
        answer = forged({"i": "prod", "f": text_filter, "p": 0})
        # Read as a malformed value: the listing from its start, never the filter kept.
        assert "*alice*" in _text(answer) and "matching" not in _text(answer)
        values = [b.get("value", "") for b in nav(answer).values()]
        assert all(len(v) <= MAX_BUTTON_VALUE and text_filter not in v for v in values)


def test_wildcards_quotes_and_emoji_are_filters_of_their_own(slack, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "a_b", ("it's",))
    add_account(roleup.core.sessions, prod, "axb", ("team😀",))
    add_account(roleup.core.sessions, prod, "c%d", ('say "hi"',))
    expected = {
        "_": {"a_b"},
        "%": {"c%d"},
        '"it\'s"': {"a_b"},  # typed in quotes, as a filter holding one must be
        "'\"hi\"'": {"c%d"},
        "😀": {"axb"},
        "x": {"axb"},
    }
    for _ in range(2):  # the second time from what is kept
        for words, names in expected.items():
            shown = _text(listed(slack, f"prod {words}"))
            assert {n for n in ("a_b", "axb", "c%d") if f"*{n}*" in shown} == names, words


def test_what_is_kept_stays_bounded_whatever_is_typed(slack, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    bound = messages._made.cache_info().maxsize
    assert bound is not None
    for i in range(bound + 40):
        answer = listed(slack, f"prod {i:0{MAX_FILTER}d}")
        assert "0 accounts matching" in _text(answer)
    assert messages._made.cache_info().currsize <= bound
    # And one typed past the limit is refused, not listed.
    assert "A filter is 1 to 100 characters." in listed(slack, "x" * (MAX_FILTER + 1))["text"]
    assert "That is too long (4000 characters)." in listed(slack, "x" * 4_000)["text"]


def test_a_kept_message_keeps_no_page_of_rows(slack, roleup, monkeypatch):
    """What is kept for a listing is its key and its message: not the page it was made from
    (the rows as read, decoded, and made AccountRows), three times what the message needs."""
    prod = add_integration(roleup.core.sessions)
    for i in range(25):
        add_account(roleup.core.sessions, prod, f"u{i:02d}", tuple(f"group{g}" for g in range(10)))
    pages: list[weakref.ref[Any]] = []
    real = listing.accounts_listing

    def noted(*args: Any, **kwargs: Any) -> Any:
        page = real(*args, **kwargs)
        pages.append(weakref.ref(page))
        return page

    monkeypatch.setattr(listing, "accounts_listing", noted)
    for words in ("prod", "prod u0", "prod group1", "", "prod"):
        assert "*u0" in _text(listed(slack, words))
    gc.collect()
    assert messages._made.cache_info().currsize == 4
    assert len(pages) == 5 and [p for p in pages if p() is not None] == []


def test_a_receiver_changing_its_message_changes_no_one_elses(slack, roleup):
    """A careless receiver (a late post decorating what it posts, a future Refresh adding a
    line) edits the message it was handed: the next person is shown the listing, not that."""
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    expected = listed(slack, "prod")
    handed = render_accounts(roleup.core, MANAGER, AccountsQuery("prod"))
    handed["text"] = "edited"
    handed["blocks"][0]["text"]["text"] = "edited"
    handed["blocks"][-1]["elements"][0]["value"] = '{"i": "stage"}'
    handed["blocks"].append({"type": "section", "text": {"type": "mrkdwn", "text": "edited"}})
    assert listed(slack, "prod", ADMIN) == expected
    assert listed(slack, "prod") == expected


def test_the_listings_connections_go_back_to_the_pool_clean(slack, roleup):
    """No transaction left open (on SQLite a read left open pins the write-ahead log), and on
    PostgreSQL no autocommit leaking into the next writer: a writer's rollback still undoes."""
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    for words, user in (("prod", MANAGER), ("", MANAGER), ("prod", STRANGER), ("nope a", ADMIN)):
        listed(slack, words, user)
    engine = roleup.core.engine
    connections = [engine.connect() for _ in range(max(engine.pool.checkedin(), 1))]
    try:
        for connection in connections:
            dbapi = connection.connection.dbapi_connection
            if engine.dialect.name == "postgresql":
                assert dbapi.autocommit is False
                assert dbapi.info.transaction_status.name == "IDLE"
                isolation = connection.exec_driver_sql("SHOW transaction_isolation").scalar()
                assert isolation == "read committed"
            else:
                assert dbapi.in_transaction is False
            connection.execute(insert(Group).values(integration_id=prod, name="ghost"))
            connection.rollback()
    finally:
        for connection in connections:
            connection.close()
    with roleup.core.sessions() as session:
        assert session.scalar(select(func.count(Group.id)).where(Group.name == "ghost")) == 0
        assert session.execute(text("SELECT 1")).scalar() == 1
