"""Fixtures for real `roleup serve` processes over one PostgreSQL (tests/e2e/instances.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine

from storage.db import make_engine
from tests.e2e.cluster import cluster  # noqa: F401 (a fixture)
from tests.e2e.instances import Instance, common_env, dedicated_postgres
from tests.support.postgres import TempPostgres
from tests.support.slack_api import FakeSlackApi


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
def aws(moto_url: str) -> Any:
    """IAM on the moto server the instances talk to, as an administrator outside RoleUp."""
    return boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)
