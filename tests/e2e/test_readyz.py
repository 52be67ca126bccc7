"""GET /readyz over HTTP on both stores: the store, the scheduler judged from every instance's
claims, each job's last success and each integration's last sync."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial

import pytest
import requests
from sqlalchemy import select, update

from bot.app import create_app
from bot.scheduler import HOUSEKEEPING_JOB, JobFunctions, JobScheduler
from bot.services.claims import claim_slot, sync_job_id
from storage.models import JobClaim, utcnow
from tests.support import seed
from tests.support.live import LiveServer

TOKEN = "readyz-token-0123456789abcdef"


@pytest.fixture
def served(settings):
    started = []

    def serve(**changes):
        app = create_app(replace(settings, **changes))
        server = LiveServer(app.web).start()
        started.append((app, server))
        return app, server.url

    yield serve
    for app, server in started:
        server.stop()
        app.close()


def ready(url: str, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.get(f"{url}/readyz", headers=headers, timeout=10)
    return answer.status_code, answer.json()


def age_claims(core, seconds: int) -> None:
    with core.sessions.begin() as session:
        session.execute(update(JobClaim).values(claimed_at=utcnow() - timedelta(seconds=seconds)))


# An integration whose last sync failed.
add_integration = partial(
    seed.add_integration,
    key=None,
    **seed.UNATTENDED,
    last_sync_status="failed",
)


def quiet_jobs() -> JobFunctions:
    def fail(core):
        raise RuntimeError("the job broke")

    return JobFunctions(sync=lambda *a: None, health=fail, housekeeping=lambda core: None)


def test_ready_when_some_instance_ticked_lately_with_each_jobs_last_success(served):
    app, url = served()
    core = app.core
    prod = add_integration(core, "prod")
    # Another instance's scheduler did this work: this process runs none (scheduler off).
    other = JobScheduler(core, jobs=quiet_jobs(), instance="other-host:42")
    assert other.run_claimed(HOUSEKEEPING_JOB, 60, lambda slot: None)
    assert other.run_claimed("health", 86400, lambda slot: quiet_jobs().health(core))
    assert other.run_claimed(sync_job_id(prod), 60, lambda slot: None)

    code, body = ready(url)
    assert code == 200
    assert body["status"] == "ok" and body["store"] == "ok"
    scheduler = body["scheduler"]
    assert scheduler["status"] == "ok" and scheduler["this_instance"] == "off"
    jobs = scheduler["jobs"]
    assert jobs["housekeeping"]["last_success"] is not None
    assert jobs["health"]["last_tick"] is not None and jobs["health"]["last_success"] is None
    assert jobs["sync:prod"]["last_success"] is not None
    assert body["integrations"] == [
        {"name": "prod", "last_sync": None, "last_sync_status": "failed", "health": "unknown"}
    ]


def test_no_tick_for_too_long_is_a_scheduler_down(served):
    app, url = served(scheduler_stale_seconds=60)
    claim_slot(app.core, HOUSEKEEPING_JOB, 1, "gone-host:1")
    age_claims(app.core, 61)
    code, body = ready(url)
    assert code == 503
    assert (body["status"], body["store"], body["scheduler"]["status"]) == (
        "unavailable",
        "ok",
        "down",
    )
    age_claims(app.core, 59)
    assert ready(url)[0] == 200


def test_nothing_ever_claimed_and_no_scheduler_here_is_down(served):
    _, url = served()
    code, body = ready(url)
    assert code == 503 and body["scheduler"]["status"] == "down"
    assert body["scheduler"]["last_tick"] is None


def test_a_scheduler_just_started_here_is_starting_and_ready(served):
    app, url = served(scheduler_enabled=True)
    app.core.scheduler.start()
    code, body = ready(url)
    assert code == 200
    assert body["scheduler"]["this_instance"] == "running"
    assert body["scheduler"]["status"] in ("starting", "ok")


def test_the_store_down_is_503(served, tmp_path):
    _, url = served(database_url=f"sqlite:///{tmp_path}/no/such/dir/roleup.db")
    code, body = ready(url)
    assert code == 503
    assert body["store"] == "unreachable" and body["status"] == "unavailable"
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 503


def test_with_a_token_the_detail_needs_it_but_the_status_does_not(served):
    app, url = served(metrics_token=TOKEN)
    add_integration(app.core, "secretive")
    claim_slot(app.core, HOUSEKEEPING_JOB, 1, "host:1")
    code, body = ready(url)
    assert code == 200 and body["status"] == "ok"
    assert "integrations" not in body and "jobs" not in body["scheduler"]
    code, body = ready(url, TOKEN)
    assert [i["name"] for i in body["integrations"]] == ["secretive"]
    assert "housekeeping" in body["scheduler"]["jobs"]


def test_the_success_marks_of_a_removed_integrations_sync_are_pruned(served):
    from bot.services.claims import prune_claims, record_success

    app, _ = served()
    core = app.core
    kept = add_integration(core, "kept")
    for integration_id in (kept, kept + 1000):
        claim_slot(core, sync_job_id(integration_id), 5, "a")
        record_success(core, sync_job_id(integration_id), 5, "a")
    assert prune_claims(core, older_than=timedelta(days=2)) == 2
    with core.sessions() as session:
        jobs = set(session.scalars(select(JobClaim.job)))
    assert jobs == {sync_job_id(kept), "done:" + sync_job_id(kept)}
