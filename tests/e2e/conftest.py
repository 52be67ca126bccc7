"""Fixtures for real `roleup` processes (tests/e2e/instances.py), over one PostgreSQL or over the
test's own store, and for the app on the moto server (tests/support/moto_server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from storage.db import make_engine
from tests.e2e.cluster import cluster  # noqa: F401 (a fixture)
from tests.e2e.instances import Instance, common_env, dedicated_postgres, own_database
from tests.support.aws_wire import recording_wire  # noqa: F401 (the fixture `wire`)
from tests.support.moto_server import aws, settings  # noqa: F401 (fixtures)
from tests.support.postgres import TempPostgres
from tests.support.slack_api import FakeSlackApi
from tests.support.socket_mode import socket_mode, socket_mode_url  # noqa: F401 (fixtures)


@pytest.fixture
def instances_db(postgres_base: TempPostgres | None) -> Iterator[Engine]:
    engine = make_engine(dedicated_postgres(postgres_base))
    yield engine
    engine.dispose()


@pytest.fixture
def instance_env(instances_db: Engine, moto_url: str, slack_api: FakeSlackApi) -> dict[str, str]:
    url = instances_db.url.render_as_string(hide_password=False)
    return {**common_env(moto_url, slack_api), "DATABASE_URL": url}


@pytest.fixture
def start_instance(
    instance_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[str], Instance]]:
    started: list[Instance] = []

    def start(name: str) -> Instance:
        instance = Instance(name, instance_env, tmp_path).start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture
def own_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated store of the test's own on `--db`'s backend, for processes the test starts."""
    engine = make_engine(own_database(backend, request, tmp_path))
    yield engine
    engine.dispose()


@pytest.fixture
def own_env(own_db: Engine, moto_url: str, slack_api: FakeSlackApi) -> dict[str, str]:
    """What a `roleup` process needs to run over `own_db`, the moto server and the Slack
    stand-in."""
    url = own_db.url.render_as_string(hide_password=False)
    return {**common_env(moto_url, slack_api), "DATABASE_URL": url}
