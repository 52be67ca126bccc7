"""A real `roleup serve` with two gunicorn workers: whichever worker answers GET /metrics, the
counts are both workers' added up, and its JSON log lines parse and hold no bookkeeping noise."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.services.aws import key_hint, seal_key_pair
from storage.crypto import SecretBox
from storage.db import make_engine, make_sessionmaker
from storage.models import AuditEvent, Integration
from tests.e2e.instances import Instance, common_env
from tests.support import waiting
from tests.support.config import TEST_KEY

pytestmark = pytest.mark.slow
TOKEN = "workers-metrics-token-0123456789"


# Several worker processes start: poll less often, wait longer.
wait_until = partial(waiting.wait_until, timeout=120.0, every=0.3)


def sync_instances(sessions: Any) -> list[str]:
    with sessions() as session:
        details = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "sync.scheduled")
        ).all()
    return [str(d["instance"]) for d in details]


def ok_syncs(sessions: Any) -> int:
    with sessions() as session:
        rows = session.scalars(
            select(AuditEvent.id).where(AuditEvent.action == "sync", AuditEvent.outcome == "ok")
        ).all()
    return len(rows)


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def test_a_scrape_adds_up_both_workers(database_url, moto_url, slack_api, tmp_path, aws):
    aws.create_user(UserName="roleup-workers")
    key = aws.create_access_key(UserName="roleup-workers")["AccessKey"]
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        row = Integration(
            name="workers",
            created_by="UADMIN",
            sync_interval_minutes=2,  # every 2 seconds (ROLEUP_SYNC_INTERVAL_UNIT_SECONDS=1)
            approvals_channel="CWORKERS",
            access_key_hint=key_hint(key["AccessKeyId"]),
            credentials_ciphertext=seal_key_pair(
                SecretBox([TEST_KEY]), key["AccessKeyId"], key["SecretAccessKey"]
            ),
        )
        session.add(row)
        session.flush()
        integration_id = row.id
    env = {
        **common_env(moto_url, slack_api),
        "DATABASE_URL": database_url,
        "ROLEUP_LOG_FORMAT": "json",
        "ROLEUP_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    server = Instance("two-workers", env, tmp_path, workers=2).start()
    try:
        # Both workers run the scheduler and claim ticks: wait until each has run syncs.
        pids = server.pids()
        wait_until(lambda: len({i for i in sync_instances(sessions)}) >= 2)
        assert {int(i.rsplit(":", 1)[1]) for i in sync_instances(sessions)} <= pids
        # Stop the syncs, let the last one finish, then every count is settled.
        with sessions.begin() as session:
            session.get_one(Integration, integration_id).sync_interval_minutes = 100_000
        settled = ok_syncs(sessions)
        wait_until(lambda: _unchanged_for(lambda: ok_syncs(sessions), 4.0))
        settled = ok_syncs(sessions)
        assert settled >= 2

        answers = [
            requests.get(
                f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
            )
            for _ in range(6)  # several scrapes: gunicorn hands them to either worker
        ]
        for answer in answers:
            assert answer.status_code == 200
            text = answer.text
            count = sample(
                text, "roleup_sync_duration_seconds_count", integration="workers", outcome="ok"
            )
            assert count == settled
            jobs = sample(text, "roleup_jobs_total", job="sync", outcome="ok")
            assert jobs == len(sync_instances(sessions))
            assert (
                sample(text, "roleup_aws_calls_total", service="iam", operation="ListUsers")
                >= settled
            )
        assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 401
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["scheduler"]["status"] == "ok"
    finally:
        server.stop()
        engine.dispose()

    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line, gunicorn's too, is JSON
    messages = [entry["message"] for entry in parsed]
    assert any("Booting worker" in m for m in messages)
    assert not [m for m in messages if "Adding job" in m or "Added job" in m]
    assert not [m for m in messages if "will be unused" in m]
    assert key["SecretAccessKey"] not in server.log.read_text()


def _unchanged_for(read: Callable[[], int], seconds: float) -> bool:
    before = read()
    time.sleep(seconds)
    return read() == before
