"""Real `roleup serve` processes on either store, with AWS reached through a recording proxy.

On PostgreSQL two instances share one database (as behind a load balancer); on SQLite, which
serves one machine, one instance runs two gunicorn workers over one database file. Either way
`senders` alternates between two processes, and `wire` records every AWS call they make, so a
test can count the calls a double run would repeat."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.e2e.instances import Instance, common_env
from tests.support.aws_wire import AwsWire
from tests.support.config import SIGNING_SECRET
from tests.support.sender import SlackSender
from tests.support.slack_api import FakeSlackApi


@dataclass
class Cluster:
    engine: Engine
    instances: list[Instance]
    senders: list[SlackSender]  # two, each to its own process where the store allows
    wire: AwsWire


@pytest.fixture
def cluster(
    backend: str, own_db: Engine, tmp_path: Path, moto_url: str, slack_api: FakeSlackApi
) -> Iterator[Cluster]:
    engine = own_db
    wire = AwsWire(moto_url).start()
    env = {
        **common_env(wire.url, slack_api),
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
    }
    if backend == "postgresql":
        instances = [Instance(name, env, tmp_path) for name in ("first", "second")]
    else:
        instances = [Instance("only", env, tmp_path, workers=2)]
    started: list[Instance] = []
    try:
        for instance in instances:
            started.append(instance.start())
        processes = instances if len(instances) == 2 else instances * 2
        senders = [
            SlackSender(p.url, SIGNING_SECRET, slack_api.response_url_base) for p in processes
        ]
        yield Cluster(engine, instances, senders, wire)
    finally:
        for instance in started:
            instance.stop()
        wire.stop()
