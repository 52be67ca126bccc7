"""Two real `roleup serve` processes over one PostgreSQL: each tick's sync runs exactly once,
killing the process that holds the job hands it to the other, and jobs follow edits live."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.services.claims import slot_of
from storage.db import make_engine, make_sessionmaker
from storage.migrate import upgrade
from storage.models import AuditEvent, Integration
from tests.e2e.instances import (
    Instance,
    add_integration_with_own_user,
    common_env,
    pid_of,
    scheduled_syncs,
    syncs,
    wait_until,
)

INTERVAL = 4  # seconds: ROLEUP_SYNC_INTERVAL_UNIT_SECONDS=1 makes "every 4" four seconds

pytestmark = pytest.mark.slow


def test_each_tick_runs_once_and_a_killed_holder_hands_over(instances_db, aws, start_instance):
    add_integration_with_own_user(instances_db, aws, "prod", every=INTERVAL)
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
    # The scheduled runs were real syncs of the moto account, and they worked (the run the kill
    # cut off and the one under way as we read may not have finished theirs).
    outcomes = syncs(instances_db, "prod")
    assert len(outcomes) >= len(runs) - 2 and set(outcomes) == {"ok"}


def test_jobs_follow_integration_edits_without_restart(instances_db, aws, start_instance):
    only = start_instance("only")
    add_integration_with_own_user(instances_db, aws, "later", every=INTERVAL)
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


def test_outside_changes_reach_the_channel_in_one_digest_once(
    instances_db, aws, slack_api, start_instance
):
    aws.create_user(UserName="bob")
    add_integration_with_own_user(instances_db, aws, "prod", every=INTERVAL)
    start_instance("first"), start_instance("second")
    wait_until(lambda: len(syncs(instances_db, "prod")) >= 2)  # the first sync is behind us

    aws.create_user(UserName="mallory")
    aws.delete_user(UserName="bob")
    [digest] = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params.get("channel") == "CPROD", timeout=60
    )
    seen = len(syncs(instances_db, "prod"))
    wait_until(lambda: len(syncs(instances_db, "prod")) >= seen + 3)

    digests = [c for c in slack_api.calls_to("chat.postMessage") if c.params["channel"] == "CPROD"]
    assert digests == [digest]
    assert digest.params["text"] == "2 changes made outside RoleUp in AWS integration prod"
    shown = "\n".join(block["text"]["text"] for block in digest.params["blocks"])
    assert "`mallory`: account created" in shown
    assert "`bob`: account deleted" in shown
    with instances_db.connect() as conn:
        drift = conn.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "sync.drift")
        ).all()
    assert [d["count"] for d in drift] == [2]


def test_sqlite_single_instance_with_two_workers_runs_each_tick_once(
    tmp_path, aws, moto_url, slack_api
):
    url = f"sqlite:///{tmp_path / 'roleup.db'}"
    upgrade(url)
    engine = make_engine(url)
    add_integration_with_own_user(engine, aws, "prod", every=INTERVAL)
    env = {**common_env(moto_url, slack_api), "DATABASE_URL": url}
    # Two gunicorn workers: two schedulers in one instance, sharing the SQLite file.
    instance = Instance("sqlite", env, tmp_path, workers=2).start()
    try:
        wait_until(lambda: len(scheduled_syncs(engine, "prod")) >= 4)
        assert len(instance.pids()) == 3  # the master and its two workers, each scheduling
    finally:
        instance.stop()
    per_slot = Counter(slot for slot, _ in scheduled_syncs(engine, "prod"))
    outcomes = syncs(engine, "prod")
    engine.dispose()
    assert set(per_slot.values()) == {1}, f"a tick ran twice: {per_slot}"
    assert "ok" in outcomes
