"""`roleup worker --metrics-port`: a real worker serves what its jobs count on GET /metrics, in
the format and behind the token of `roleup serve`, and keeps its values to itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from tests.e2e.instances import Worker, pid_of, scheduled_syncs, wait_until
from tests.e2e.instances import add_integration_with_own_user as add_integration
from tests.support.postgres import free_port

pytestmark = pytest.mark.slow
TOKEN = "worker-metrics-token-0123456789"


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def test_a_worker_serves_its_job_metrics_behind_the_token(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    aws: Any,
    own_db: Engine,
    own_env: dict[str, str],
) -> None:
    engine = own_db
    shared = tmp_path / "multiproc"  # as if the host set it for serve's workers too
    shared.mkdir()
    env = {
        **own_env,
        "ROLEUP_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    aws.create_user(UserName="bob")
    add_integration(engine, aws, "prod", every=2)
    port = free_port()
    worker = Worker("worker", env, tmp_path, options=["--metrics-port", str(port)]).start()
    request.addfinalizer(worker.terminate)
    url = f"http://127.0.0.1:{port}/metrics"
    assert f"worker serves GET /metrics on port {port}" in worker.log.read_text()
    wait_until(lambda: len(scheduled_syncs(engine, "prod")) >= 2, timeout=60)

    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        refused = requests.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401 and refused.json() == {
            "error": "a bearer token is required"
        }
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert "roleup_" not in refused.text
    answer = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = answer.text
    synced = sample(text, "roleup_jobs_total", job="sync", outcome="ok")
    # What its jobs counted, every one of them this worker's (read after the scrape).
    runs = [i for _, i in scheduled_syncs(engine, "prod") if pid_of(i) == worker.pid]
    assert synced is not None and 1 <= synced <= len(runs)
    durations = sample(text, "roleup_sync_duration_seconds_count", integration="prod", outcome="ok")
    assert durations is not None and durations >= 1
    assert (sample(text, "roleup_aws_calls_total", service="iam", operation="ListUsers") or 0) >= 1
    # The store's gauges, as serve shows them.
    assert sample(text, "roleup_accounts", integration="prod") == 2  # bob and roleup-prod
    assert sample(text, "roleup_store_up") == 1

    assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 404
    # One process: nothing written where serve's workers add theirs up (and serve empties it).
    assert list(shared.iterdir()) == []

    assert worker.terminate() == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=10)
