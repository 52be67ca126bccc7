"""Statements built once find their compiled form by identity (storage.db.CompiledByIdentity),
and what they read is what SQLAlchemy's own cache gives, on either store."""

from __future__ import annotations

import gc

from sqlalchemy import bindparam, event, literal, select

from bot.services.listing import accounts_listing
from storage.db import CompiledByIdentity, make_engine
from storage.models import Account
from tests.support.seed import add_account, add_integration


def names_of() -> object:
    return (
        select(Account.user_name)
        .where(Account.integration_id == bindparam("id"))
        .order_by(Account.user_name)
    )


def run(engine, statement, params, cache):
    with engine.connect() as connection:
        result = connection.execute(statement, params, execution_options={"compiled_cache": cache})
        return result.context.compiled, [tuple(row) for row in result]


def test_a_statement_built_once_is_compiled_once_and_reads_what_sqlalchemy_reads(core):
    prod = add_integration(core, "prod")
    for name in ("carol", "alice", "bob"):
        add_account(core.sessions, prod, name, ())
    statement, cache = names_of(), CompiledByIdentity()
    first_compiled, first = run(core.engine, statement, {"id": prod}, cache)
    again_compiled, again = run(core.engine, statement, {"id": prod}, cache)
    with core.engine.connect() as connection:  # SQLAlchemy's own cache
        plain = [tuple(row) for row in connection.execute(statement, {"id": prod})]
    assert first == again == plain == [("alice",), ("bob",), ("carol",)]
    assert again_compiled is first_compiled and len(cache) == 1
    assert run(core.engine, statement, {"id": prod + 1}, cache)[1] == []  # parameters are its own


def test_each_dialect_has_its_own_compiled_form(core, tmp_path):
    """One cache shared by the run's store and another SQLite database: each engine's dialect
    gets the form compiled for it (the same statement compiles to PostgreSQL's and SQLite's)."""
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        statement, cache = select(literal(7).label("seven"), bindparam("x")), CompiledByIdentity()
        here_compiled, here = run(core.engine, statement, {"x": 1}, cache)
        there_compiled, there = run(other, statement, {"x": 2}, cache)
        assert here == [(7, 1)] and there == [(7, 2)]
        assert here_compiled is not there_compiled and len(cache) == 2
        assert there_compiled.dialect is other.dialect
    finally:
        other.dispose()


def test_a_statement_built_where_a_freed_one_was_is_given_its_own_form(core):
    """Each entry holds the key it was stored under, so no id it names can be taken by a new
    statement while the entry is kept: a freed statement's compiled form is never handed to
    one built after it, however often the allocator reuses its memory."""
    cache = CompiledByIdentity()
    for n in range(200):
        statement = select(literal(n).label("n"), bindparam("x"))
        assert run(core.engine, statement, {"x": n}, cache)[1] == [(n, n)]
        del statement
        gc.collect()


def test_the_entries_kept_are_bounded_and_a_dropped_form_is_compiled_again(core):
    cache, kept = CompiledByIdentity(), []
    for n in range(CompiledByIdentity.KEPT + 5):
        kept.append(select(literal(n).label("n")))
        run(core.engine, kept[-1], {}, cache)
        assert len(cache) <= CompiledByIdentity.KEPT
    assert len(cache) == 5  # dropped at the bound, then five more stored
    assert run(core.engine, kept[0], {}, cache)[1] == [(0,)]


def test_a_listing_asked_again_runs_the_forms_its_first_reading_compiled(core):
    prod = add_integration(core, "prod")
    add_account(core.sessions, prod, "alice", ("ops",))
    every = lambda integrations: (integrations, None)  # noqa: E731
    ran: list[object] = []

    def seen(_conn, _cursor, _statement, _params, context, _many):
        ran.append(context.compiled)

    event.listen(core.engine, "after_cursor_execute", seen)
    try:
        first = accounts_listing(core, every)
        first_forms = list(ran)
        again = accounts_listing(core, every)
    finally:
        event.remove(core.engine, "after_cursor_execute", seen)
    assert again == first and [row.user_name for row in again.rows] == ["alice"]
    assert len(first_forms) == 2 and len(ran) == 4  # the integrations, then the page
    assert all(form is first_forms[n] for n, form in enumerate(ran[2:]))
    assert all(form.dialect is core.engine.dialect for form in ran)
