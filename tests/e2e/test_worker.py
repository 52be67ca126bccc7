"""`roleup serve --no-jobs` beside `roleup worker` over one store, as the Procfile runs them: the
web process answers signed commands and runs no job, the worker runs each due job once and
posts what the jobs post, /readyz on the web judges the scheduler by the worker's ticks, and
SIGTERM stops the worker with status 0, from its first instants."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select, update

from storage.models import AuditEvent, Integration, JobClaim
from tests.e2e.instances import (
    Instance,
    Worker,
    catches,
    pid_of,
    scheduled_syncs,
    wait_until,
)
from tests.e2e.instances import add_integration_with_own_user as add_integration
from tests.support.cli import assert_one_line_failure, roleup_env, run_roleup
from tests.support.config import BOT_TOKEN, SIGNING_SECRET, TEST_KEY
from tests.support.sender import SlackSender
from tests.support.slack_api import FakeSlackApi

pytestmark = pytest.mark.slow

MANAGER = "UMANAGER"
INTERVAL = 2  # seconds (ROLEUP_SYNC_INTERVAL_UNIT_SECONDS=1)


def claimants(engine: Engine) -> set[int]:
    """The pids of every process that claimed a job tick."""
    with engine.connect() as conn:
        return {pid_of(i) for i in conn.scalars(select(JobClaim.instance).distinct())}


def accounts_reply(sender: SlackSender, slack_api: FakeSlackApi) -> str:
    """The listing: in the ack (as /accounts answers when the store is quick), else posted."""
    slack_api.reset()
    response = sender.command("/accounts", "prod", user_id=MANAGER)
    assert response.status_code == 200
    acked = response.json() if response.content else {}
    if acked.get("blocks"):
        return str(acked)
    (reply,) = slack_api.wait_for("response_url:/respond/cmd", timeout=30)
    return str(reply.params)


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    answer = requests.get(f"{url}/readyz", timeout=10)
    return answer.status_code, answer.json()


def test_the_worker_runs_the_jobs_once_while_a_no_jobs_web_answers(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    slack_api: FakeSlackApi,
    aws: Any,
    own_db: Engine,
    own_env: dict[str, str],
) -> None:
    engine, env = own_db, own_env
    aws.create_user(UserName="bob")
    add_integration(engine, aws, "prod", every=INTERVAL)
    with engine.begin() as conn:
        conn.execute(update(Integration).values(managers=[MANAGER]))

    web = Instance("web", env, tmp_path, options=["--no-jobs"]).start()
    request.addfinalizer(web.stop)
    sender = SlackSender(web.url, SIGNING_SECRET, slack_api.response_url_base)
    assert "bob" not in accounts_reply(sender, slack_api)  # answered, though nothing is synced
    # Several sync intervals and reconciles pass with the web alone: no job runs anywhere...
    time.sleep(3 * INTERVAL)
    assert claimants(engine) == set() and scheduled_syncs(engine, "prod") == []
    assert "scheduled jobs are off" in web.log.read_text()
    # ...and /readyz says so: nobody ticks, the web has no scheduler of its own.
    code, body = readyz(web.url)
    assert code == 503
    assert (body["scheduler"]["status"], body["scheduler"]["this_instance"]) == ("down", "off")

    worker = Worker("worker", env, tmp_path).start()
    request.addfinalizer(worker.terminate)
    wait_until(lambda: len(scheduled_syncs(engine, "prod")) >= 3)
    assert "bob" in accounts_reply(sender, slack_api)  # the worker's sync, the web's answer
    code, body = readyz(web.url)
    assert code == 200
    assert (body["scheduler"]["status"], body["scheduler"]["this_instance"]) == ("ok", "off")

    # What a job posts goes out from the worker: a change outside RoleUp reaches the channel.
    aws.create_user(UserName="mallory")
    [digest] = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params.get("channel") == "CPROD", timeout=60
    )
    assert "`mallory`: account created" in str(digest.params["blocks"])

    assert worker.terminate() == 0
    assert "worker stopped" in worker.log.read_text()
    runs = scheduled_syncs(engine, "prod")
    assert set(Counter(slot for slot, _ in runs).values()) == {1}, "a tick ran twice"
    assert {pid_of(instance) for _, instance in runs} == {worker.pid}
    assert claimants(engine) == {worker.pid}  # every job, not only syncs: none in the web
    with engine.connect() as conn:
        drift = conn.scalars(select(AuditEvent.outcome).where(AuditEvent.action == "sync.drift"))
        assert list(drift) == ["ok"]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_stop_in_the_workers_first_instants_is_a_clean_stop(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    aws: Any,
    own_db: Engine,
    own_env: dict[str, str],
    stop_signal: signal.Signals,
) -> None:
    engine, env = own_db, own_env
    add_integration(engine, aws, "prod", every=INTERVAL)
    worker = Worker("worker", env, tmp_path)
    process = worker.launch()
    request.addfinalizer(worker.terminate)
    # The signal goes the moment the worker handles it: before it imported the CLI, built its
    # store or scheduler. Python's default for SIGTERM would be death by the signal (-15, 143).
    wait_until(lambda: process.poll() is not None or catches(process.pid, signal.SIGTERM))
    process.send_signal(stop_signal)
    assert process.wait(timeout=60) == 0, worker.log.read_text()
    log = worker.log.read_text()
    assert "worker stopped before it started its jobs" in log
    assert Worker.STARTED not in log and "Traceback" not in log
    with engine.connect() as conn:  # no job ran, not even in part
        assert conn.scalars(select(JobClaim)).all() == []
        assert conn.scalars(select(AuditEvent.action)).all() == []


def test_a_worker_that_cannot_start_is_a_process_exiting_1_with_one_line() -> None:
    # The refusals themselves are tests/services/test_worker.py's, in-process; here the process:
    # its status, and all it writes (logging at -v included) without the store's password.
    env = roleup_env(
        DATABASE_URL="postgresql://roleup@127.0.0.1:1/roleup?password=W0rdSECRET",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        ROLEUP_ENCRYPTION_KEYS=TEST_KEY,
        ROLEUP_SCHEDULER="on",
    )
    result = run_roleup("-v", "worker", env=env)
    assert result.returncode == 1
    assert "SECRET" not in result.stdout + result.stderr
    assert "roleup: cannot reach the database" in result.stderr
    assert_one_line_failure(run_roleup("worker", env=env), "cannot reach")
