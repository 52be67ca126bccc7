"""The scheduler's grants job: a due grant is removed once and both people hear of it; the
third failure in a row is reported in the approvals channel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.scheduler import GRANTS_JOB, JobScheduler, tend_grants
from bot.services import requesting
from bot.services.grants import Term
from bot.services.sync import sync_integration
from storage.models import Account, Grant, utcnow
from tests.support.seed import add_integration

PERSON = "UALICE01"


@pytest.fixture
def due_grant(roleup, iam):
    core = roleup.core
    integration_id = add_integration(core)
    iam.create_user(UserName="alice")
    iam.create_group(GroupName="ops")
    sync_integration(core, integration_id, actor="test")
    with core.sessions.begin() as session:
        session.execute(update(Account).values(slack_user_id=PERSON))
    requesting.request_set_groups(
        core,
        actor="UMANAGER",
        integration_id=integration_id,
        user_name="alice",
        wanted=["ops"],
        term=Term(seconds=3600),
    )
    with core.sessions.begin() as session:  # an hour later
        session.execute(update(Grant).values(ends_at=utcnow() - timedelta(seconds=1)))
    return core


def dms(slack_api) -> dict[str, str]:
    return {
        call.params["channel"]: str(call.params)
        for call in slack_api.calls_to("chat.postMessage")
        if not call.params["channel"].startswith("C")
    }


def test_a_due_grant_is_removed_and_the_person_and_requester_are_told(due_grant, iam, slack_api):
    tend_grants(due_grant, "instance-a")
    tend_grants(due_grant, "instance-b")
    assert iam.list_groups_for_user(UserName="alice")["Groups"] == []
    told = dms(slack_api)
    assert set(told) == {PERSON, "UMANAGER"}
    assert "Access to *ops* for IAM user *alice* in *prod* has ended (expired)" in told[PERSON]
    assert len(slack_api.calls_to("chat.postMessage")) == 2  # once, not once per instance


def test_the_third_failure_is_reported_in_the_approvals_channel(
    due_grant, iam, slack_api, monkeypatch
):
    def failing(*args, **kwargs):
        from bot.services.errors import AwsError

        raise AwsError("AWS is unavailable right now (ServiceFailure).")

    monkeypatch.setattr("bot.services.lifecycle.apply_group_change", failing)
    for _ in range(3):
        tend_grants(due_grant, "instance-a")
        with due_grant.sessions.begin() as session:  # the retry delay has passed
            session.execute(update(Grant).values(next_attempt_at=None))
    posted = [c.params for c in slack_api.calls_to("chat.postMessage")]
    assert [p["channel"] for p in posted] == ["CAPPROVALS"]
    assert "could not end the grant of *ops* for IAM user *alice*" in str(posted[0])
    assert "after 3 attempts" in str(posted[0])


def test_the_scheduler_runs_the_grants_job_every_20_seconds(roleup):
    scheduler = JobScheduler(roleup.core)
    scheduler.start()
    try:
        job = scheduler.scheduler.get_job(GRANTS_JOB)
        assert job is not None and job.trigger.interval_length == 20
    finally:
        scheduler.shutdown()


def test_an_unacknowledged_break_glass_grant_is_announced_again_once(roleup, iam, slack_api):
    from bot.services.requesting import BreakGlassAsk, request_breakglass

    core = roleup.core
    integration_id = add_integration(core, breakglass=[PERSON])
    iam.create_user(UserName="alice")
    iam.create_group(GroupName="admins")
    sync_integration(core, integration_id, actor="test")
    with core.sessions.begin() as session:
        session.execute(update(Account).values(slack_user_id=PERSON))
    request_breakglass(core, actor=PERSON, ask=BreakGlassAsk("admins", 3600, "<!channel> fire"))
    with core.sessions.begin() as session:  # last announced 4 h ago, still active
        session.execute(
            update(Grant).values(
                announced_at=utcnow() - timedelta(hours=4), ends_at=utcnow() + timedelta(hours=3)
            )
        )
    tend_grants(core, "instance-a")
    tend_grants(core, "instance-b")
    (posted,) = [c.params for c in slack_api.calls_to("chat.postMessage")]
    assert posted["channel"] == "CAPPROVALS"
    assert "still not acknowledged" in str(posted) and "&lt;!channel&gt; fire" in str(posted)
