"""The accounts listing read from the store: pages, totals, grant ends and expiries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, insert, inspect, select, update

from bot.services import listing
from bot.services.listing import accounts_listing, accounts_page, all_integrations
from bot.services.records import IntegrationInfo
from storage.models import Account, AccountExpiry, Grant, Group, Integration, Membership
from tests.support.seed import ADMIN, add_account, add_integration

END = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
EXPIRY = datetime(2026, 6, 1, tzinfo=UTC)


def page_of(sessions, **kwargs):
    with sessions() as session:
        return accounts_page(session, all_integrations(session), page_size=3, **kwargs)


def test_grant_ends_and_expiries_show_on_their_accounts_and_no_other(sessions):
    prod = add_integration(sessions)
    add_account(sessions, prod, "alice", ("dev", "ops"))
    add_account(sessions, prod, "bob", ("dev",))
    add_account(sessions, prod, "carol")
    with sessions.begin() as session:
        grant = {"integration_id": prod, "group_name": "ops", "requester": ADMIN}
        session.add(Grant(user_name="alice", starts_at=END, ends_at=END, **grant))
        session.add(Grant(user_name="bob", starts_at=END, ends_at=END, state="ended", **grant))
        session.add(
            AccountExpiry(
                integration_id=prod, user_name="carol", requester=ADMIN, expires_at=EXPIRY
            )
        )
    page = page_of(sessions)
    rows = {r.user_name: r for r in page.rows}
    assert [r.user_name for r in page.rows] == ["alice", "bob", "carol"] and page.total == 3
    assert rows["alice"].groups == ["dev", "ops"] and rows["alice"].group_ends == {"ops": END}
    assert rows["bob"].groups == ["dev"] and rows["bob"].group_ends == {}
    assert rows["carol"].groups == [] and rows["carol"].expires_at == EXPIRY
    assert rows["alice"].expires_at is None


def test_a_page_past_the_end_shows_the_last_one_and_an_empty_listing_says_so(sessions):
    prod = add_integration(sessions)
    assert page_of(sessions, page=4).rows == [] and page_of(sessions, page=4).total == 0
    for name in ("a", "b", "c", "d", "e"):
        add_account(sessions, prod, name, ("g1", "g2"))
    last = page_of(sessions, page=9)
    assert (last.page, last.pages, last.total) == (1, 2, 5)
    assert [r.user_name for r in last.rows] == ["d", "e"] and last.rows[0].groups == ["g1", "g2"]
    filtered = page_of(sessions, text_filter="G2", page=1)
    assert filtered.total == 5 and [r.user_name for r in filtered.rows] == ["d", "e"]


def test_a_listing_opens_no_transaction_on_postgresql_and_hands_back_a_transactional_connection(
    core,
):
    """/accounts reads in autocommit on PostgreSQL (no BEGIN, no ROLLBACK round trips), and the
    connection goes back to the pool as it came: the next session's writes are a transaction."""
    prod = add_integration(core.sessions)
    add_account(core.sessions, prod, "alice", ("dev",))
    postgres = core.engine.dialect.name == "postgresql"
    during: list[tuple[str, bool | None]] = []
    returned: list[bool | None] = []

    def executed(conn, cursor, statement, *_):
        during.append((statement.split()[0], getattr(cursor.connection, "autocommit", None)))

    def checked_in(dbapi_connection, _record):
        returned.append(getattr(dbapi_connection, "autocommit", None))

    event.listen(core.engine, "before_cursor_execute", executed)
    event.listen(core.engine.pool, "checkin", checked_in)
    try:
        page = accounts_listing(core, lambda every: (every, None))
    finally:
        event.remove(core.engine, "before_cursor_execute", executed)
        event.remove(core.engine.pool, "checkin", checked_in)
    assert [r.user_name for r in page.rows] == ["alice"] and page.rows[0].groups == ["dev"]
    assert [verb for verb, _ in during] == ["SELECT", "SELECT"]
    if postgres:
        assert [autocommit for _, autocommit in during] == [True, True]
        assert returned == [False]
    with core.sessions() as session:
        connection = session.connection().connection.dbapi_connection
        assert getattr(connection, "autocommit", False) is False


@pytest.mark.postgresql_only  # SQLite keeps no plans across executions
def test_a_listing_asked_again_on_postgresql_runs_a_plan_made_once_not_one_per_command(core):
    """psycopg prepares a statement run five times on a connection, and PostgreSQL then plans it
    once for any value of its parameters, unless a plan made for the values at hand looks
    cheaper: with the page's size and the states bound, on a store with statistics (as
    autovacuum keeps it), that was every /accounts, its planning more CPU than running it."""
    prod = add_integration(core.sessions, "prod")
    with core.sessions.begin() as session:  # as bench/ack.py's store: 500 accounts, 20 groups
        groups = [Group(integration_id=prod, name=f"team-{g:02d}") for g in range(20)]
        session.add_all(groups)
        session.flush()
        names = [f"user-{n:04d}" for n in range(500)]
        session.execute(
            insert(Account), [{"integration_id": prod, "user_name": name} for name in names]
        )
        ids = session.scalars(select(Account.id).order_by(Account.user_name)).all()
        session.execute(
            insert(Membership),
            [
                {"account_id": account, "group_id": groups[(n + k) % 20].id}
                for n, account in enumerate(ids)
                for k in (0, 1)
            ],
        )
        given = {"integration_id": prod, "requester": ADMIN}
        for n in range(0, 500, 4):
            group = groups[(n + 1) % 20].name
            session.add(
                Grant(user_name=names[n], group_name=group, starts_at=END, ends_at=END, **given)
            )
        for n in range(0, 500, 10):
            session.add(AccountExpiry(user_name=names[n], expires_at=EXPIRY, **given))
    with core.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    core.engine.dispose()  # one connection from here on: the listings' prepared statements
    every = lambda integrations: (integrations, None)  # noqa: E731
    key = fresh_key()
    shown = [accounts_listing(core, every, page=n % 2, guess=key) for n in range(20)]
    assert shown[0].rows[0].group_ends == {"team-01": END} and shown[0].total == 500
    assert shown[1].rows[0].user_name == "user-0020" and shown[1].rows[0].expires_at == EXPIRY
    with core.engine.connect() as connection:
        plans = connection.exec_driver_sql(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE strpos(statement, 'FROM accounts') > 0"
        ).all()
    assert plans  # the page with every integration's record, run 19 times (prepared at the 6th)
    for statement, generic, custom in plans:
        assert custom <= 5 and generic >= 9, (generic, custom, statement[:200])


HOSTILE = ["Zed", "alice", 'b\\ob"s', "émile", "zoë", "😀user", "x" * 60, "d'Arcy", "é"]


def test_the_store_hands_the_page_over_in_one_row_exactly_as_its_rows_read_it(core, monkeypatch):
    """The page comes back as one JSON value (fewer GIL hand-overs and rows made per listing):
    every name, order (PostgreSQL's collation's, SQLite's bytes'), group, grant end and expiry
    is what reading it row by row gives, for one integration or several, filtered or not, on
    every page; on PostgreSQL also when the session's time zone is not UTC."""
    if core.engine.dialect.name == "postgresql":
        core.engine.dispose()  # every connection from now on in a half-hour-offset zone
        event.listen(core.engine, "connect", _in_st_johns)
    prod = add_integration(core.sessions, "prod")
    zeta = add_integration(core.sessions, "Zeta")
    for n, name in enumerate(HOSTILE):
        add_account(
            core.sessions, prod if n % 2 else zeta, name, ("dév", 'ops"', "<!here>")[: n % 4]
        )
        add_account(core.sessions, prod, f"{name}-{n}", ('ops"',))
    with core.sessions.begin() as session:
        grant = {"integration_id": prod, "group_name": 'ops"', "requester": ADMIN}
        session.add(Grant(user_name="émile-3", starts_at=END, ends_at=END, **grant))
        session.add(
            AccountExpiry(
                integration_id=prod, user_name="😀user-5", requester=ADMIN, expires_at=EXPIRY
            )
        )

    def every_page(text_filter=None):
        """Each listing's pages, first to last, for both integrations, then each alone."""
        listings = []
        with core.sessions() as session:
            every = all_integrations(session)
            for chosen in (every, every[:1], every[1:]):
                pages = [accounts_page(session, chosen, text_filter=text_filter, page_size=4)]
                while pages[-1].has_next:
                    pages.append(
                        accounts_page(
                            session,
                            chosen,
                            text_filter=text_filter,
                            page=len(pages),
                            page_size=4,
                        )
                    )
                listings.append(pages)
        return listings

    in_one_row = [every_page(), every_page("O"), every_page('"')]
    monkeypatch.setattr(
        listing,
        "_in_one_row",
        lambda several, filtered, _, size: listing._statements(several, filtered, size)[1],
    )
    monkeypatch.setattr(
        listing,
        "_page_in_one_row",
        lambda connection, page_of, params, ordered: listing._page_in_rows(
            connection, page_of, params
        ),
    )
    in_rows = [every_page(), every_page("O"), every_page('"')]
    assert in_one_row == in_rows
    shown = {r.user_name: r for page in in_one_row[0][0] for r in page.rows}
    assert len(shown) == 2 * len(HOSTILE) and {'b\\ob"s', "😀user-5", "x" * 60} <= set(shown)
    assert shown["émile-3"].group_ends == {'ops"': END} and shown["émile-3"].groups == ['ops"']
    assert shown["😀user-5"].expires_at == EXPIRY and shown["😀user-5"].expires_at.tzinfo
    assert shown["d'Arcy"].groups == ["<!here>", "dév", 'ops"'][: len(shown["d'Arcy"].groups)]
    if core.engine.dialect.name == "sqlite":  # its order is the bytes' (PostgreSQL's, a locale's)
        for pages in in_one_row[0]:
            listed = [(r.integration, r.user_name) for page in pages for r in page.rows]
            assert listed == sorted(listed) and listed


def _in_st_johns(dbapi_connection, _record):
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'America/St_Johns'")
    dbapi_connection.commit()


def test_a_page_reads_each_accounts_grant_ends_and_expiry_by_the_account(core):
    """/accounts reads, for each account of a page, its groups' grant ends and its expiry: by
    the account (integration, user name, group), never by walking every active grant or expiry
    of the integration for each row (8 ms a page with 500 grants on SQLite, against 0.2)."""
    prod = add_integration(core.sessions, "prod")
    other = add_integration(core.sessions, "other")
    for n in range(30):
        add_account(core.sessions, prod, f"user-{n:02d}", ("dev", "ops"))
    with core.sessions.begin() as session:
        for n in range(30):
            grant = {"integration_id": prod, "group_name": "ops", "requester": ADMIN}
            session.add(Grant(user_name=f"user-{n:02d}", starts_at=END, ends_at=END, **grant))
            session.add(
                AccountExpiry(
                    integration_id=prod, user_name=f"user-{n:02d}", requester=ADMIN, expires_at=END
                )
            )
    indexes = {
        table: {i["name"]: i["column_names"] for i in inspect(core.engine).get_indexes(table)}
        for table in ("grants", "account_expiries")
    }
    assert indexes["grants"]["ix_grants_account_group"] == [
        "integration_id",
        "user_name",
        "group_name",
        "state",
        "ends_at",
    ]
    assert indexes["account_expiries"]["ix_account_expiries_account"] == [
        "integration_id",
        "user_name",
    ]
    if core.engine.dialect.name != "sqlite":
        return  # PostgreSQL's plan follows its statistics; SQLite's is fixed by its indexes
    pages: list[tuple[str, Any]] = []

    def noted(conn, cursor, statement, parameters, *_):
        if "FROM grants" in statement:
            pages.append((statement, parameters))

    event.listen(core.engine, "before_cursor_execute", noted)
    try:
        with core.sessions() as session:
            every = all_integrations(session)
            for chosen, text_filter in ((every, None), (every, "o"), ([every[1]], None)):
                assert accounts_page(session, chosen, text_filter=text_filter).total == 30
    finally:
        event.remove(core.engine, "before_cursor_execute", noted)
    assert len(pages) == 3 and other
    with core.engine.connect() as connection:
        for statement, parameters in pages:
            plan = [
                row[3]
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            ]
            reads = [step for step in plan if " grants " in step or "account_expiries" in step]
            assert reads == [
                "SEARCH grants USING COVERING INDEX ix_grants_account_group (integration_id=? "
                "AND user_name=? AND group_name=? AND state=?)",
                "SEARCH account_expiries USING INDEX ix_account_expiries_account "
                "(integration_id=? AND user_name=?)",
            ], plan


def test_integration_records_read_as_one_value_are_what_their_columns_read(core, monkeypatch):
    """Every integration's record, read as one JSON value the store builds, is field for field
    what reading its columns gives: hostile names in the store's order, lists, booleans either
    way, empty and set datetimes (to the microsecond; on PostgreSQL in a session whose time zone
    is not UTC), with a key or a role."""
    if core.engine.dialect.name == "postgresql":
        core.engine.dispose()
        event.listen(core.engine, "connect", _in_st_johns)
    moment = datetime(2026, 7, 8, 9, 10, 11, 123456, tzinfo=UTC)
    for n, name in enumerate(HOSTILE):
        add_integration(
            core.sessions,
            name,
            key=None if n % 3 else ("AKIAHOSTILE000000001", "secret"),
            role_arn=f"arn:aws:iam::123456789012:role/{name[:20]}" if n % 3 else None,
            managers=[f"U{n}", '"<!here>"', "é\\"][: n % 4],
            approvers=[] if n % 2 else [f"S{n}"],
            privileged_groups=["admins", name][: n % 3],
            breakglass=[f"U{n}"] * (n % 2),
            read_only=bool(n % 2),
            approve_onboarding=bool(n % 3),
            require_reason=n == 4,
            approvals_required=1 + n % 2,
            review_every_days=None if n % 2 else 30 + n,
            credentials_changed_at=moment if n % 2 else None,
            last_sync_at=None if n == 0 else moment,
            last_sync_error=f'bad "{name}"\\n' if n % 4 == 1 else None,
            health_checked_at=moment,
        )
    in_one_value = listing.integrations(core)
    monkeypatch.setattr(listing, "_integrations_in_one_row", lambda _: None)
    monkeypatch.setattr(
        listing,
        "integration_records",
        lambda session: [
            IntegrationInfo(*row)
            for row in session.connection().execute(listing._integration_record_columns())
        ],
    )
    by_columns = listing.integrations(core)
    assert in_one_value == by_columns and len(in_one_value) == len(HOSTILE)
    for read, typed in zip(in_one_value, by_columns, strict=True):  # 0 == False, 1 == True
        for name, value in vars(read).items():
            assert type(value) is type(getattr(typed, name)), (read.name, name, value)
    shown = {i.name: i for i in in_one_value}
    assert shown["é"].credentials_changed_at is None and shown["é"].uses_key is False
    assert shown["alice"].credentials_changed_at == moment and shown["Zed"].uses_key is True
    assert all(i.health_checked_at and i.health_checked_at.tzinfo == UTC for i in in_one_value)
    if core.engine.dialect.name == "sqlite":  # its order is the bytes' (PostgreSQL's, a locale's)
        assert [i.name for i in in_one_value] == sorted(HOSTILE)


# --- a listing asked again: its integrations and its page in one statement ------------------
def counted(core):
    """The statements the store is sent meanwhile (their SQL)."""
    sent: list[str] = []

    def executed(conn, cursor, statement, *_):
        sent.append(statement)

    event.listen(core.engine, "before_cursor_execute", executed)
    return sent, lambda: event.remove(core.engine, "before_cursor_execute", executed)


def fresh_key() -> str:
    """A listing's key no other test has asked with (the guesses are the process's)."""
    return f"UASKER {uuid.uuid4()}"


def names(page) -> list[str]:
    return [row.user_name for row in page.rows]


def test_a_listing_asked_again_is_read_in_one_statement_and_is_what_a_first_reading_gives(core):
    prod, dev = add_integration(core, "prod"), add_integration(core, "dev")
    add_account(core.sessions, prod, "alice", ("ops",))
    add_account(core.sessions, dev, "bob", ("ops", "dev"))
    every = lambda integrations: (integrations, "o")  # noqa: E731
    key = fresh_key()
    sent, stop = counted(core)
    try:
        first = accounts_listing(core, every, guess=key)
        read_first = len(sent)
        again = accounts_listing(core, every, guess=key)
    finally:
        stop()
    assert read_first == 2 and len(sent) == 3  # integrations, page; then both at once
    assert names(again) == names(first) == ["bob", "alice"]  # dev, then prod
    assert again == first == accounts_listing(core, every)  # unguessed: read as before
    assert again.rows[0].groups == ["dev", "ops"] and again.rows[0].integration == "dev"


def test_a_guess_the_integrations_read_with_it_no_longer_choose_is_not_shown(core):
    """Who may see which integration is decided from the integrations read in the same
    statement as the guessed page: changed since the guess (a manager taken off, a filter
    chosen otherwise), the page of what is chosen now is read and shown, never the guess's."""
    prod, dev = add_integration(core, "prod"), add_integration(core, "dev")
    add_account(core.sessions, prod, "alice", ("ops",))
    add_account(core.sessions, dev, "bob", ("ops",))
    choices: list[str | None] = [None]

    def mine(integrations):
        return [i for i in integrations if "UASKER" in i.managers], choices[-1]

    with core.sessions.begin() as session:
        session.execute(update(Integration).values(managers=["UASKER"]))
    key = fresh_key()
    assert names(accounts_listing(core, mine, guess=key)) == ["bob", "alice"]
    with core.sessions.begin() as session:
        session.execute(update(Integration).where(Integration.id == dev).values(managers=[]))
    sent, stop = counted(core)
    try:
        taken_off = accounts_listing(core, mine, guess=key)
    finally:
        stop()
    assert names(taken_off) == ["alice"] and taken_off.last_sync.keys() == {"prod"}
    assert len(sent) == 2  # the guess and its page, then the page of what was chosen
    choices.append("zzz")  # the same words now chosen as a filter nothing matches
    assert names(accounts_listing(core, mine, guess=key)) == []
    choices.append(None)
    assert names(accounts_listing(core, mine, guess=key)) == ["alice"]


def test_a_guessed_page_past_the_end_shows_the_last_page_as_a_first_reading_does(core):
    prod = add_integration(core, "prod")
    for name in ("a", "b", "c"):
        add_account(core.sessions, prod, name, ("g",))
    every = lambda integrations: (integrations, None)  # noqa: E731
    key = fresh_key()
    accounts_listing(core, every, page=7, guess=key)
    guessed = accounts_listing(core, every, page=7, guess=key)
    assert (guessed.page, guessed.pages, guessed.total) == (0, 1, 3)
    assert guessed == accounts_listing(core, every, page=7)
    with core.sessions.begin() as session:
        session.execute(update(Account).where(Account.user_name == "b").values(user_name="bb"))
    assert names(accounts_listing(core, every, page=7, guess=key)) == ["a", "bb", "c"]


def test_the_guesses_kept_are_bounded_and_the_oldest_forgotten_first():
    kept = listing._Guesses(2)
    for key in ("a", "b"):
        kept.put(key, ((1,), None))
    assert kept.get("a") == ((1,), None)  # "a" is now the latest asked
    kept.put("c", ((2,), "x"))
    assert kept.get("b") is None and kept.get("a") == ((1,), None)
    assert kept.get("c") == ((2,), "x")
