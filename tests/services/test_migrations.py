"""Migrations keep what the store holds, and integration ids are never handed out twice."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from storage.db import make_engine
from storage.migrate import (
    SchemaNotReady,
    alembic_config,
    check_schema,
    current_revisions,
    latest_revisions,
    upgrade,
)


def _insert_integration(connection, name: str) -> int:
    connection.execute(
        text(
            "INSERT INTO integrations (name, read_only, path_prefix, managers, approvers,"
            " sync_interval_minutes, approve_onboarding, approve_group_grants, created_by,"
            " created_at, updated_at) VALUES (:name, false, '/', '[]', '[]', 15, false, false,"
            " 'U1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        {"name": name},
    )
    return connection.execute(
        text("SELECT id FROM integrations WHERE name = :name"), {"name": name}
    ).scalar_one()


def test_upgrading_from_0002_keeps_every_row_that_refers_to_an_integration(fresh_database_url):
    upgrade(fresh_database_url, "0002")
    engine = make_engine(fresh_database_url)
    try:
        with engine.begin() as connection:
            integration_id = _insert_integration(connection, "prod")
            connection.execute(
                text(
                    "INSERT INTO accounts (integration_id, user_name, path, tags, inline_policies)"
                    " VALUES (:i, 'alice', '/', '{}', '[]')"
                ),
                {"i": integration_id},
            )
            connection.execute(
                text(
                    "INSERT INTO requests (id, integration_id, kind, payload, requester, state,"
                    " created_at, updated_at, steps) VALUES ('r1', :i, 'onboard', '{}', 'U1',"
                    " 'pending', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '[]')"
                ),
                {"i": integration_id},
            )
        upgrade(fresh_database_url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT user_name FROM accounts")).scalars().all() == [
                "alice"
            ]
            assert connection.execute(text("SELECT integration_id FROM requests")).scalar_one() == (
                integration_id
            )
            assert connection.execute(text("SELECT failed_attempts FROM invites")).fetchall() == []
    finally:
        engine.dispose()


def test_a_removed_integrations_id_is_never_given_to_the_next_one(fresh_database_url):
    upgrade(fresh_database_url)
    engine = make_engine(fresh_database_url)
    try:
        with engine.begin() as connection:
            first = _insert_integration(connection, "prod")
            connection.execute(text("DELETE FROM integrations WHERE id = :i"), {"i": first})
        with engine.begin() as connection:
            second = _insert_integration(connection, "staging")
        assert second > first
    finally:
        engine.dispose()


def test_the_schema_check_reads_the_revisions_as_alembic_does(fresh_database_url):
    """The CLI checks the schema without importing Alembic; it must agree with Alembic."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    assert latest_revisions() == heads
    engine = make_engine(fresh_database_url)
    try:
        assert current_revisions(engine) == set()
        with pytest.raises(SchemaNotReady, match="has no RoleUp schema"):
            check_schema(engine)
        upgrade(fresh_database_url, "0009")
        with engine.connect() as connection:
            assert current_revisions(engine) == set(
                MigrationContext.configure(connection).get_current_heads()
            )
        with pytest.raises(SchemaNotReady, match="has an older RoleUp schema"):
            check_schema(engine)
        upgrade(fresh_database_url)
        assert current_revisions(engine) == heads
        check_schema(engine)
    finally:
        engine.dispose()
