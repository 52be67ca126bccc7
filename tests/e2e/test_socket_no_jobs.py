"""`roleup socket --no-jobs`, as `roleup serve --no-jobs`: a Socket Mode process that answers Slack
and claims no scheduled job, beside one without the flag that runs them all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from storage.models import JobClaim
from tests.e2e.instances import add_integration_with_own_user as add_integration
from tests.e2e.instances import pid_of, scheduled_syncs, wait_until
from tests.support.slack_api import FakeSlackApi
from tests.support.socket_mode import start_socket

pytestmark = pytest.mark.slow


def test_socket_no_jobs_claims_no_job_beside_a_socket_that_runs_them(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    slack_api: FakeSlackApi,
    aws: Any,
    own_db: Engine,
    own_env: dict[str, str],
    socket_mode_url: str,
) -> None:
    engine = own_db
    env = {
        **os.environ,
        **own_env,
        "SLACK_APP_TOKEN": "xapp-1-A0001-0000-socketmodetoken",
    }
    slack_api.overrides["apps.connections.open"] = lambda call: {"ok": True, "url": socket_mode_url}
    add_integration(engine, aws, "prod", every=1)

    quiet = start_socket(env, tmp_path / "quiet.log", "--no-jobs")
    request.addfinalizer(quiet.kill)
    slack_api.wait_for("apps.connections.open", timeout=60)
    assert "scheduled jobs are off" in (tmp_path / "quiet.log").read_text()

    busy = start_socket(env, tmp_path / "busy.log")
    request.addfinalizer(busy.kill)
    wait_until(lambda: len(scheduled_syncs(engine, "prod")) >= 3, timeout=60)
    assert quiet.poll() is None and busy.poll() is None
    # All along, the --no-jobs process was up and never claimed a tick of any job.
    with engine.connect() as conn:
        claimants = {pid_of(i) for i in conn.scalars(select(JobClaim.instance).distinct())}
    assert claimants == {busy.pid}
