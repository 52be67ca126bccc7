"""A search in a select (the groups and policies of /onboard and /groups) answered from the
store after a failover or an administrator ended every session, before the server's notice
reached a pooled connection's socket: it only reads, so it is read again on a new connection
and the person sees the options, not an empty list."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from bot.services import lifecycle
from bot.slack import blocks as bk
from bot.slack.commands import options_within
from storage import db
from tests.support.ended_sessions import end_other_sessions, noting_failures
from tests.support.seed import add_account, add_integration


@pytest.mark.postgresql_only  # SQLite has no server to end a connection
def test_a_search_on_a_pooled_connection_the_server_ended_unseen_is_read_again(
    core, database_url, monkeypatch
):
    prod = add_integration(core.sessions, "prod")
    add_account(core.sessions, prod, "alice", ("dev", "ops"))
    for _ in range(3):  # connections in the pool, as a busy process has
        assert lifecycle.grantable_groups(core, prod) == ["dev", "ops"]
    failed: list[DBAPIError] = []
    groups = noting_failures(lifecycle.grantable_groups, failed)

    def find(body: dict[str, Any]) -> list[dict[str, Any]]:
        return bk.options((g, g) for g in groups(core, prod) if body["value"] in g)

    monkeypatch.setattr(db, "_readable", lambda fd: False)  # the checkout sees nothing yet
    assert end_other_sessions(database_url)
    answered: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        listener = options_within(pool, "searching groups", find)
        listener(ack=lambda **answer: answered.append(answer), body={"value": "o"})
    assert [exc.connection_invalidated for exc in failed] == [True]  # the race did happen
    assert answered == [{"options": bk.options([("ops", "ops")])}]
