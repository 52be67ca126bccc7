"""Two real `roleup serve` processes over one PostgreSQL: each tick's sync runs exactly once,
killing the process that holds the job hands it to the other, and jobs follow edits live."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from bot.services.claims import slot_of
from storage.db import make_engine, make_sessionmaker
from storage.models import AuditEvent, Integration
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEST_KEY
from tests.e2e.instances import Instance, dedicated_postgres
from tests.support.postgres import TempPostgres
from tests.support.slack_api import FakeSlackApi

INTERVAL = 3  # seconds: ROLEUP_SYNC_INTERVAL_UNIT_SECONDS=1 makes "every 3" three seconds

pytestmark = pytest.mark.slow


@pytest.fixture
def instances_db(postgres_base: TempPostgres | None) -> Iterator[Engine]:
    engine = make_engine(dedicated_postgres(postgres_base))
    yield engine
    engine.dispose()


@pytest.fixture
def instance_env(instances_db: Engine, moto_url: str, slack_api: FakeSlackApi) -> dict[str, str]:
    return {
        "DATABASE_URL": instances_db.url.render_as_string(hide_password=False),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api.url,
        "ROLEUP_ENCRYPTION_KEYS": TEST_KEY,
        "AWS_ENDPOINT_URL": moto_url,
        "ROLEUP_SYNC_INTERVAL_UNIT_SECONDS": "1",
        "ROLEUP_RECONCILE_SECONDS": "1",
    }


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


def add_integration(engine: Engine, name: str, every: int) -> None:
    with make_sessionmaker(engine).begin() as session:
        session.add(Integration(name=name, created_by="UADMIN", sync_interval_minutes=every))


def scheduled_syncs(engine: Engine, integration: str) -> list[tuple[int, str]]:
    """(slot, instance) of every scheduled sync of the integration, from the audit log."""
    with engine.connect() as conn:
        details = conn.scalars(
            select(AuditEvent.detail)
            .where(AuditEvent.action == "sync.scheduled", AuditEvent.integration == integration)
            .order_by(AuditEvent.id)
        ).all()
    return [(int(d["slot"]), str(d["instance"])) for d in details]


def wait_until(condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def pid_of(instance: str) -> int:
    return int(instance.rsplit(":", 1)[1])


def test_each_tick_runs_once_and_a_killed_holder_hands_over(instances_db, start_instance):
    add_integration(instances_db, "prod", every=INTERVAL)
    first, second = start_instance("first"), start_instance("second")
    wait_until(lambda: len(scheduled_syncs(instances_db, "prod")) >= 5)

    holder_instance = scheduled_syncs(instances_db, "prod")[-1][1]
    in_first = pid_of(holder_instance) in first.pids()
    holder, survivor = (first, second) if in_first else (second, first)
    assert pid_of(holder_instance) in holder.pids()
    holder.kill()
    dead_slot = slot_of(datetime.now(UTC), INTERVAL)
    wait_until(lambda: max(s for s, _ in scheduled_syncs(instances_db, "prod")) >= dead_slot + 3)

    runs = scheduled_syncs(instances_db, "prod")
    per_slot = Counter(slot for slot, _ in runs)
    assert set(per_slot.values()) == {1}, f"a tick ran twice: {per_slot}"
    slots = sorted(per_slot)
    assert slots == list(range(slots[0], slots[-1] + 1)), f"a tick was missed: {slots}"
    after_kill = {instance for slot, instance in runs if slot > dead_slot}
    assert after_kill and all(pid_of(i) in survivor.pids() for i in after_kill)
    # The first tick after the holder died was run by the survivor: handed over in one interval.
    assert dead_slot + 1 in per_slot


def test_jobs_follow_integration_edits_without_restart(instances_db, start_instance):
    only = start_instance("only")
    add_integration(instances_db, "later", every=INTERVAL)
    wait_until(lambda: len(scheduled_syncs(instances_db, "later")) >= 2)

    with make_sessionmaker(instances_db).begin() as session:
        row = session.scalars(select(Integration).where(Integration.name == "later")).one()
        row.sync_interval_minutes = 100_000
        job = f"sync:{row.id}"
    wait_until(lambda: f"scheduled {job} every 100000s" in only.log.read_text())
    settled = len(scheduled_syncs(instances_db, "later"))
    # Three old ticks pass with no run: the running process took the new interval.
    resume = slot_of(datetime.now(UTC), INTERVAL) + 3
    wait_until(lambda: slot_of(datetime.now(UTC), INTERVAL) > resume)
    assert len(scheduled_syncs(instances_db, "later")) == settled
