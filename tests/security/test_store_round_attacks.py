"""Attacks on this round's store changes: the integrations read as one JSON value, SQLite's
write lock taken before a read (lock_for_update), the pooled connection replaced when the
server ended it, and the one shared AWS client made once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bot.services import listing
from bot.services.records import IntegrationInfo
from tests.support.seed import add_integration

MOMENT = datetime(2026, 7, 8, 9, 10, 11, 123456, tzinfo=UTC)


def _by_columns(core) -> list[IntegrationInfo]:
    with core.engine.connect() as connection:
        return [
            IntegrationInfo(*row)
            for row in connection.execute(listing._integration_record_columns())
        ]


def _in_one_value(core) -> list[IntegrationInfo]:
    with core.engine.connect() as connection:
        return listing.integration_records(connection)


def test_two_hundred_integrations_with_hostile_stored_values_read_as_their_columns(core):
    """Values no form writes but a hand-edited or old store may hold: datetimes with and without
    microseconds or an offset, JSON columns holding odd JSON (an object, a number, JSON null),
    names that sort differently by bytes and by a locale. Each record is what reading its
    columns gives, type for type, in the same order."""
    names = [f"n{n:03d}" for n in range(190)] + ["Zed", "alice", "é", "e", "_x", "a b", "A"]
    for n, name in enumerate(names):
        add_integration(
            core.sessions,
            name,
            key=None if n % 2 else ("AKIAHOSTILE000000001", "secret"),
            role_arn="arn:aws:iam::123456789012:role/r" if n % 2 else None,
            managers=[f"U{n}"],
            credentials_changed_at=MOMENT if n % 3 else None,
            last_sync_at=MOMENT,
        )
    sqlite = core.engine.dialect.name == "sqlite"
    odd = {
        "n000": "'{\"a\": [1, null]}'",
        "n001": "'[\"U1\", 7]'",
        "n002": "'null'",
        "n003": "'\"text\"'",
        "n004": "'[1.5, true, \"<!here>\"]'",
    }
    with core.engine.begin() as connection:
        for name, value in odd.items():
            cast = "" if sqlite else "::json"
            connection.execute(
                text(f"UPDATE integrations SET managers = {value}{cast} WHERE name = :n"),
                {"n": name},
            )
        if sqlite:  # datetimes as SQLite may hold them: no microseconds, an offset, a T
            for name, moment in {
                "n005": "2026-07-08 09:10:11",
                "n006": "2026-07-08 09:10:11.5",
                "n007": "2026-07-08 09:10:11.000000",
                "n008": "2026-07-08 09:10:11+02:00",
                "n009": "2026-07-08T09:10:11.123",
                "n010": "2026-07-08",
            }.items():
                connection.execute(
                    text("UPDATE integrations SET last_sync_at = :m WHERE name = :n"),
                    {"m": moment, "n": name},
                )
        else:
            connection.execute(
                text(
                    "UPDATE integrations SET last_sync_at = '2026-07-08 09:10:11+05:30'"
                    " WHERE name = 'n005'"
                )
            )
    by_columns = _by_columns(core)
    in_one_value = _in_one_value(core)
    assert len(in_one_value) == len(names)
    assert [i.name for i in in_one_value] == [i.name for i in by_columns]
    for read, typed in zip(in_one_value, by_columns, strict=True):
        assert read == typed, read.name
        for field, value in vars(read).items():
            assert type(value) is type(getattr(typed, field)), (read.name, field, value)


def test_a_shared_client_whose_making_failed_is_made_by_the_next_call_and_nobody_hangs(
    mocked_aws, iam, monkeypatch
):
    """The first of many threads to need the shared IAM client fails to make it (its session
    would not load) while the others wait for it: each waiting thread then makes or finds one,
    none waits forever, and every later call works."""
    from bot.services import aws

    iam.create_user(UserName="alice")
    real = aws.credentialless_session
    first = threading.Event()
    others_waiting = threading.Event()

    def failing_once(region):
        if not first.is_set():
            first.set()
            others_waiting.wait(timeout=10)
            raise OSError("the service model could not be read")
        return real(region)

    monkeypatch.setattr(aws, "credentialless_session", failing_once)
    clients = aws.AwsClients()
    outcomes: list[str] = []

    def list_users():
        try:
            users = clients.iam_with_key("AKIAX", "secret").list_users()["Users"]
            outcomes.append(",".join(u["UserName"] for u in users))
        except OSError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=list_users) for _ in range(6)]
    threads[0].start()
    assert first.wait(timeout=10)
    for thread in threads[1:]:
        thread.start()
    others_waiting.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(outcomes) == ["alice"] * 5 + ["the service model could not be read"]
    list_users()
    assert outcomes[-1] == "alice"


def psycopg_connect(engine):
    import psycopg

    url = engine.url.set(drivername="postgresql")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


def _sessions_of(engine, pid: int) -> int:
    with engine.connect() as connection:
        return connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
        )


def test_a_pooled_connection_ended_by_idle_session_timeout_or_with_a_notify_pending_is_replaced(
    core,
):
    """Connections the server ended while they sat in the pool (idle_session_timeout), or with
    a NOTIFY waiting on them, are replaced at checkout, and ones given back with a result
    left unread are used as they are: the listings and a write after it work,
    and the write is made once (SQLite has no server to end them)."""
    add_integration(core.sessions, "prod")
    engine = core.engine
    sqlite = engine.dialect.name == "sqlite"
    if not sqlite:
        with engine.connect() as one, engine.connect() as two, engine.connect() as three:
            one.exec_driver_sql("SET idle_session_timeout = 100")
            two.exec_driver_sql("LISTEN roleup_attack")
            three.exec_driver_sql("SET idle_in_transaction_session_timeout = 100")
            ended = one.scalar(text("SELECT pg_backend_pid()"))
            for connection in (one, two, three):
                connection.commit()
        with engine.connect() as other:
            other.exec_driver_sql("NOTIFY roleup_attack")
            other.commit()
        waited = threading.Event()
        while _sessions_of(engine, ended):  # the server ends the idle session on its own
            waited.wait(0.05)
    for streamed in (False, True):  # connections given back with a result left unread
        with engine.connect() as connection:
            unread = connection.execution_options(stream_results=streamed).execute(
                text(
                    "SELECT * FROM generate_series(1, 5000)"
                    if not sqlite
                    else "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                    " WHERE i < 5000) SELECT i FROM n"
                )
            )
            assert unread.fetchone() is not None
    for _ in range(4):
        assert [i.name for i in listing.integrations(core)] == ["prod"]
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE integrations SET approvals_required = approvals_required + 1")
        )
    assert listing.integrations(core)[0].approvals_required == 2


@pytest.mark.postgresql_only
def test_after_a_postgresql_restart_every_pooled_connection_is_replaced_and_a_write_runs_once(
    backend,
):
    """A throwaway PostgreSQL cluster restarted under a pool of live connections: every
    statement after it runs on a new connection, and each write is made once."""
    from storage.db import make_engine
    from tests.support.postgres import TempPostgres

    server = TempPostgres()
    url = server.start()
    engine = make_engine(url, pool_size=4)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE writes (n integer)")
        held = [engine.connect() for _ in range(4)]
        for connection in held:
            assert connection.scalar(text("SELECT 1")) == 1
            connection.close()  # back to the pool, alive
        server._run("pg_ctl", "-D", str(server.data), "-m", "fast", "-w", "restart")
        for n in range(6):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO writes VALUES (:n)"), {"n": n})
        with engine.connect() as connection:
            written = connection.scalars(text("SELECT n FROM writes ORDER BY n")).all()
        assert written == list(range(6))
    finally:
        engine.dispose()
        server.stop()


def test_lock_for_update_holds_sqlites_write_lock_and_is_nothing_on_postgresql(core):
    """On SQLite the transaction that took it is the only writer until it ends (another writer
    that will not wait is refused; after a rollback it writes). On PostgreSQL nothing is sent
    and another session writes meanwhile, without waiting."""
    from sqlalchemy import event

    from storage.db import lock_for_update

    add_integration(core.sessions, "prod")
    sent: list[str] = []

    def noted(_conn, _cursor, statement, *_args):
        sent.append(statement)

    sqlite = core.engine.dialect.name == "sqlite"
    with core.sessions() as session:
        session.execute(text("SELECT count(*) FROM integrations")).scalar()  # a read first
        event.listen(core.engine, "before_cursor_execute", noted)
        try:
            lock_for_update(session)
        finally:
            event.remove(core.engine, "before_cursor_execute", noted)
        with core.engine.connect() as other:
            if sqlite:
                other.exec_driver_sql("PRAGMA busy_timeout = 0")
            write = text("UPDATE integrations SET approvals_required = 3")
            if sqlite:
                with pytest.raises(Exception, match="database is locked"):
                    other.execute(write)
                other.rollback()
            else:
                other.execute(write)
                other.commit()
            session.rollback()
            if sqlite:
                other.execute(write)
                other.commit()
                other.exec_driver_sql(f"PRAGMA busy_timeout = {30000}")
    assert sent == (["BEGIN IMMEDIATE"] if sqlite else [])
    assert listing.integrations(core)[0].approvals_required == 3


def test_two_syncs_an_edit_and_a_key_rotation_at_once_each_finish_once(core, iam, monkeypatch):
    """A scheduled sync, a manual sync, an integration edit and a key rotation of one
    integration at the same moment (SQLite's write lock taken by three of them before they
    read): none waits on itself or on another for good, the edit and the new key are both
    kept, and each sync that says it finished is audited once."""
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from sqlalchemy import func, select

    from bot.services.aws import seal_key_pair
    from bot.services.errors import RoleUpError
    from bot.services.integration_update import IntegrationChanges, update_integration
    from bot.services.key_rotation import Propagation, rotate_credentials
    from bot.services.sync import sync_integration
    from storage.models import AuditEvent, Integration

    allow = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
    iam.create_user(UserName="roleup")
    iam.put_user_policy(UserName="roleup", PolicyName="all", PolicyDocument=allow)
    for n in range(5):
        iam.create_user(UserName=f"person{n}")
    key = iam.create_access_key(UserName="roleup")["AccessKey"]
    with core.sessions.begin() as session:
        prod = Integration(
            name="prod",
            access_key_hint="AKIA…",
            credentials_ciphertext=seal_key_pair(
                core.require_box(), key["AccessKeyId"], key["SecretAccessKey"]
            ),
            created_by="UADMIN",
        )
        session.add(prod)
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    start = threading.Barrier(4)
    outcomes: dict[str, str] = {}

    def run(label, work):
        start.wait()
        try:
            work()
            outcomes[label] = "done"
        except RoleUpError as err:
            outcomes[label] = f"told: {err.user_message}"
        except Exception as err:  # shown in the assertion, not raised in a thread
            outcomes[label] = f"failed: {type(err).__name__}: {err}"

    works = {
        "scheduled sync": lambda: sync_integration(core, prod.id, actor="scheduler"),
        "manual sync": lambda: sync_integration(core, prod.id, actor="UADMIN"),
        "edit": lambda: update_integration(
            core, "prod", IntegrationChanges(approvals_required=2), actor="UADMIN", validate=False
        ),
        "rotation": lambda: rotate_credentials(
            core, "prod", actor="UADMIN", propagation=Propagation(4, lambda _s: None)
        ),
    }
    threads = [threading.Thread(target=run, args=item) for item in works.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), outcomes
    assert outcomes["edit"] == "done" and outcomes["rotation"] == "done", outcomes
    record = listing.integrations(core)[0]
    assert record.approvals_required == 2
    assert record.access_key_hint != "AKIA…"
    with core.sessions() as session:
        synced = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "sync")
        )
    assert synced == sum(
        outcomes[label] == "done" for label in ("scheduled sync", "manual sync")
    ), outcomes
    assert synced >= 1


def test_an_edit_that_waited_out_the_lock_is_told_nothing_changed_and_saves_once_after(core):
    """Another writer holds the store (SQLite's write lock; PostgreSQL's row lock on the
    integration) past the wait: the edit is refused whole, the person is told nothing was
    changed, and the same edit afterwards is saved, and audited, once."""
    from sqlalchemy import event, func, select

    from bot.services.integration_update import IntegrationChanges, update_integration
    from bot.slack.errors import user_message
    from storage.models import AuditEvent

    add_integration(core.sessions, "prod", key=None, role_arn="arn:aws:iam::123456789012:role/r")
    engine = core.engine
    sqlite = engine.dialect.name == "sqlite"
    engine.dispose()

    def short_wait(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 50" if sqlite else "SET lock_timeout = 50")
        cursor.close()
        dbapi_connection.commit()  # (a SET in psycopg's open transaction is undone by a rollback)

    event.listen(engine, "connect", short_wait)
    holder = engine.connect()
    try:
        if sqlite:
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            holder.exec_driver_sql("SELECT id FROM integrations FOR UPDATE")
        edit = IntegrationChanges(approvals_required=2)
        with pytest.raises(Exception) as refused:
            update_integration(core, "prod", edit, actor="UADMIN", validate=False)
        assert user_message(refused.value).startswith(
            ":warning: Something went wrong on our side and nothing was changed by this step."
        )
        holder.rollback()
        assert listing.integrations(core)[0].approvals_required == 1
        update_integration(core, "prod", edit, actor="UADMIN", validate=False)
    finally:
        holder.close()
        event.remove(engine, "connect", short_wait)
        engine.dispose()
    assert listing.integrations(core)[0].approvals_required == 2
    with core.sessions() as session:
        audited = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "integration.updated")
        )
    assert audited == 1


@pytest.mark.postgresql_only
def test_accounts_after_the_postgresql_server_restarted_are_answered(
    slack, slack_api, roleup, postgres_base
):
    """The store's server restarted under the running app (its pool full of connections the
    old server had): the next /accounts commands, signed Slack requests into the real app, are
    answered as before, on new connections."""
    from tests.support.seed import MANAGER, add_account
    from tests.support.slack_answers import _acked, _text

    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    for _ in range(3):
        assert "*alice*" in _text(_acked(slack.command("/accounts", "prod", user_id=MANAGER)))
    if postgres_base is not None:
        postgres_base._run("pg_ctl", "-D", str(postgres_base.data), "-m", "fast", "-w", "restart")
    else:  # a server of the caller's (ROLEUP_TEST_POSTGRES_URL): its sessions end as in one
        with psycopg_connect(roleup.core.engine) as other:
            other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    for _ in range(4):
        answer = _acked(slack.command("/accounts", "prod", user_id=MANAGER))
        assert "*alice*" in _text(answer), answer
