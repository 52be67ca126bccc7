"""The shared fixtures, for every folder: the store on SQLite and PostgreSQL (`--db`), AWS
through moto (in-process, or a moto server over HTTP) with its gaps filled and its calls
recorded, the Slack Web API stand-in, the core and the whole app behind signed HTTP, and
`roleup ...` in this process. A folder's conftest holds only what that folder alone needs."""

from __future__ import annotations

import io
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.cli import main
from bot.services.aws import AwsClients, seal_key_pair
from bot.services.container import Core
from bot.settings import Settings
from storage.crypto import SecretBox
from storage.db import make_engine
from storage.migrate import upgrade
from storage.models import Base, Integration
from tests.support.aws_calls import AwsCalls, AwsFaults, SimulatedPermissions
from tests.support.cli import Result
from tests.support.config import BOT_TOKEN, SIGNING_SECRET, TEST_KEY
from tests.support.live import LiveServer
from tests.support.postgres import TempPostgres, free_port
from tests.support.seed import MakeIntegration
from tests.support.sender import SlackSender
from tests.support.slack_api import FakeSlackApi

__all__ = ["BOT_TOKEN", "SIGNING_SECRET", "TEST_KEY"]  # also importable from here, as before

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BACKENDS = ("sqlite", "postgresql")
# How long a test's app gives the work its requests acked to end, at teardown (the `roleup`
# fixture): long enough for what follows an ack, short enough for work a test held on purpose.
TEARDOWN_GRACE = 2.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default=os.environ.get("ROLEUP_TEST_DB", "both"),
        choices=["sqlite", "postgresql", "both"],
        help="which store the database tests run on (default: both)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db")
        backends = BACKENDS if chosen == "both" else (chosen,)
        if metafunc.definition.get_closest_marker("postgresql_only"):
            backends = tuple(b for b in backends if b == "postgresql")
        if backends:
            metafunc.parametrize("backend", backends, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A PostgreSQL-only test is not collected at all when only SQLite was asked for (never
    reported as skipped: with both stores, as CI runs, it always runs)."""
    if config.getoption("--db") != "sqlite":
        return
    kept = [i for i in items if not i.get_closest_marker("postgresql_only")]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


# --- AWS --------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in a test can reach real AWS, whatever the machine's environment holds."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(autouse=True)
def _no_wait_for_moto_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto has the credential report ready at the second ask: the one-second backoff
    `credential_report.fetch` waits before it (for AWS) only slowed each review test down. A
    test of the backoff passes its own `sleep` and clock, as before."""
    from bot.services import credential_report

    defaults = credential_report.fetch.__kwdefaults__
    assert defaults is not None and "sleep" in defaults
    monkeypatch.setitem(defaults, "sleep", lambda seconds: None)


@pytest.fixture(scope="session")
def _boto3_session() -> Any:
    """One boto3 session for the tests' own clients (`iam`, `boto3.client(...)`) for the run:
    a session loads AWS's service models and registers its event handlers when made, and
    moto's mock would otherwise drop boto3's default one at each start. Nothing of a test goes
    in the session (its clients are the test's own), and moto's state is still new per test.
    moto is imported first: it adds its stub to botocore's built-in handlers, which a session
    copies when made."""
    import boto3
    import moto.core.models  # noqa: F401

    return boto3.session.Session()


@pytest.fixture
def mocked_aws(_boto3_session: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import boto3
    from moto import mock_aws

    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", _boto3_session)
        yield


@pytest.fixture
def iam(mocked_aws: None) -> Any:
    import boto3

    return boto3.client("iam", region_name="us-east-1")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server over HTTP, for end-to-end tests (point AWS_ENDPOINT_URL at it)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_url(moto_server: str) -> Iterator[str]:
    """The moto server, empty before the test and emptied after it. Before too: the server
    runs in this process and shares moto's backends with in-process `mock_aws` (the demo's, a
    unit test's), which leave their accounts behind when they stop."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    yield moto_server
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)


@pytest.fixture
def moto_gaps() -> Iterator[SimulatedPermissions]:
    """moto 5 lacks service-specific credentials and the policy simulator: the demo's fillers
    answer as AWS does for a user with none, and as the simulator does for a principal allowed
    everything but `denied` (both in-process and in the moto server thread). Autouse in
    tests/services and tests/security; elsewhere a module asks for it."""
    from bot.demo.moto_gaps import fill_moto_gaps

    permissions = SimulatedPermissions()
    restore = fill_moto_gaps(
        lambda: permissions.denied,
        keep_password_reset=False,
        evaluate_policies=lambda: permissions.evaluate,
    )
    yield permissions
    restore()


def _record_aws_calls(calls: AwsCalls, monkeypatch: pytest.MonkeyPatch) -> None:
    original = AwsClients._client

    def recording(self: AwsClients, *args: Any, **kwargs: Any) -> Any:
        return calls.attach(original(self, *args, **kwargs))

    monkeypatch.setattr(AwsClients, "_client", recording)
    # ServiceFailure would otherwise be retried by botocore's standard mode with backoff.
    monkeypatch.setattr("bot.services.aws.CONCURRENT_BACKOFF_SECONDS", 0.0)


@pytest.fixture
def aws_calls(core: Core, monkeypatch: pytest.MonkeyPatch) -> AwsCalls:
    """Records (and can fail) every call of every client `core.aws` builds."""
    calls = AwsCalls()
    _record_aws_calls(calls, monkeypatch)
    return calls


@pytest.fixture
def aws_faults(monkeypatch: pytest.MonkeyPatch) -> AwsFaults:
    """Records and can fail every AWS call of every client any AwsClients builds (the app's,
    in its listener threads, included)."""
    calls = AwsFaults()
    _record_aws_calls(calls, monkeypatch)
    return calls


# --- the store -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_base() -> Iterator[TempPostgres | None]:
    if os.environ.get("ROLEUP_TEST_POSTGRES_URL"):
        yield None
        return
    server = TempPostgres()
    server.start()
    yield server
    server.stop()


def new_database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """An empty database (no schema) on the backend, on the run's PostgreSQL server if needed."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'roleup.db'}"
    server: TempPostgres | None = request.getfixturevalue("postgres_base")
    name = f"roleup_test_{uuid.uuid4().hex[:8]}"
    if server is not None:
        return server.create_database(name)
    import psycopg

    base = os.environ["ROLEUP_TEST_POSTGRES_URL"]
    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def migrated_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """One migrated database per backend for the whole run (emptied after each test)."""
    url = new_database_url(backend, tmp_path_factory, request)
    upgrade(url)
    return url


@pytest.fixture
def fresh_database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """A new, empty database without the schema (for `roleup db upgrade` and the like)."""
    return new_database_url(backend, tmp_path_factory, request)


def empty_database(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            return
        # A test writes to a few of the tables: one read finds them, and only they are emptied
        # (children first, as listed), instead of a DELETE on every table after every test.
        written = set(conn.scalars(text(_WRITTEN_TABLES)))
        for table in tables:
            if table in written:
                conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("DELETE FROM sqlite_sequence"))


_WRITTEN_TABLES = " UNION ALL ".join(
    f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM {t.name})" for t in Base.metadata.sorted_tables
)


@pytest.fixture(scope="session")
def _engines() -> Iterator[dict[str, Engine]]:
    """One engine per database for the run, so SQLAlchemy compiles each statement once (its
    compiled-statement cache is the engine's: a new engine a test compiled all again, about a
    tenth of the tests' CPU time). Each test still ends with the engine disposed, so no
    connection outlives it."""
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def run_engine(engines: dict[str, Engine], url: str) -> Engine:
    if url not in engines:
        engines[url] = make_engine(url)
    return engines[url]


def _run_engines(engines: dict[str, Engine]) -> Any:
    """While it lasts, `bot.app` builds each core on the run's engine for its database."""
    from bot import app

    return mock.patch.object(app, "make_engine", lambda url: run_engine(engines, url))


@pytest.fixture
def database_url(migrated_url: str, _engines: dict[str, Engine]) -> Iterator[str]:
    yield migrated_url
    engine = run_engine(_engines, migrated_url)
    try:
        empty_database(engine)
    finally:
        engine.dispose()


@pytest.fixture
def engine(core: Core) -> Engine:
    """The core's own engine: a statement a test watches is one the services send."""
    return core.engine


@pytest.fixture
def sessions(core: Core) -> sessionmaker[Session]:
    return core.sessions


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([TEST_KEY])


# --- Slack -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _slack_api_server() -> Iterator[FakeSlackApi]:
    api = FakeSlackApi().start()
    yield api
    api.stop()


@pytest.fixture
def slack_api(_slack_api_server: FakeSlackApi) -> Iterator[FakeSlackApi]:
    _slack_api_server.reset()
    yield _slack_api_server
    _slack_api_server.reset()


@pytest.fixture
def settings(database_url: str, slack_api: FakeSlackApi) -> Settings:
    return Settings(
        database_url=database_url,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack_api.url,
        encryption_keys=(TEST_KEY,),
        admins=frozenset({"UADMIN"}),
        public_url="http://localhost:3000",
        scheduler_enabled=False,
    )


@pytest.fixture
def core(settings: Settings, _engines: dict[str, Engine]) -> Iterator[Core]:
    """The store, key box and AWS clients without Slack (what the CLI and the jobs use), built
    as `roleup` builds it; `engine` and `sessions` are its own (the engine is the run's for
    that database, see `_engines`, disposed after the test)."""
    from bot import app

    engine = run_engine(_engines, settings.database_url)
    with mock.patch.object(app, "make_engine", lambda url: engine):
        built = app.create_core(settings)
    assert built.engine is engine
    yield built
    built.engine.dispose()


@pytest.fixture
def server_core(core: Core, moto_url: str) -> Core:
    """The same core, talking to the moto server over HTTP."""
    core.aws = AwsClients(endpoint_url=moto_url)
    return core


@pytest.fixture
def make_integration(core: Core) -> MakeIntegration:
    def make(name: str = "prod", *, read_only: bool = False, path_prefix: str = "/") -> Integration:
        with core.sessions.begin() as session:
            integration = Integration(
                name=name,
                read_only=read_only,
                path_prefix=path_prefix,
                access_key_hint="AKIA…MPLE",
                credentials_ciphertext=seal_key_pair(
                    core.require_box(), ACCESS_KEY_ID, SECRET_ACCESS_KEY
                ),
                created_by="UADMIN",
            )
            session.add(integration)
        return integration

    return make


@pytest.fixture
def roleup(settings: Settings, _engines: dict[str, Engine]) -> Iterator[Any]:
    from bot import app as wiring

    with _run_engines(_engines):
        app = wiring.create_app(settings)
    yield app
    # Work the test's requests acked and left running (telling the requester, publishing a
    # home) ends before the store is emptied: cut off, it would go on in its thread, find its
    # rows gone and post that to the next test's Slack stand-in.
    app.close(grace=TEARDOWN_GRACE)


@pytest.fixture
def live(roleup: Any) -> Iterator[LiveServer]:
    server = LiveServer(roleup.web).start()
    yield server
    server.stop()


@pytest.fixture
def slack(live: LiveServer, slack_api: FakeSlackApi) -> SlackSender:
    return SlackSender(live.url, SIGNING_SECRET, slack_api.response_url_base)


# --- the CLI ---------------------------------------------------------------------------
@pytest.fixture
def cli(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    _engines: dict[str, Engine],
) -> Iterator[Callable[..., Result]]:
    """Runs `roleup ...` in this process against the test database; stdin is a pipe. Its core
    gets the run's engine for the database it names (see `_engines`), as `core` does."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ROLEUP_ENCRYPTION_KEYS", TEST_KEY)
    # main() sets up the process's logging; put it back so later tests see theirs.
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()

    def run(*argv: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        with _run_engines(_engines):
            code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield run
    root.handlers = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
