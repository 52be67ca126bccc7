"""Erased secrets leave the store's files: read byte by byte on SQLite, page by page on
PostgreSQL, after integration removal, key rotation and an invite's password use."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from bot.app import create_core
from bot.services import approvals, integrations, invites
from storage.crypto import generate_key
from storage.db import make_engine
from storage.erasure import purge
from storage.models import Integration, Request
from tests.support.config import TEST_KEY
from tests.support.invite_kit import GOOD_PASSWORD, make_invite
from tests.support.secrets import rows_containing
from tests.support.seed import add_integration

CHUNK = 24  # any run this long of a Fernet token is that token: none may survive


def pieces(ciphertext: str) -> list[bytes]:
    return [
        ciphertext[start : start + CHUNK].encode()
        for start in range(0, len(ciphertext) - CHUNK + 1, CHUNK)
    ]


def sqlite_leftovers(engine: Engine, secrets: list[str]) -> list[str]:
    database = Path(str(engine.url.database))
    found = []
    for path in sorted(database.parent.glob(database.name + "*")):
        data = path.read_bytes()
        for number, secret in enumerate(secrets):
            if any(piece in data for piece in pieces(secret)):
                found.append(f"secret {number} in {path.name}")
    return found


def postgres_leftovers(engine: Engine, secrets: list[str]) -> list[str]:
    """Every tuple still on the tables' pages, dead ones included (pageinspect)."""
    found = []
    with engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        for table in ("integrations", "requests"):
            pages = connection.execute(
                text("SELECT pg_relation_size(:t) / current_setting('block_size')::int"),
                {"t": table},
            ).scalar_one()
            for page in range(pages):
                items = connection.execute(
                    text("SELECT t_data FROM heap_page_items(get_raw_page(:t, :p))"),
                    {"t": table, "p": page},
                ).scalars()
                for item in items:
                    data = bytes(item or b"")
                    for number, secret in enumerate(secrets):
                        if any(piece in data for piece in pieces(secret)):
                            found.append(f"secret {number} in a tuple of {table}")
        connection.commit()
    for number, secret in enumerate(secrets):
        found += [f"secret {number} live in {where}" for where in rows_containing(engine, secret)]
    return found


def leftovers(engine: Engine, secrets: list[str]) -> list[str]:
    """Where the secrets can still be read; on SQLite the log is first copied into the main
    file, as SQLite does by itself every thousand pages, so old secrets are there too."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        return sqlite_leftovers(engine, secrets)
    return postgres_leftovers(engine, secrets)


def stored_secrets(core) -> list[str]:
    with core.sessions() as s:
        values = [
            *s.scalars(select(Integration.credentials_ciphertext)),
            *s.scalars(select(Integration.external_id_ciphertext)),
            *s.scalars(select(Request.secret_ciphertext)),
        ]
    return [value for value in values if value]


def add_pending_password(core, integration_id: int) -> None:
    with core.sessions.begin() as s:
        s.add(
            Request(
                id="r-with-password",
                integration_id=integration_id,
                kind="onboard",
                requester="U1",
                secret_ciphertext=core.require_box().encrypt("Init-Passw0rd!"),
            )
        )


def test_a_removed_integrations_key_and_passwords_are_in_no_database_file(core):
    integration_id = add_integration(core)
    add_pending_password(core, integration_id)
    secrets = stored_secrets(core)
    assert len(secrets) == 2
    assert leftovers(core.engine, secrets), "the scan must see the secrets while they are kept"

    integrations.remove_integration(core, "prod", actor="UADMIN")

    assert leftovers(core.engine, secrets) == []


def test_ciphertexts_under_a_retired_key_are_in_no_database_file_after_rotation(settings):
    old_core = create_core(settings)
    try:
        add_pending_password(old_core, add_integration(old_core))
        old_secrets = stored_secrets(old_core)
    finally:
        old_core.engine.dispose()
    both = create_core(dataclasses.replace(settings, encryption_keys=(generate_key(), TEST_KEY)))
    try:
        assert integrations.rotate_keys(both, actor="cli") == 2
        assert not set(stored_secrets(both)) & set(old_secrets)
        assert leftovers(both.engine, old_secrets) == []
    finally:
        both.engine.dispose()


def test_an_invite_password_is_in_no_database_file_once_its_request_is_done(core, iam):
    created = make_invite(core, add_integration(core))
    invite = invites.open_invite(core, created.token)
    request = invites.answer_invite(
        core, invite, username="newbie", password=GOOD_PASSWORD, confirm=GOOD_PASSWORD, via="test"
    )
    with core.sessions() as s:
        secret = s.get(Request, request.id).secret_ciphertext
    assert secret and leftovers(core.engine, [secret]), "the answer keeps the password, sealed"

    done = approvals.decide(core, request.id, approver="UAPPROVER", approve=True)

    assert done.state == approvals.DONE
    assert iam.get_login_profile(UserName="newbie")["LoginProfile"]["UserName"] == "newbie"
    assert leftovers(core.engine, [secret]) == []


def test_a_denied_invite_password_is_in_no_database_file(core, iam):
    created = make_invite(core, add_integration(core))
    invite = invites.open_invite(core, created.token)
    request = invites.answer_invite(
        core, invite, username="newbie", password=GOOD_PASSWORD, confirm=GOOD_PASSWORD, via="test"
    )
    with core.sessions() as s:
        secret = s.get(Request, request.id).secret_ciphertext
    assert secret and leftovers(core.engine, [secret])

    approvals.decide(core, request.id, approver="UAPPROVER", approve=False)

    assert leftovers(core.engine, [secret]) == []


def test_a_busy_log_is_reported_and_emptied_by_the_next_purge(tmp_path, caplog):
    engine = make_engine(f"sqlite:///{tmp_path / 'busy.db'}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE requests (secret TEXT)")
            connection.exec_driver_sql("INSERT INTO requests VALUES ('gAAAAA-a-sealed-secret')")
        reader = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM requests").fetchall()  # a read snapshot left open
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM requests")

        assert purge(engine, ["requests"]) is False
        assert "write-ahead log is busy" in caplog.text

        reader.close()
        assert purge(engine, ["requests"]) is True
        assert Path(f"{tmp_path / 'busy.db'}-wal").stat().st_size == 0
    finally:
        engine.dispose()


def test_only_tables_that_hold_secrets_can_be_purged(engine):
    with pytest.raises(ValueError, match="not a table that holds secrets: audit_events"):
        purge(engine, ["requests", "audit_events"])


def postgres_page_leftovers(engine: Engine, secrets: list[str]) -> list[str]:
    """Every byte of the tables' pages, not only their tuples: a plain VACUUM frees a dead
    tuple's space without clearing it, so whoever reads the data files (a copy of the disk, a
    base backup, pg_read_binary_file) still finds the ciphertext there."""
    found = []
    with engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        for table in ("integrations", "requests"):
            pages = connection.execute(
                text("SELECT pg_relation_size(:t) / current_setting('block_size')::int"),
                {"t": table},
            ).scalar_one()
            for page in range(pages):
                data = bytes(
                    connection.execute(
                        text("SELECT get_raw_page(:t, :p)"), {"t": table, "p": page}
                    ).scalar_one()
                )
                for number, secret in enumerate(secrets):
                    if any(piece in data for piece in pieces(secret)):
                        found.append(f"secret {number} in page {page} of {table}")
        connection.commit()
    return found


def test_a_forgotten_password_is_not_left_in_the_free_space_of_a_page(core):
    """Failed requests keep their sealed password for a Retry, then forget it: the rows stay,
    so their page does too, and a plain VACUUM only marks the erased bytes free."""
    from datetime import timedelta

    integration_id = add_integration(core)
    failed_at = approvals.utcnow() - timedelta(days=30)
    with core.sessions.begin() as s:
        for number in range(3):
            s.add(
                Request(
                    id=f"failed-{number}",
                    integration_id=integration_id,
                    kind="invite_onboard",
                    requester="UNEWBIE",
                    payload={"username": f"user{number}", "groups": ["developers"]},
                    state=approvals.FAILED,
                    secret_ciphertext=core.require_box().encrypt(f"Chosen-Passw0rd-{number}!"),
                    created_at=failed_at,
                    updated_at=failed_at,
                )
            )
    secrets = stored_secrets(core)[1:]
    assert len(secrets) == 3

    approvals.expire_pending(core)

    with core.sessions() as s:
        assert s.scalars(select(Request.secret_ciphertext)).all() == [None] * 3
    if core.engine.dialect.name == "postgresql":
        assert postgres_page_leftovers(core.engine, secrets) == []
    else:
        assert leftovers(core.engine, secrets) == []


@pytest.mark.postgresql_only  # VACUUM FULL and its lock are PostgreSQL's
def test_a_busy_table_is_vacuumed_plainly_reported_and_rewritten_by_the_next_purge(core, caplog):
    assert core.engine.dialect.name == "postgresql"
    with core.engine.connect() as reader:
        reader.execute(select(Request.id)).all()  # its open transaction holds the table
        assert purge(core.engine, ["requests"]) is False  # after a bounded wait, not for ever
    assert "erased bytes stay in its pages" in caplog.text
    assert purge(core.engine, ["requests"]) is True
