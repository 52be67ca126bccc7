"""Attacks on /accounts asked again (bot.services.listing.accounts_listing's `guess`): the
integrations and filter a listing chose are kept per (who asked, what), and the next same
listing reads every integration and the guessed page in one statement, using that page only if
the integrations read with it choose exactly the same again; and on its ack, the kept message's
JSON text with `"response_type": "ephemeral"` spliced in (bot.slack.commands.read_only_command).

Signed requests into the live app, on both stores. The oracle is the same listing with nothing
kept (no guess, no kept message): after any change, what a person is answered must be exactly
what a first listing shows now. Each attack first checks that its listing was really answered
from a guess (one statement), so it attacks the guessed path and not the first reading."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.services import listing
from bot.slack import commands
from handlers.accounts import messages
from handlers.accounts.command import render_accounts_json
from handlers.accounts.messages import AccountsQuery
from storage.db import make_engine, make_sessionmaker
from storage.models import Account, Integration
from tests.support import seed
from tests.support.held_store import HeldStore
from tests.support.seed import ADMIN, APPROVER, MANAGER, STRANGER, add_account
from tests.support.slack_answers import _click, _text
from tests.support.store_writers import store_writer  # noqa: F401 (the fixture `writer`)

add_integration = partial(seed.add_integration, key=None, **seed.SYNCED)
OTHER_MANAGER = "UMANAGERB"
REFUSED = "can't list accounts"


def forget() -> None:
    """Nothing kept: no guess, no message (a first listing, as a fresh process makes it)."""
    listing._guesses = listing._Guesses(listing.GUESSES_KEPT)
    messages._made.cache_clear()


@pytest.fixture(autouse=True)
def _nothing_kept_between_tests() -> Iterator[None]:
    forget()
    yield
    forget()


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key twice in the ack: {keys}"
    return dict(pairs)


def acked(response: Any) -> dict[str, Any]:
    """The ack as Slack reads it, checked as the bytes Slack gets: JSON, one object, no key
    twice (a splice could give one twice: which one Slack takes is its own choice), ASCII."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    raw = response.content
    assert raw.isascii(), raw[:200]
    message = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    assert isinstance(message, dict) and message.get("response_type") == "ephemeral", message
    return message


_API: list[Any] = []  # this test's Slack Web API stand-in (_slack_api_of_the_test)
_URLS = itertools.count()


@pytest.fixture(autouse=True)
def _slack_api_of_the_test(slack_api: Any) -> Iterator[None]:
    _API[:] = [slack_api]
    yield
    _API.clear()


def own_url(slack: Any) -> tuple[str, str]:
    """A response_url of its own, and the stand-in's name for posts to it: a post late for
    another test's request (slow under load) never lands in this one's answers."""
    name = f"guess{next(_URLS)}"
    return str(slack.response_url_base) + name, f"response_url:/respond/{name}"


def listed(slack: Any, words: str, user: str = MANAGER) -> dict[str, Any]:
    """What the person is shown: the ack, or, acked WORKING (a slow machine), the message
    posted to the command's response_url when ready."""
    url, posts = own_url(slack)
    message = acked(slack.command("/accounts", words, user_id=user, response_url=url))
    if message.get("text") != commands.WORKING:
        return message
    (post,) = _API[0].wait_for(posts, 1)
    posted: dict[str, Any] = post.params
    return posted


def afresh(slack: Any, words: str, user: str = MANAGER) -> dict[str, Any]:
    """The listing as a first reading makes it now."""
    forget()
    return listed(slack, words, user)


@dataclasses.dataclass
class Sent:
    statements: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture
def sent(roleup: Any) -> Iterator[Sent]:
    """The statements the app's engine sends (their SQL), from now on."""
    seen = Sent()

    def executed(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.statements.append(statement)

    event.listen(roleup.core.engine, "before_cursor_execute", executed)
    yield seen
    event.remove(roleup.core.engine, "before_cursor_execute", executed)


def guessed(slack: Any, sent: Sent, words: str, user: str = MANAGER) -> dict[str, Any]:
    """The listing asked twice: the second is answered from the guess, in one statement."""
    first = listed(slack, words, user)
    assert first.get("text") != commands.WORKING, words
    for _ in range(2):
        before = len(sent.statements)
        again = listed(slack, words, user)
        assert again == first, words
        # The guesses are the process's: a render another test's app left running (a late
        # one, say) may put its own for the same key in between, costing one reread. Not
        # twice in a row.
        if REFUSED in first.get("text", "") or len(sent.statements) - before == 1:
            return again
    raise AssertionError(f"/accounts {words} not answered from its guess: {sent.statements}")


def write(sessions: sessionmaker[Session], *statements: Any) -> None:
    with sessions.begin() as session:
        for statement in statements:
            session.execute(statement)


def names(message: dict[str, Any], among: tuple[str, ...] = ("alice", "sam", "dora")) -> set[str]:
    text = _text(message)
    return {n for n in among if f"*{n}*" in text}


def two_integrations(sessions: Any) -> tuple[int, int]:
    prod = add_integration(sessions)
    stage = add_integration(sessions, "stage")
    add_account(sessions, prod, "alice", ("dev",))
    add_account(sessions, stage, "sam", ("dev",))
    return prod, stage


VIEWS = ("", "stage", "dev", "prod", "prod a", "stage s", "s")


def _named(name: str) -> Any:
    return Integration.name == name


# (what, the statements, (words, what MANAGER is shown then: names, or None for a refusal))
CHANGES: list[tuple[str, Callable[[int, int], list[Any]], list[tuple[str, set[str] | None]]]] = [
    (
        "a manager taken off one integration",
        lambda prod, stage: [update(Integration).where(_named("stage")).values(managers=[])],
        [("", {"alice"}), ("stage", None), ("stage s", None), ("s", set())],
    ),
    (
        "a manager taken off every integration",
        lambda prod, stage: [update(Integration).values(managers=[])],
        [("", None), ("prod", None), ("dev", None), ("prod a", None)],
    ),
    (
        "the manager made a Slack user group they are not in",
        lambda prod, stage: [update(Integration).values(managers=["SGROUP"])],
        [("", None), ("prod", None)],
    ),
    (
        "an integration renamed to another's old name after it was renamed away",
        lambda prod, stage: [
            update(Integration).where(_named("prod")).values(name="tmp"),
            update(Integration).where(_named("stage")).values(name="prod", managers=[]),
            update(Integration).where(_named("tmp")).values(name="stage"),
        ],
        [("prod", None), ("stage", {"alice"}), ("", {"alice"}), ("stage s", set())],
    ),
    (
        "an integration deleted",
        lambda prod, stage: [delete(Integration).where(_named("stage"))],
        # "stage" is now a filter of every integration; two words with it, a usage error.
        [("", {"alice"}), ("stage", set()), ("stage s", None)],
    ),
    (
        "a new integration named as a filter typed before",
        lambda prod, stage: [
            insert(Integration).values(
                name="dev", managers=[OTHER_MANAGER], approvers=[], created_by=ADMIN
            )
        ],
        [("dev", None), ("", {"alice", "sam"}), ("s", {"sam"})],
    ),
    (
        "the manager made an approver only",
        lambda prod, stage: [update(Integration).values(managers=[], approvers=[MANAGER])],
        [("", {"alice", "sam"}), ("stage", {"sam"})],
    ),
    (
        "accounts moved between integrations",
        lambda prod, stage: [
            update(Account).where(Account.user_name == "sam").values(integration_id=prod),
            update(Integration).where(_named("stage")).values(managers=[]),
        ],
        [("", {"alice", "sam"}), ("prod", {"alice", "sam"}), ("stage", None)],
    ),
]


@pytest.mark.parametrize("change", CHANGES, ids=[c[0] for c in CHANGES])
def test_a_change_between_two_same_listings_shows_in_the_next_one(
    slack, roleup, writer, sent, change
):
    what, statements, shown = change
    prod, stage = two_integrations(roleup.core.sessions)
    for words in VIEWS:  # each view guessed (asked twice) before the change
        guessed(slack, sent, words)
    write(writer, *statements(prod, stage))
    for words in VIEWS:
        answer = listed(slack, words)
        assert answer == afresh(slack, words), f"{what}: /accounts {words}"
        listed(slack, words)  # guessed from the first reading after the change
    for words, expected in shown:
        answer = listed(slack, words)
        if expected is None:
            assert names(answer) == set() and "blocks" not in answer, (what, words)
        else:
            assert names(answer) == expected, (what, words)


def test_a_guess_made_for_someone_else_never_shows_them_its_page(slack, slack_api, roleup, sent):
    """Two people (or two processes) sharing a key: whatever is guessed, who may see what is
    decided from the integrations as read with the page. Every guess the admin made is handed
    to everyone else's listings of the same words."""
    sessions = roleup.core.sessions
    prod = add_integration(sessions, managers=[MANAGER])
    stage = add_integration(sessions, "stage", managers=[OTHER_MANAGER])
    add_account(sessions, prod, "alice", ("dev",))
    add_account(sessions, stage, "sam", ("dev",))
    admin_saw = {words: guessed(slack, sent, words, ADMIN) for words in VIEWS}
    assert names(admin_saw[""]) == {"alice", "sam"}
    real_get = listing._guesses.get

    def anyones(key: Any) -> Any:
        _, query, words = key
        return real_get((ADMIN, query, words))

    listing._guesses.get = anyones  # type: ignore[method-assign]
    for user, sees in ((MANAGER, {"alice"}), (OTHER_MANAGER, {"sam"}), (STRANGER, set())):
        for words in VIEWS:
            answer = listed(slack, words, user)
            assert names(answer) <= sees, (user, words)
            listing._guesses.get = real_get  # type: ignore[method-assign]
            assert answer == afresh(slack, words, user), (user, words)
            listing._guesses.get = anyones  # type: ignore[method-assign]
    # And clicked: a Next/Previous carrying the admin's query, guessed from the admin's.
    for user in (MANAGER, STRANGER):
        value = AccountsQuery("stage").to_value()
        answer = clicked(slack, slack_api, {"action_id": messages.NEXT, "value": value}, user)
        assert REFUSED in answer["text"] and "sam" not in _text(answer), user


@pytest.mark.parametrize(
    "user",
    [
        {"deleted": True},
        {"is_restricted": True},
        {"is_ultra_restricted": True},
    ],
    ids=["deactivated", "guest", "single-channel guest"],
)
def test_a_slack_standing_change_between_two_same_listings_refuses_the_next(
    slack, slack_api, roleup, sent, monkeypatch, user
):
    two_integrations(roleup.core.sessions)
    monkeypatch.setattr(roleup.core.people, "ttl", 0.0)  # as a minute later
    for words in ("", "prod", "dev"):
        assert "*alice*" in _text(guessed(slack, sent, words))
    slack_api.overrides["users.info"] = lambda call: {
        "ok": True,
        "user": {"id": call.params["user"], "deleted": False, **user},
    }
    for words in ("", "prod", "dev"):
        answer = _text(listed(slack, words))
        assert "alice" not in answer and "sam" not in answer, words
    # users.info failing (nothing known of them): refused too, never the guess's page.
    slack_api.fail("users.info", "fatal_error")
    for words in ("", "dev"):
        answer = _text(listed(slack, words))
        assert "alice" not in answer, words


def test_an_admin_demoted_between_two_same_listings_sees_only_their_own(
    slack, roleup, sent, monkeypatch
):
    sessions = roleup.core.sessions
    prod = add_integration(sessions, managers=[ADMIN])
    stage = add_integration(sessions, "stage", managers=[OTHER_MANAGER])
    add_account(sessions, prod, "alice", ("dev",))
    add_account(sessions, stage, "sam", ("dev",))
    for words in ("", "stage", "dev"):
        guessed(slack, sent, words, ADMIN)
    assert names(listed(slack, "", ADMIN)) == {"alice", "sam"}
    demoted = dataclasses.replace(roleup.core.settings, admins=frozenset())
    monkeypatch.setattr(roleup.core, "settings", demoted)
    assert names(listed(slack, "", ADMIN)) == {"alice"}
    assert names(listed(slack, "dev", ADMIN)) == {"alice"}
    stage_answer = listed(slack, "stage", ADMIN)
    assert REFUSED in stage_answer["text"] and "sam" not in _text(stage_answer)


def test_an_integration_deleted_and_made_again_under_its_id_is_decided_as_it_is_now(
    slack, roleup, writer, sent
):
    """SQLite gives a deleted last row's id to the next one: a guess's ids then name the new
    integration, whose managers decide, and whose accounts are shown."""
    sessions = roleup.core.sessions
    add_integration(sessions, "stage")
    prod = add_integration(sessions)
    add_account(sessions, prod, "alice", ("dev",))
    for words in ("prod", "", "dev", "prod a"):
        guessed(slack, sent, words)
    write(writer, delete(Integration).where(Integration.id == prod))
    again = add_integration(writer, "prod", managers=[OTHER_MANAGER])
    add_account(writer, again, "dora", ("dev",))
    for words in ("prod", "prod a"):
        answer = listed(slack, words)
        assert REFUSED in answer["text"] and "dora" not in _text(answer), words
        assert "alice" not in _text(answer)
    for words in ("prod", "", "dev", "prod a"):
        assert listed(slack, words) == afresh(slack, words), words
    assert names(listed(slack, "prod", OTHER_MANAGER)) == {"dora"}
    assert names(listed(slack, "prod", OTHER_MANAGER)) == {"dora"}


def nav(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["text"]["text"]: b for b in message["blocks"][-1]["elements"]}


def clicked(slack: Any, slack_api: Any, button: dict[str, Any], user: str = MANAGER) -> Any:
    url, posts = own_url(slack)
    slack.interact(_click(button, user, url))
    (post,) = slack_api.wait_for(posts, 1)
    return post.params


def test_pages_past_the_end_and_a_shrinking_listing_show_what_there_is(
    slack, slack_api, roleup, writer, sent
):
    prod = add_integration(roleup.core.sessions)
    for i in range(45):
        add_account(roleup.core.sessions, prod, f"u{i:02d}", ("g",))
    first = guessed(slack, sent, "prod")
    assert "page 1 of 3" in _text(first)
    second = clicked(slack, slack_api, nav(first)["Next"])
    third_button = nav(second)["Next"]
    third = clicked(slack, slack_api, third_button)
    before = len(sent.statements)
    assert clicked(slack, slack_api, third_button) == third  # guessed: one statement
    assert len(sent.statements) - before == 1
    assert "*u40*" in _text(third) and "page 3 of 3" in _text(third)
    # The listing shrinks under the guessed page: the last page there is, as a first reading.
    write(writer, delete(Account).where(Account.user_name >= "u25"))
    shrunk = clicked(slack, slack_api, third_button)
    assert (
        "*u20*" in _text(shrunk) and "page 2 of 2" in _text(shrunk) and "*u40*" not in _text(shrunk)
    )
    forget()
    assert clicked(slack, slack_api, third_button) == shrunk
    # Then to nothing at all, and a page far past any end, forged.
    write(writer, delete(Account))
    empty = clicked(slack, slack_api, third_button)
    assert "0 accounts" in _text(empty) and "No accounts to show" in _text(empty)
    assert list(nav(empty)) == ["Refresh"]
    far = {"action_id": messages.NEXT, "value": json.dumps({"i": "prod", "f": None, "p": 10**9})}
    for _ in range(2):
        assert "0 accounts" in _text(clicked(slack, slack_api, far))
    add_account(writer, prod, "zed")
    grown = clicked(slack, slack_api, far)
    assert "*zed*" in _text(grown) and "1 account" in _text(grown)


HOSTILE_INTEGRATIONS = (
    'q"uote',
    "back\\slash",
    "x\\u0022y",
    "é-ünï",
    "line\u2028sep",
    "tab\tname",
    "</script>",
    "*bold*&<@U1>",
    "😀" * 16,
    "n" * 64,
)
HOSTILE_ACCOUNTS = ('a"b', "c\\d", "e}f", '{"response_type": "in_channel"}'[:64], "g\u0000h")


def _typed(word: str) -> str:
    """A word as typed so /accounts reads it back whole (tests.support: tokenize's quoting)."""
    if re.fullmatch(r"[^\s\"']+", word):
        return word
    return f"'{word}'" if "'" not in word else f'"{word}"'


def test_hostile_names_and_filters_ack_as_one_valid_ephemeral_object(slack, roleup, sent):
    """Integration, account and group names and filters with quotes, backslashes, escapes
    written out, unicode, separators, NUL, markup, and at their columns' length: the ack is one
    JSON object with each key once, ephemeral, the very message a first reading makes, and
    the message the render made (nothing lost or added by the splice)."""
    sessions = roleup.core.sessions
    dialect = roleup.core.engine.dialect.name
    created = []
    for name in HOSTILE_INTEGRATIONS:
        integration = add_integration(sessions, name)
        created.append(name)
        for account in HOSTILE_ACCOUNTS:
            if "\u0000" in account and dialect == "postgresql":
                continue  # PostgreSQL text holds no NUL
            add_account(sessions, integration, account, ('gr"p\\', "ünï", "}" * 128))
    words = [""] + [_typed(n) for n in created]
    words += [f"{_typed(created[0])} {_typed(f)}" for f in ('"', "\\", "}", "ü", "%", "_")]
    words += [_typed(f) for f in ('"response_type"', "\\u0022", "}{", "😀")]
    for typed in words:
        first = guessed(slack, sent, typed, ADMIN)
        assert set(first) == {"response_type", "text", "blocks"}, typed
        assert first == afresh(slack, typed, ADMIN), typed
        listed(slack, typed, ADMIN)  # guessed again, from the first reading
    # The spliced ack is the render's message plus the response type, and nothing else.
    render = render_accounts_json(roleup.core, ADMIN, AccountsQuery(), _args(_typed(created[0])))
    assert listed(slack, _typed(created[0]), ADMIN) == {
        **json.loads(render),
        "response_type": "ephemeral",
    }


def _args(text: str) -> Any:
    from bot.slack.args import parse_accounts

    return parse_accounts(text)


def test_what_is_guessed_stays_bounded_whatever_is_typed(slack, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    bound = listing.GUESSES_KEPT
    for i in range(bound + 30):
        assert "0 accounts matching" in _text(listed(slack, f"prod {i:0100d}"))
    assert len(listing._guesses._chosen) <= bound
    # Forgotten first, the oldest: it is read as a first listing is, and answered the same.
    oldest = f"prod {0:0100d}"
    assert listing._guesses.get((MANAGER, AccountsQuery(), _args(oldest))) is None
    assert "0 accounts matching" in _text(listed(slack, oldest))


def test_same_listings_racing_a_permission_flip_show_one_integration_whole(
    slack, roleup, database_url
):
    """One writer moves the manager from prod to stage and back, each time in one transaction,
    while three threads list every integration again and again (guessed, re-chosen, guessed):
    every answer is one integration, whole (its accounts and its own sync line), never both,
    never the other's accounts under its name; and after the last write the next listing
    shows where it ended."""
    sessions = roleup.core.sessions
    prod = add_integration(sessions, managers=[MANAGER])
    stage = add_integration(sessions, "stage", managers=[])
    for i in range(3):
        add_account(sessions, prod, f"alice{i}", ("dev",))
        add_account(sessions, stage, f"sam{i}", ("dev",))
    other = make_engine(database_url)
    writes = make_sessionmaker(other)
    stop = threading.Event()
    failures: list[str] = []
    seen: set[str] = set()

    def keep_listing() -> None:
        while not stop.is_set():
            try:
                # Its own response_url: a listing late under load (WORKING) is posted there,
                # never to a later test's.
                url = str(slack.response_url_base) + "race"
                answer = acked(slack.command("/accounts", "", user_id=MANAGER, response_url=url))
            except Exception as exc:
                failures.append(repr(exc))
                return
            if answer.get("text") == commands.WORKING:
                continue
            text = _text(answer)
            ours = {n for n in ("alice", "sam") if f"*{n}" in text}
            syncs = {n for n in ("prod", "stage") if f"{n} synced" in text}
            if ours == {"alice"} and syncs == {"prod"} and "3 accounts" in text:
                seen.add("prod")
            elif ours == {"sam"} and syncs == {"stage"} and "3 accounts" in text:
                seen.add("stage")
            else:
                failures.append(text)

    threads = [threading.Thread(target=keep_listing) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for i in range(40):
            mine, theirs = (stage, prod) if i % 2 == 0 else (prod, stage)
            write(
                writes,
                update(Integration).where(Integration.id == mine).values(managers=[MANAGER]),
                update(Integration).where(Integration.id == theirs).values(managers=[]),
            )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        other.dispose()
    assert failures == [], failures[:3]
    assert seen, "no listing answered"
    final = listed(slack, "")
    assert names(final, ("alice0", "sam0")) == {"alice0"} and final == afresh(slack, "")


def test_a_guessed_listing_answered_late_is_decided_from_the_store_as_it_then_is(
    slack, slack_api, roleup, writer, sent, monkeypatch
):
    """The store stalls under the guessed statement: the ack says WORKING; the manager is taken
    off meanwhile; the answer posted to response_url, once, is the refusal, never the guess's
    page. Then the same once more with nothing changed: the listing a first reading makes."""
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    expected = guessed(slack, sent, "prod")
    monkeypatch.setattr(commands, "ANSWER_WITHIN", 0.05)

    def late(url: str) -> Any:
        """A late listing's ack, posting to its own response_url (a late post of an earlier
        test's, to another, is not taken for it)."""
        url = str(slack.response_url_base) + url
        return acked(slack.command("/accounts", "prod", user_id=MANAGER, response_url=url))

    with HeldStore(roleup.core.engine, "FROM accounts") as held:
        assert late("late1") == {"text": commands.WORKING, "response_type": "ephemeral"}
        assert held.arrived.wait(10)
        write(writer, update(Integration).values(managers=[]))
    (posted,) = [c.params for c in slack_api.wait_for("response_url:/respond/late1", 1)]
    assert REFUSED in posted["text"] and "alice" not in _text(posted), posted
    assert posted["response_type"] == "ephemeral"
    write(writer, update(Integration).values(managers=[MANAGER]))
    guessed(slack, sent, "prod")
    with HeldStore(roleup.core.engine, "FROM accounts") as held:
        assert late("late2")["text"] == commands.WORKING
        assert held.arrived.wait(10)
    (answer,) = [c.params for c in slack_api.wait_for("response_url:/respond/late2", 1)]
    assert answer == expected
    assert len(slack_api.calls_to("response_url:/respond/late1")) == 1


def test_a_stranger_asking_the_managers_words_learns_nothing_and_changes_nothing(
    slack, roleup, sent
):
    """A stranger's listings of the same words neither see the manager's guessed page nor
    disturb what the manager is answered, in one statement, as before."""
    two_integrations(roleup.core.sessions)
    mine = {words: guessed(slack, sent, words) for words in VIEWS}
    for words in VIEWS:
        for _ in range(2):
            answer = listed(slack, words, STRANGER)
            assert "alice" not in _text(answer) and "sam" not in _text(answer), words
        before = len(sent.statements)
        assert listed(slack, words) == mine[words], words
        assert len(sent.statements) - before == 1, words
    kept = list(listing._guesses._chosen)
    assert not [key for key in kept if key[0] == STRANGER]  # a refusal keeps no guess
    approver = {words: listed(slack, words, APPROVER) for words in VIEWS}
    assert names(approver[""]) == {"alice", "sam"} and names(approver["prod a"]) == {"alice"}


def test_a_slack_retry_of_a_guessed_listing_is_answered_again_as_the_store_now_is(
    slack, roleup, writer, sent
):
    """A retry of /accounts (read-only: no delivery key) is answered again, from the guess, in
    one statement; after a manager is taken off, the retry of the same command is refused."""
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    two_integrations(roleup.core.sessions)
    first = guessed(slack, sent, "prod")
    before = len(sent.statements)
    assert acked(slack.command("/accounts", "prod", user_id=MANAGER, headers=retry)) == first
    assert len(sent.statements) - before == 1
    write(writer, update(Integration).values(managers=[]))
    refused = acked(slack.command("/accounts", "prod", user_id=MANAGER, headers=retry))
    assert REFUSED in refused["text"] and names(refused) == set()


def _json_ack(response: Any) -> dict[str, Any]:
    """An ack as Slack reads it (any charset the header names), each key once."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    message = json.loads(response.content, object_pairs_hook=_no_duplicate_keys)
    assert isinstance(message, dict), message
    return message


PROBED = {
    "kept": json.dumps({"text": "t", "blocks": [{"type": "divider"}]}),
    "unicode as is": json.dumps(
        {"text": 'é😀\u2028"}', "blocks": [{"type": "divider"}]}, ensure_ascii=False
    ),
    "indented": json.dumps({"text": "t", "blocks": [{"type": "divider"}]}, indent=2),
    "empty": "{}",
    "empty, spaced": "{ }",
    "a space before": ' {"text": "t"}',
    "its own response type last": json.dumps({"text": "t", "response_type": "in_channel"}),
    "its own response type first": json.dumps({"response_type": "in_channel", "text": "t"}),
}


@pytest.mark.parametrize("name", list(PROBED))
def test_any_message_kept_as_json_acks_as_one_ephemeral_object_holding_it(slack, roleup, name):
    """MessageJson's contract is "a message as its JSON text, an object": whatever object text
    a read-only command's render hands over (a future one, another formatting of it), its ack
    is valid JSON, each key once, the message's keys as they were, and ephemeral; never a
    broken ack, nor the message's own response type (a listing shown to the whole channel)."""
    text = PROBED[name]
    commands.read_only_command(
        roleup.bolt,
        "/probe",
        str,
        "/probe",
        lambda command, parsed: commands.MessageJson(text),
        pool=roleup.core.after_ack,
    )
    answer = _json_ack(slack.command("/probe", name, user_id=MANAGER))
    assert answer["response_type"] == "ephemeral", answer
    decoded = json.loads(text)
    assert {k: answer[k] for k in decoded if k != "response_type"} == {
        k: v for k, v in decoded.items() if k != "response_type"
    }


@pytest.mark.parametrize("name", list(PROBED))
def test_any_message_kept_as_json_answered_late_is_posted_once_ephemeral_holding_it(
    slack, slack_api, roleup, monkeypatch, name
):
    """The same, when the render is later than the ack: the ack says WORKING, and the message
    posted to response_url once is ephemeral with the message's keys, never a failure line nor
    the message's own response type."""
    text = PROBED[name]
    monkeypatch.setattr(commands, "ANSWER_WITHIN", 0.05)
    go = threading.Event()

    def render(command: Any, parsed: Any) -> commands.MessageJson:
        go.wait(10)
        return commands.MessageJson(text)

    commands.read_only_command(
        roleup.bolt, "/probe", str, "/probe", render, pool=roleup.core.after_ack
    )
    url = str(slack.response_url_base) + "probe"
    ack = _json_ack(slack.command("/probe", name, user_id=MANAGER, response_url=url))
    assert ack == {"text": commands.WORKING, "response_type": "ephemeral"}
    go.set()
    (posted,) = [c.params for c in slack_api.wait_for("response_url:/respond/probe", 1)]
    assert posted["response_type"] == "ephemeral", posted
    decoded = json.loads(text)
    assert {k: posted.get(k) for k in decoded if k != "response_type"} == {
        k: v for k, v in decoded.items() if k != "response_type"
    }, posted


def test_random_writes_between_guessed_listings_never_part_from_a_first_reading(
    slack, roleup, writer, sent
):
    """A seeded walk of writes (managers and approvers given and taken, integrations renamed
    onto each other's and the filters' words, deleted and added, accounts added and removed,
    syncs), with every person's every view listed after each from its guess: each answer is
    the one a first reading makes, with nothing kept, at that moment."""
    import random

    rng = random.Random(13)
    sessions = roleup.core.sessions
    words_pool = ["prod", "stage", "dev", "a", "s"]
    people = (MANAGER, OTHER_MANAGER, STRANGER, ADMIN)
    views = ("", "prod", "stage", "dev", "a", "prod a", "dev s", "s")
    for name in ("prod", "stage"):
        integration = add_integration(sessions, name, managers=[MANAGER])
        add_account(sessions, integration, f"{name[0]}ally", ("dev",))

    def ids() -> list[int]:
        with sessions() as session:
            return list(session.scalars(select(Integration.id).order_by(Integration.id)))

    def oracle(words: str, user: str) -> dict[str, Any]:
        kept = listing._guesses
        listing._guesses = listing._Guesses(listing.GUESSES_KEPT)
        messages._made.cache_clear()
        try:
            return listed(slack, words, user)
        finally:
            listing._guesses = kept

    def step() -> list[Any]:
        present = ids()
        target = rng.choice(present)
        which = Integration.id == target
        choice = rng.randrange(8)
        if choice == 0:
            return [update(Integration).where(which).values(managers=rng.choice(MANAGERS))]
        if choice == 1:
            return [update(Integration).where(which).values(approvers=rng.choice(MANAGERS))]
        if choice == 2:
            taken = set(_names())
            free = [w for w in words_pool if w not in taken]
            return [update(Integration).where(which).values(name=rng.choice(free))] if free else []
        if choice == 3 and len(present) > 1:
            return [delete(Integration).where(which)]
        if choice == 4:
            taken = set(_names())
            free = [w for w in words_pool if w not in taken]
            if free:
                return [
                    insert(Integration).values(
                        name=rng.choice(free),
                        managers=rng.choice(MANAGERS),
                        approvers=[],
                        created_by=ADMIN,
                    )
                ]
            return []
        if choice == 5:
            name = rng.choice(["sally", "adam", "dora", "zed"]) + str(rng.randrange(3))
            return [insert(Account).values(integration_id=target, user_name=name)]
        if choice == 6:
            return [delete(Account).where(Account.integration_id == target)]
        return [update(Integration).where(which).values(last_sync_at=None)]

    def _names() -> list[str]:
        with sessions() as session:
            return list(session.scalars(select(Integration.name)))

    for user in people:
        for words in views:
            listed(slack, words, user)
    hits = 0
    for i in range(25):
        statements = step()
        try:
            write(writer, *statements)
        except Exception:  # noqa: S112 (a walk's write the store refuses: a name taken, say)
            continue
        for user in people:
            for words in views:
                before = len(sent.statements)
                answer = listed(slack, words, user)
                hits += len(sent.statements) - before == 1 and "blocks" in answer
                assert answer == oracle(words, user), (i, statements, user, words)
    assert hits > 100  # answered from a guess, in one statement


MANAGERS = [[MANAGER], [OTHER_MANAGER], [], [MANAGER, OTHER_MANAGER], ["SGROUP"]]


def test_a_guessed_listing_over_socket_mode_is_the_message_as_over_http(slack, roleup, sent):
    """`roleup socket` sends the ack through Bolt's Socket Mode adapter, which decodes a JSON
    body by its content type: the spliced text reaches Slack as the same ephemeral message
    the HTTP ack is, guessed or not, and a refusal after a change as a refusal."""
    import logging
    import time
    from urllib.parse import parse_qsl

    from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
    from slack_sdk.socket_mode.request import SocketModeRequest

    from tests.support.signing import command_body

    two_integrations(roleup.core.sessions)

    class Client:
        logger = logging.getLogger("socket-mode-stand-in")

        def __init__(self) -> None:
            self.sent: list[Any] = []

        def send_socket_mode_response(self, response: Any) -> None:
            self.sent.append(response)

    def over_socket(words: str) -> dict[str, Any]:
        payload = dict(parse_qsl(command_body("/accounts", words, user_id=MANAGER)))
        request = SocketModeRequest(type="slash_commands", envelope_id="e1", payload=payload)
        client = Client()
        send_response(client, request, run_bolt_app(roleup.bolt, request), time.time())
        (response,) = client.sent
        answer: dict[str, Any] = response.payload
        return answer

    for words in ("prod", "", "s"):
        over_http = guessed(slack, sent, words)
        before = len(sent.statements)
        assert over_socket(words) == over_http, words
        assert len(sent.statements) - before == 1
    with roleup.core.sessions.begin() as session:
        session.execute(update(Integration).where(_named("stage")).values(managers=[]))
    assert names(over_socket("")) == {"alice"}
    refused = over_socket("stage s")
    assert REFUSED in refused["text"] and refused["response_type"] == "ephemeral"
