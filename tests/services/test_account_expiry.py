"""Expiring accounts, the service and its job with an injected clock: scheduled at onboarding,
reminded 7 days and 1 day before, offboarded at 00:00 UTC of the date with the checklist in the
approvals channel, extended, ended quietly when deleted outside RoleUp, and retried with the
third failure reported."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.scheduler import tend_account_expiries
from bot.services import account_ending, account_expiry, approvals, requesting
from bot.services.errors import AwsError, InvalidInput, NotAllowed, Refused
from bot.services.policy import EXPIRE_ACCOUNT, EXTEND_ACCOUNT
from bot.services.sync import sync_integration
from storage.models import AccountExpiry, AuditEvent, Integration, Request, utcnow
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.seed import add_integration

PERSON = "UALICE01"
DAYS = 30


def midnight(days: int) -> datetime:
    """00:00 UTC `days` from today."""
    today = utcnow().astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=days), datetime.min.time(), tzinfo=UTC)


def onboard(core, integration_id, name="alice", *, expires=None):
    return requesting.request_onboard(
        core,
        actor="UMANAGER",
        integration_id=integration_id,
        ask=requesting.OnboardAsk(
            username=name,
            password=GOOD_PASSWORD,
            slack_user_id=PERSON,
            account_expires=expires or midnight(DAYS),
        ),
    )


@pytest.fixture
def prod(roleup, iam):
    return add_integration(roleup.core)


@pytest.fixture
def expiring(roleup, prod):
    """alice, onboarded by UMANAGER until 00:00 UTC 30 days from today."""
    request = onboard(roleup.core, prod)
    assert request.state == "done"
    with roleup.core.sessions() as session:
        return session.scalars(select(AccountExpiry)).one()


def expiry_of(core) -> AccountExpiry:
    with core.sessions() as session:
        return session.scalars(select(AccountExpiry)).one()


def posts(slack_api) -> list[dict]:
    return [c.params for c in slack_api.calls_to("chat.postMessage")]


def actions(core) -> list[str]:
    with core.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like("account_expiry.%"))
                .order_by(AuditEvent.id)
            )
        )


# --- bounds ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("2020-01-01", "tomorrow (UTC) or later"),
        ("today", "Pick the date from the calendar"),
        ("2026-02-30", "Pick the date from the calendar"),
        ("9999-12-31", "within 365 days"),
    ],
)
def test_a_past_unreadable_or_too_far_date_is_one_sentence(raw, message):
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        account_expiry.parse_date(raw)
    assert caught.value.field == "account_expires"


def test_tomorrow_and_365_days_ahead_are_the_bounds():
    now = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    assert account_expiry.parse_date("2026-12-02", now) == datetime(2026, 12, 2, tzinfo=UTC)
    assert account_expiry.parse_date("2027-12-01", now) == datetime(2027, 12, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        account_expiry.parse_date("2027-12-02", now)
    with pytest.raises(InvalidInput):
        account_expiry.parse_date("2026-12-01", now)
    assert account_expiry.parse_date(None, now) is None


# --- the whole life -------------------------------------------------------------------------
def test_scheduled_then_reminded_7d_then_1d_then_offboarded_once(roleup, expiring, iam, slack_api):
    core = roleup.core
    assert (expiring.state, expiring.expires_at) == ("scheduled", midnight(DAYS))
    assert expiring.user_id == iam.get_user(UserName="alice")["User"]["UserId"]
    assert expiring.slack_user_id == PERSON and expiring.requester == "UMANAGER"
    with core.sessions() as session:
        created = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "request.created")
        ).one()
    assert created.detail["account_expires"] == midnight(DAYS).strftime("%Y-%m-%d")

    assert account_ending.remind_due(core, now=midnight(DAYS - 8)) == []
    (week,) = account_ending.remind_due(core, now=midnight(DAYS - 7) + timedelta(hours=1))
    assert week.before == "7d" and week.expiry.user_name == "alice"
    assert account_ending.remind_due(core, now=midnight(DAYS - 7) + timedelta(hours=2)) == []
    (day,) = account_ending.remind_due(core, now=midnight(DAYS - 1) + timedelta(hours=1))
    assert day.before == "1d"
    assert account_ending.expire_due(core, now=midnight(DAYS) - timedelta(seconds=1)) == []

    at = midnight(DAYS) + timedelta(seconds=5)
    (done,) = account_ending.expire_due(core, now=at, instance="a")
    assert done.ended and not done.quiet
    assert account_ending.expire_due(core, now=at, instance="b") == []  # once
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName="alice")
    ended = expiry_of(core)
    assert (ended.state, ended.end_reason) == ("ended", "expired")
    with core.sessions() as session:
        (run,) = session.scalars(select(Request).where(Request.kind == EXPIRE_ACCOUNT)).all()
    assert (run.state, run.decided_by, run.requester) == ("done", "policy", "roleup")
    assert ended.end_request_id == run.id
    # Announced in the approvals channel with the offboarding's checklist, updated to done.
    (announced,) = [p for p in posts(slack_api) if p["channel"] == "CAPPROVALS"]
    assert "Account expiry" in announced["text"]
    final = slack_api.calls_to("chat.update")[-1].params
    assert ":white_check_mark: Delete the IAM user" in str(final["blocks"])
    assert ":white_check_mark: Confirm AWS no longer knows the user" in str(final["blocks"])
    assert "from RoleUp" in str(final["blocks"])
    assert "Done (approved by policy (the date was approved with the account))" in str(final)
    assert actions(core) == ["account_expiry.scheduled", "account_expiry.ended"]


def test_the_job_dms_the_reminder_with_extend_and_announces_the_end(roleup, expiring, slack_api):
    core = roleup.core
    with core.sessions.begin() as session:  # made a month ago; 6 days left by the job's clock
        session.execute(
            update(AccountExpiry).values(
                created_at=utcnow() - timedelta(days=30), expires_at=utcnow() + timedelta(days=6)
            )
        )
    tend_account_expiries(core, "a")
    tend_account_expiries(core, "b")
    (reminder,) = posts(slack_api)
    assert reminder["channel"] == "UMANAGER"
    assert "expires on" in reminder["text"] and "alice" in reminder["text"]
    assert '"action_id": "account_extend"' in str(reminder["blocks"]).replace("'", '"')
    slack_api.reset()
    with core.sessions.begin() as session:
        session.execute(update(AccountExpiry).values(expires_at=utcnow() - timedelta(seconds=1)))
    tend_account_expiries(core, "a")
    tend_account_expiries(core, "b")
    told = sorted(p["channel"] for p in posts(slack_api) if p["channel"] != "CAPPROVALS")
    assert told == sorted(["UMANAGER", PERSON])
    assert len([p for p in posts(slack_api) if p["channel"] == "CAPPROVALS"]) == 1


def test_a_short_lived_account_gets_only_the_reminder_that_fits(roleup, prod):
    core = roleup.core
    onboard(core, prod, "bob", expires=midnight(3))
    assert account_ending.remind_due(core, now=midnight(3) - timedelta(days=7)) == []
    (only,) = account_ending.remind_due(core, now=midnight(3) - timedelta(hours=12))
    assert only.before == "1d"


# --- extending ------------------------------------------------------------------------------
def test_the_requester_extends_and_the_reminders_start_again(roleup, expiring):
    core = roleup.core
    account_ending.remind_due(core, now=midnight(DAYS - 7) + timedelta(hours=1))
    request = requesting.request_extend_account(
        core, actor="UMANAGER", expiry_id=expiring.id, expires_at=midnight(DAYS + 60)
    )
    assert (request.kind, request.state) == (EXTEND_ACCOUNT, "done")
    moved = expiry_of(core)
    assert moved.expires_at == midnight(DAYS + 60) and moved.reminded_7d_at is None
    assert account_ending.expire_due(core, now=midnight(DAYS) + timedelta(minutes=1)) == []
    assert "account_expiry.extended" in actions(core)


def test_an_extension_follows_the_onboarding_rules_and_never_self_approves(roleup, expiring):
    core = roleup.core
    with core.sessions.begin() as session:
        session.execute(update(Integration).values(approve_onboarding=True))
    request = requesting.request_extend_account(
        core, actor="UMANAGER", expiry_id=expiring.id, expires_at=midnight(DAYS + 1)
    )
    assert request.state == "pending"
    with pytest.raises(NotAllowed, match="someone else has to approve"):
        approvals.decide(core, request.id, approver="UMANAGER", approve=True)
    assert approvals.decide(core, request.id, approver="UAPPROVER", approve=True).state == "done"
    assert expiry_of(core).expires_at == midnight(DAYS + 1)


def test_an_extension_by_the_account_s_own_person_needs_an_approver(roleup, expiring):
    core = roleup.core
    with core.sessions.begin() as session:
        session.execute(update(Integration).values(managers=["UMANAGER", PERSON]))
    request = requesting.request_extend_account(
        core, actor=PERSON, expiry_id=expiring.id, expires_at=midnight(DAYS + 1)
    )
    assert request.state == "pending"


def test_strangers_earlier_dates_and_ended_accounts_are_refused(roleup, expiring):
    core = roleup.core
    with pytest.raises(Refused):
        requesting.request_extend_account(
            core, actor="USTRANGER", expiry_id=expiring.id, expires_at=midnight(DAYS + 1)
        )
    with pytest.raises(InvalidInput, match="not later than"):
        requesting.request_extend_account(
            core, actor="UMANAGER", expiry_id=expiring.id, expires_at=midnight(DAYS - 1)
        )
    account_ending.expire_due(core, now=midnight(DAYS) + timedelta(seconds=1))
    with pytest.raises(Exception, match="has been offboarded"):
        requesting.request_extend_account(
            core, actor="UMANAGER", expiry_id=expiring.id, expires_at=midnight(DAYS + 9)
        )


# --- ended another way ----------------------------------------------------------------------
def delete_outside(iam, name: str) -> None:
    iam.delete_login_profile(UserName=name)
    iam.delete_user(UserName=name)


def test_an_account_deleted_outside_roleup_ends_quietly_at_its_date(
    roleup, expiring, iam, slack_api
):
    core = roleup.core
    delete_outside(iam, "alice")
    slack_api.reset()
    (result,) = account_ending.expire_due(core, now=midnight(DAYS) + timedelta(seconds=1))
    assert result.ended and result.quiet
    ended = expiry_of(core)
    assert (ended.state, ended.end_reason) == ("ended", "deleted outside RoleUp")
    assert posts(slack_api) == []
    with core.sessions() as session:
        assert session.scalars(select(Request).where(Request.kind == EXPIRE_ACCOUNT)).all() == []
    assert actions(core)[-1] == "account_expiry.ended"


def test_a_sync_that_no_longer_sees_the_account_ends_its_expiry(roleup, expiring, iam, prod):
    core = roleup.core
    delete_outside(iam, "alice")
    sync_integration(core, prod, actor="test")
    assert (expiry_of(core).state, expiry_of(core).end_reason) == (
        "ended",
        "deleted outside RoleUp",
    )


def test_an_account_re_created_under_the_same_name_is_left_alone(roleup, expiring, iam):
    core = roleup.core
    delete_outside(iam, "alice")
    iam.create_user(UserName="alice")
    account_ending.expire_due(core, now=midnight(DAYS) + timedelta(seconds=1))
    assert iam.get_user(UserName="alice")["User"]["UserName"] == "alice"
    assert expiry_of(core).end_reason == "replaced outside RoleUp"


def test_offboarding_the_account_through_roleup_ends_its_expiry(roleup, expiring):
    from bot.services.request_kinds import OffboardAccount, OffboardPayload

    core = roleup.core
    payload = OffboardPayload(
        target="alice", accounts=[OffboardAccount(expiring.integration_id, "prod", "alice")]
    )
    request = approvals.submit(core, payload, requester="UMANAGER")
    approvals.decide(core, request.id, approver="UAPPROVER", approve=True)
    assert (expiry_of(core).state, expiry_of(core).end_reason) == (
        "ended",
        "offboarded through RoleUp",
    )


# --- failures -------------------------------------------------------------------------------
def test_failures_are_retried_with_backoff_resuming_one_request_and_the_third_is_reported(
    roleup, expiring, iam, slack_api, monkeypatch
):
    core = roleup.core
    real = account_ending.lifecycle.offboard_steps.offboard_user

    def failing(*args, **kwargs):
        raise AwsError("AWS is unavailable right now (ServiceFailure).")

    monkeypatch.setattr("bot.services.offboard_steps.offboard_user", failing)
    at = midnight(DAYS) + timedelta(seconds=1)
    results = []
    for delay in (0, 31, 120 + 31):  # each attempt after the previous one's delay
        results += account_ending.expire_due(core, now=at + timedelta(seconds=delay))
    assert [r.ended for r in results] == [False, False, False]
    assert [r.failures for r in results] == [1, 2, 3]
    assert [r.alert for r in results] == [False, False, True]
    assert "ServiceFailure" in (results[-1].error or "")
    from bot.notices import post_account_expiry_failure

    slack_api.reset()
    assert post_account_expiry_failure(core, results[-1])
    (alert,) = posts(slack_api)
    assert alert["channel"] == "CAPPROVALS"
    assert "could not offboard the expired account" in str(alert) and "after 3 attempts" in str(
        alert
    )
    # Not yet: the fourth attempt waits 10 minutes.
    assert account_ending.expire_due(core, now=at + timedelta(seconds=151 + 60)) == []

    monkeypatch.setattr("bot.services.offboard_steps.offboard_user", real)
    (done,) = account_ending.expire_due(core, now=at + timedelta(minutes=20))
    assert done.ended
    with core.sessions() as session:
        runs = session.scalars(select(Request).where(Request.kind == EXPIRE_ACCOUNT)).all()
    assert [(r.state, r.requester) for r in runs] == [("done", "roleup")]  # one, resumed
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName="alice")


def test_the_job_reports_the_third_failure_in_the_approvals_channel(
    roleup, expiring, slack_api, monkeypatch
):
    core = roleup.core

    def failing(*args, **kwargs):
        raise AwsError("AWS is unavailable right now (ServiceFailure).")

    monkeypatch.setattr("bot.services.offboard_steps.offboard_user", failing)
    with core.sessions.begin() as session:
        session.execute(update(AccountExpiry).values(expires_at=utcnow() - timedelta(seconds=1)))
    for _ in range(3):
        tend_account_expiries(core, "a")
        with core.sessions.begin() as session:  # the retry delay has passed
            session.execute(update(AccountExpiry).values(next_attempt_at=None))
    alerts = [p for p in posts(slack_api) if "could not offboard" in str(p)]
    assert [a["channel"] for a in alerts] == ["CAPPROVALS"]
    announced = [p for p in posts(slack_api) if "Account expiry" in p.get("text", "")]
    assert len(announced) == 1  # one checklist message, updated on every attempt
    assert ":x: Failed" in str(slack_api.calls_to("chat.update")[-1].params)


def test_an_integration_requiring_reasons_still_offboards_at_the_date(roleup, prod, iam):
    core = roleup.core
    onboard(core, prod)
    with core.sessions.begin() as session:  # set after the onboarding, which had none
        session.execute(update(Integration).values(require_reason=True))
    (done,) = account_ending.expire_due(core, now=midnight(DAYS) + timedelta(seconds=1))
    assert done.ended and expiry_of(core).end_reason == "expired"
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName="alice")
