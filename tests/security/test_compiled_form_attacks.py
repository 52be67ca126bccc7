"""Attacks on /accounts finding its statements' compiled forms by identity
(storage.db.CompiledByIdentity, bot.services.listing._ONCE) and counting with count(*).

A wrong compiled form would show a manager another integration's accounts, the wrong page or a
wrong total. The oracle is computed in Python from what each test wrote (the accounts of the
integrations chosen, filtered as /accounts filters, in its order, cut into its pages), and a
reading with no compiled cache at all (every statement compiled anew) must agree with it too.
On both stores; the signed requests go through the live app."""

from __future__ import annotations

import gc
import itertools
import random
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, func, literal, select
from sqlalchemy.orm import sessionmaker

from bot.services import listing
from bot.services.records import IntegrationInfo
from bot.slack import commands
from handlers.accounts import messages
from storage.db import CompiledByIdentity, make_engine, make_sessionmaker
from storage.models import Account, Base, Group, Membership
from tests.support import seed
from tests.support.seed import MANAGER, STRANGER
from tests.support.slack_answers import _acked, _click, _text

add_integration = partial(seed.add_integration, key=None, **seed.SYNCED)
OTHER_MANAGER = "UMANAGERB"
PAGE = listing.PAGE_SIZE

# name -> groups, per integration: several pages, shared names across integrations, accounts
# in no group, in several, and a group with a LIKE wildcard in its name.
Data = dict[str, dict[str, tuple[str, ...]]]


def _groups(i: int) -> tuple[str, ...]:
    return tuple(g for g, every in (("ops", 3), ("dev_team", 5), ("admins", 7)) if i % every == 0)


DATA: Data = {
    "alpha": {f"a{i:02d}": _groups(i) for i in range(45)},
    "beta": {**{f"b{i:02d}": _groups(i + 1) for i in range(27)}, "a01": ("ops",), "a44": ()},
    "gamma": {"g0": ("ops", "devXteam"), "g1": (), "a10": ("admins",)},
}


def store(sessions: sessionmaker[Any], data: Data, **columns: Any) -> dict[str, int]:
    """The integrations and their accounts and groups, straight into the store."""
    ids = {}
    for name, accounts in data.items():
        integration = ids[name] = add_integration(sessions, name, **columns.get(name, {}))
        with sessions.begin() as session:
            groups = {
                g: Group(integration_id=integration, name=g) for a in accounts.values() for g in a
            }
            session.add_all(groups.values())
            for user, of in accounts.items():
                account = Account(
                    integration_id=integration,
                    user_name=user,
                    password_last_used=datetime(2026, 1, 1, tzinfo=UTC),
                )
                session.add(account)
                session.flush()
                session.add_all(
                    Membership(account_id=account.id, group_id=groups[g].id) for g in of
                )
    return ids


Shown = tuple[int, int, int, list[tuple[str, str, list[str]]]]


def oracle(data: Data, chosen: Sequence[str], text_filter: str | None, page: int) -> Shown:
    """What /accounts shows of `chosen` (integration names, in the order the listing is given
    them): (page, pages, total, rows), computed from what was written."""
    f = (text_filter or "").lower()
    found = [
        (name, user, sorted(groups))
        for name in chosen
        for user, groups in data[name].items()
        if f in user.lower() or any(f in g.lower() for g in groups)
    ]
    several = len(chosen) > 1
    found.sort(key=lambda row: (row[0] if several else "", row[1]))
    total = len(found)
    pages = max((total + PAGE - 1) // PAGE, 1)
    page = min(max(page, 0), pages - 1)
    return page, pages, total, found[page * PAGE : (page + 1) * PAGE]


def shown(page: listing.AccountsPage) -> Shown:
    rows = [(r.integration, r.user_name, sorted(r.groups)) for r in page.rows]
    return page.page, page.pages, page.total, rows


def records(engine: Engine) -> dict[str, IntegrationInfo]:
    with engine.connect() as connection:
        return {i.name: i for i in listing.integration_records(connection)}


def page_of(
    engine: Engine, chosen: Sequence[str], text_filter: str | None, page: int, **options: Any
) -> Shown:
    infos = records(engine)
    with engine.connect() as connection:
        if options:
            connection = connection.execution_options(**options)
        return shown(
            listing.accounts_page(
                connection, [infos[n] for n in chosen], text_filter=text_filter, page=page
            )
        )


def of_session(core: Any, chosen: Sequence[str], text_filter: str | None, page: int) -> Shown:
    infos = records(core.engine)
    return shown(
        listing.accounts_of(core, [infos[n] for n in chosen], text_filter=text_filter, page=page)
    )


def guessed(core: Any, shape: tuple[Any, ...], guess: Any) -> Shown:
    """accounts_listing choosing the shape's integrations and filter, asked with `guess`."""
    chosen, text_filter, page = shape

    def choose(every: list[IntegrationInfo]) -> Any:
        named = {i.name: i for i in every}
        return [named[n] for n in chosen], text_filter

    return shown(listing.accounts_listing(core, choose, page=page, guess=guess))


def built_anew() -> None:
    """The listing's statements built again, as in a fresh process: new cache key objects,
    each memoized by whichever execution first asks for it."""
    for built in (
        listing._statements,
        listing._in_one_row,
        listing._with_integrations,
        listing._integrations_in_one_row,
        listing._integration_record_columns,
    ):
        built.cache_clear()


CHOICES: list[tuple[str, ...]] = [
    ("alpha",),
    ("alpha", "beta"),
    ("beta",),
    ("alpha", "beta", "gamma"),
    ("gamma",),
    ("beta", "gamma"),
    ("gamma", "alpha"),
]
FILTERS: list[str | None] = [None, "ops", "A1", "_", "x", "zzz", "a4"]
PAGES = [0, 1, 2, 3, 9]
SHAPES = list(itertools.product(CHOICES, FILTERS, PAGES))


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> CompiledByIdentity:
    """A compiled cache of this test's own, as a fresh process starts with."""
    cache = CompiledByIdentity()
    monkeypatch.setattr(listing, "_ONCE", {"compiled_cache": cache})
    return cache


def uncached(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Within it, every statement of the listing is compiled anew (no compiled cache)."""

    class Uncached:
        def __enter__(self) -> None:
            self.kept = listing._ONCE
            monkeypatch.setattr(listing, "_ONCE", {"compiled_cache": None})

        def __exit__(self, *_: Any) -> None:
            monkeypatch.setattr(listing, "_ONCE", self.kept)

    return Uncached()


def churn(engine: Engine, n: int) -> None:
    """Statements NOT built once, passed with the listing's options: each a new cache key,
    so the cache fills to its bound and is emptied (and each must still read its own)."""
    with engine.connect() as connection:
        for i in range(n):
            # Of several shapes, so a form compiled for another would read other columns.
            values = [random.randrange(10**6) for _ in range(i % 4 + 1)]
            statement = select(*(literal(v) + k for k, v in enumerate(values)))
            got = connection.execute(statement, execution_options=listing._ONCE).one()
            assert list(got) == [v + k for k, v in enumerate(values)]
            del statement


def test_every_shape_of_the_listing_reads_what_was_written(core, fresh_cache, monkeypatch):
    """Each shape (one integration or several, an IN list growing and shrinking between
    executions, filtered or not, pages within and past the end) read in an order that puts
    each statement to use with other parameters between, against the oracle and an uncached
    reading; then all again with the cache emptied by unrelated statements between them."""
    store(core.sessions, DATA)
    order = SHAPES[:]
    random.Random(14).shuffle(order)
    with uncached(monkeypatch):
        plain = {shape: page_of(core.engine, *shape) for shape in SHAPES}
    for round_ in range(2):
        for n, shape in enumerate(order):
            expected = oracle(DATA, *shape)
            assert plain[shape] == expected, shape
            assert page_of(core.engine, *shape) == expected, (round_, shape)
            if n % 5 == 0:  # through an ORM session's connection (listing.accounts_of)
                assert of_session(core, *shape) == expected, (round_, shape)
            if round_ and n % 17 == 0:
                churn(core.engine, CompiledByIdentity.KEPT // 3)
    assert 0 < len(fresh_cache) <= CompiledByIdentity.KEPT


def test_the_guessed_listing_reads_what_was_written(core, fresh_cache, monkeypatch):
    """accounts_listing with and without a guess (the guessed page read with every
    integration in one statement), each key asked three times, interleaved."""
    store(core.sessions, DATA)
    monkeypatch.setattr(listing, "_guesses", listing._Guesses(listing.GUESSES_KEPT))

    listed = partial(guessed, core)
    shapes = SHAPES[::3]
    for round_ in range(3):
        for n, shape in enumerate(shapes):
            expected = oracle(DATA, *shape)
            assert listed(shape, shape) == expected, (round_, shape)
            assert listed(shape, None) == expected, (round_, shape)
            # Another key guessed from a different shape: its page must not be this one's.
            other = shapes[(n + 1) % len(shapes)]
            assert listed(other, ("other", shape)) == oracle(DATA, *other), (round_, other)
        if round_ < 2:
            churn(core.engine, CompiledByIdentity.KEPT + 1)
    # The guessed path's own statement was among those executed (and found by identity).
    dialect = core.engine.dialect.name
    assert compiled_statements(fresh_cache) & {
        id(listing._with_integrations(several, filtered, dialect))
        for several, filtered in itertools.product((False, True), repeat=2)
    }


def compiled_statements(cache: CompiledByIdentity) -> set[int]:
    """The ids of the statements `cache` holds a compiled form of."""
    return {id(compiled.statement) for _, compiled in cache._compiled.values()}


def test_count_star_counts_what_count_of_ids_counts(core):
    """The count (run for a page past the end) and the total beside each page, against
    count(accounts.id) built from the same statement and the oracle: accounts in no group or
    in several matching groups are each counted once."""
    ids = store(core.sessions, DATA)
    for several, filtered in itertools.product((False, True), repeat=2):
        count, _ = listing._statements(several, filtered)
        by_ids = count.with_only_columns(func.count(Account.id))
        assert "count(*)" in str(count).lower() and "count(*)" not in str(by_ids).lower()
        for chosen in CHOICES:
            if (len(chosen) > 1) != several:
                continue
            for text_filter in FILTERS if filtered else [None]:
                if filtered and not text_filter:
                    continue
                params = listing._page_params([ids[n] for n in chosen], text_filter)
                with core.engine.connect() as connection:
                    star = connection.scalar(count, params, execution_options=listing._ONCE)
                    of_ids = connection.scalar(by_ids, params)
                total = oracle(DATA, chosen, text_filter, 0)[2]
                assert star == of_ids == total, (chosen, text_filter)


def test_two_stores_in_one_process_each_read_their_own(core, tmp_path, fresh_cache):
    """The run's store, a second engine on it (another dialect object, the same SQL), and
    another SQLite database (on the PostgreSQL run, two dialects compiling differently),
    the same integration names (and ids) in both stores with other accounts; the other
    engine disposed and made again between listings of all three (a new dialect, possibly
    where the old one was), every other time with the named parameter style, whose SQL is
    not the default's (`:id`, not `?`). Each store's listing is its own."""
    store(core.sessions, DATA)
    other_data: Data = {
        "alpha": {f"o{i:02d}": ("ops",) if i % 2 else () for i in range(23)},
        "beta": {"ob": ("dev_team",)},
        "gamma": {},
    }
    path = tmp_path / "other.db"
    other = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(other)
    store(make_sessionmaker(other), other_data)
    same = make_engine(core.engine.url.render_as_string(hide_password=False))
    assert same.dialect is not core.engine.dialect
    shapes = SHAPES[::2]
    try:
        for round_ in range(4):
            for shape in shapes:
                assert page_of(core.engine, *shape) == oracle(DATA, *shape), (round_, shape)
                assert page_of(other, *shape) == oracle(other_data, *shape), (round_, shape)
                assert page_of(same, *shape) == oracle(DATA, *shape), (round_, shape)
            other.dispose()
            del other
            gc.collect()
            if round_ % 2:
                churn(core.engine, CompiledByIdentity.KEPT)  # the old dialect's forms dropped
                gc.collect()
            style = {"paramstyle": "named"} if round_ % 2 == 0 else {}
            other = make_engine(f"sqlite:///{path}", **style)
    finally:
        other.dispose()
        same.dispose()


def test_many_threads_listing_while_the_cache_is_filled_and_emptied(core, fresh_cache, monkeypatch):
    """Listings of every shape in six threads at once (guessed or not), on statements built
    anew so the threads race to memoize their cache keys, while a seventh fills the cache
    past its bound (emptying it) with statements not built once: every answer is the
    oracle's."""
    store(core.sessions, DATA)
    monkeypatch.setattr(listing, "_guesses", listing._Guesses(listing.GUESSES_KEPT))
    built_anew()
    wrong: list[Any] = []
    done = threading.Event()
    start = threading.Barrier(7)

    def lister(seed_: int) -> None:
        rng = random.Random(seed_)
        start.wait()
        try:
            for _ in range(25):
                shape = rng.choice(SHAPES)
                if rng.random() < 0.5:
                    got = page_of(core.engine, *shape)
                else:  # a key some other thread may have guessed another shape for
                    got = guessed(core, shape, rng.randrange(4))
                if got != oracle(DATA, *shape):
                    wrong.append((shape, got))
        except Exception as exc:  # reported below, as a wrong answer
            wrong.append(exc)

    def emptier() -> None:
        start.wait()
        while not done.is_set():
            churn(core.engine, 8)

    threads = [threading.Thread(target=lister, args=(n,)) for n in range(6)]
    churner = threading.Thread(target=emptier)
    for thread in [*threads, churner]:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    churner.join(60)
    assert not any(t.is_alive() for t in [*threads, churner])
    assert wrong == []


def test_compile_time_options_that_keep_the_cache_key_object(core, fresh_cache):
    """Executions of the same statement objects whose compiled form would differ while its
    cache key object stays the same: a schema_translate_map on the connection and none,
    alternating, and parameters with an unused extra key (other column keys)."""
    store(core.sessions, DATA)
    schema = "main" if core.engine.dialect.name == "sqlite" else "public"
    for round_ in range(2):
        for shape in SHAPES[::4]:
            expected = oracle(DATA, *shape)
            translated = page_of(core.engine, *shape, schema_translate_map={None: schema})
            assert translated == expected, (round_, shape)
            assert page_of(core.engine, *shape) == expected, (round_, shape)
    ids = {i.name: i.id for i in records(core.engine).values()}
    count, _ = listing._statements(False, False)
    with core.engine.connect() as connection:
        for name in DATA:
            for extra in ({}, {"unused": 1}, {"size": 3}):
                params = {**listing._page_params([ids[name]], None), **extra}
                got = connection.scalar(count, params, execution_options=listing._ONCE)
                assert got == len(DATA[name]), (name, extra)


# --- signed /accounts requests through the app ---------------------------------------------


_URLS = itertools.count()


def forget() -> None:
    listing._guesses = listing._Guesses(listing.GUESSES_KEPT)
    messages._made.cache_clear()


@pytest.fixture
def nothing_kept() -> Iterator[None]:
    forget()
    yield
    forget()


def ask(slack: Any, slack_api: Any, words: str, user: str) -> dict[str, Any]:
    name = f"compiled{next(_URLS)}"
    url = str(slack.response_url_base) + name
    message: dict[str, Any] = _acked(
        slack.command("/accounts", words, user_id=user, response_url=url)
    )
    if message.get("text") != commands.WORKING:
        return message
    (post,) = slack_api.wait_for(f"response_url:/respond/{name}", 1)
    posted: dict[str, Any] = post.params
    return posted


def click(slack: Any, slack_api: Any, button: dict[str, Any], user: str) -> dict[str, Any]:
    name = f"compiled{next(_URLS)}"
    slack.interact(_click(button, user, str(slack.response_url_base) + name))
    (post,) = slack_api.wait_for(f"response_url:/respond/{name}", 1)
    posted: dict[str, Any] = post.params
    return posted


def nav(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    last = message.get("blocks", [{}])[-1]
    return {b["text"]["text"]: b for b in last.get("elements", []) if b.get("type") == "button"}


def test_signed_listings_of_two_managers_are_each_their_own_and_a_first_readings(
    slack, slack_api, roleup, monkeypatch, nothing_kept
):
    """Two managers, each of their own integration with accounts of the same names and a
    name only theirs, and someone who may see neither, asking the same words in turn (so
    each statement runs for one, then the other), paging with the buttons, while the cache
    is emptied between some of them. Each answer is what a first reading, with nothing kept
    and nothing compiled before, shows them; and never the other's accounts."""
    cache = CompiledByIdentity()
    monkeypatch.setattr(listing, "_ONCE", {"compiled_cache": cache})
    sessions = roleup.core.sessions
    mine: Data = {
        "prod": {**{f"u{i:02d}": ("ops",) for i in range(25)}, "alice": ("dev",)},
        "stage": {**{f"u{i:02d}": ("dev",) for i in range(3)}, "sam": ("ops",)},
    }
    store(sessions, mine, stage={"managers": [OTHER_MANAGER]})
    only = {MANAGER: "*alice*", OTHER_MANAGER: "*sam*"}

    def first_reading(words: str, user: str, button: dict[str, Any] | None) -> dict[str, Any]:
        forget()
        with uncached(monkeypatch):
            if button is None:
                return ask(slack, slack_api, words, user)
            return click(slack, slack_api, button, user)

    words_asked = ["", "prod", "stage", "ops", "u0", "u2", "prod u1", "zzz"]
    paged = 0
    for round_ in range(3):
        for words in words_asked:
            for user in (MANAGER, OTHER_MANAGER, STRANGER):
                answer = ask(slack, slack_api, words, user)
                text = _text(answer)
                for owner, name in only.items():
                    if owner != user:
                        assert name not in text, (round_, words, user)
                assert answer == first_reading(words, user, None), (round_, words, user)
                again = ask(slack, slack_api, words, user)  # guessed, or its kept message
                assert again == answer, (round_, words, user)
                button = nav(answer).get("Next")
                if button is not None:
                    paged += 1
                    second = click(slack, slack_api, button, user)
                    assert "page 2 of" in _text(second), (words, user)
                    assert second == first_reading(words, user, button), (round_, words, user)
            if round_:
                churn(roleup.core.engine, CompiledByIdentity.KEPT // 2)
    assert paged >= 6 and len(cache) > 0  # pages clicked; the listing's forms were cached
