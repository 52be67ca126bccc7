"""AWS's credential report under faults and hostile content: throttling and a report not yet
ready are waited out with a growing backoff on an injected clock (no wall time); past the
bounded wait a campaign start is recorded as failed with its reason; rows that break IAM's rules
are dropped, cells that do not parse are unknown, and nothing hostile reaches Slack unescaped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from sqlalchemy import select

from bot.services import credential_report, review_start
from bot.services.aws import retry_config
from bot.services.credential_report import ReportUnavailable
from bot.services.review_start import ReviewStartFailed
from bot.services.reviews import ItemView
from bot.services.sync import sync_integration
from bot.slack.review_blocks import KeepView, item_text
from storage.models import AuditEvent, ReviewCampaign, ReviewItem
from tests.support.aws_calls import AwsCalls
from tests.support.seed import add_integration

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)
ARN = "arn:aws:iam::123456789012:user/"
WHEN = "2026-01-02T03:04:05+00:00"


@dataclass
class Clock:
    """A monotonic clock that only moves when something sleeps on it."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def faults(mocked_aws) -> AwsCalls:
    return AwsCalls()


@pytest.fixture
def client(faults):
    """IAM (moto, in-process) without botocore's own retries, so each answer is ours to see."""
    iam = boto3.client("iam", region_name="us-east-1", config=retry_config(1))
    iam.create_user(UserName="alice")
    return faults.attach(iam)


def row(user: str, arn: str | None = None, **cells: str) -> str:
    values = dict.fromkeys(HEADER.split(","), "N/A")
    values.update(user=user, arn=ARN + user if arn is None else arn, **cells)
    return ",".join(_quoted(values[name]) for name in HEADER.split(","))


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def report_of(*rows: str) -> dict:
    content = "\n".join([HEADER, *rows]) + "\n"
    return {"Content": content.encode(), "GeneratedTime": datetime(2026, 1, 3, tzinfo=UTC)}


# --- backoff ----------------------------------------------------------------------------------
def test_throttled_then_not_ready_then_complete_is_waited_out_with_a_growing_backoff(
    client, faults
):
    faults.fail("GenerateCredentialReport", "Throttling")
    faults.fail("GetCredentialReport", "ReportInProgress")
    clock = Clock()

    report = credential_report.fetch(client, sleep=clock.sleep, clock=clock)

    # Throttled; then moto's new report is STARTED; then COMPLETE but its Get not ready; then it.
    assert faults.names == [
        "GenerateCredentialReport",
        "GenerateCredentialReport",
        "GenerateCredentialReport",
        "GetCredentialReport",
        "GenerateCredentialReport",
        "GetCredentialReport",
    ]
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert list(report.users) == ["alice"]
    assert report.users["alice"].arn == ARN + "alice"
    assert report.calls == 6


def test_the_wait_is_bounded_and_says_why_it_ended(client, faults):
    faults.fail("GenerateCredentialReport", "Throttling", times=100)
    clock = Clock()

    with pytest.raises(ReportUnavailable) as raised:
        credential_report.fetch(client, sleep=clock.sleep, clock=clock)

    assert str(raised.value) == (
        "Could not read AWS's credential report: AWS kept throttling the request after 120 s. "
        "Try again in a few minutes."
    )
    # 1, 2, 4, 8, then at most 15 s apart, never past the two minutes.
    assert clock.sleeps[:5] == [1.0, 2.0, 4.0, 8.0, 15.0]
    assert max(clock.sleeps) == 15.0
    assert sum(clock.sleeps) <= 120.0
    assert "GetCredentialReport" not in faults.names


def test_a_start_past_the_bounded_wait_is_recorded_as_failed_with_its_reason(core, iam, aws_calls):
    integration_id = add_integration(core, managers=["UMANAGER"])
    iam.create_user(UserName="alice")
    sync_integration(core, integration_id, actor="test")
    aws_calls.fail("GetCredentialReport", "ReportInProgress", times=100)
    clock = Clock()

    def fetch(client):
        return credential_report.fetch(client, sleep=clock.sleep, clock=clock)

    with pytest.raises(ReviewStartFailed) as raised:
        review_start.start_campaign(
            core, integration_id=integration_id, actor="UMANAGER", fetch=fetch
        )

    reason = (
        "Could not read AWS's credential report: the credential report was not ready after "
        "120 s. Try again in a few minutes."
    )
    assert raised.value.user_message == f"The access review of prod could not start: {reason}"
    assert sum(clock.sleeps) <= 120.0
    with core.sessions() as session:
        (campaign,) = session.scalars(select(ReviewCampaign)).all()
        assert (campaign.state, campaign.failure, campaign.open_for) == ("failed", reason, None)
        assert session.scalars(select(ReviewItem)).all() == []
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "review.start_failed"))
        assert (event.outcome, event.detail["error"]) == ("error", reason)

    # A failed start holds nothing: once AWS answers, the next start opens a campaign.
    aws_calls.faults.clear()
    started = review_start.start_campaign(core, integration_id=integration_id, actor="UMANAGER")
    assert (started.items, started.campaign_id) == (1, campaign.id + 1)


# --- hostile rows -------------------------------------------------------------------------------
def test_rows_that_break_iams_rules_are_dropped_and_bad_cells_are_unknown():
    report = credential_report.parse(
        report_of(
            row("<root_account>", arn="arn:aws:iam::123456789012:root"),  # not a user: skipped
            row("alice", password_enabled="true", password_last_used=WHEN, mfa_active="false"),
            row("<!channel>"),  # not an IAM name
            row("mallory\u202egnp.exe"),  # a bidi override
            row("eve\x07"),  # a control character
            row("trudy", arn="arn:aws:iam::123456789012:user/trudy\u202e"),  # a bidi ARN
            row("oscar", arn="https://evil.example/|bank"),  # not an ARN at all
            row("x" * 65),  # longer than IAM allows
            row("victor", arn="arn:" + "a" * 3000),  # an oversized ARN
            row("y" * 200_000),  # past the csv module's cell limit
            row(
                "bob",
                password_enabled="=cmd|' /C calc'!A0",  # formula-like: not "true"
                password_last_used='=HYPERLINK("https://evil.example")',
                mfa_active="TRUE\u202e",
                access_key_1_active="true",
                access_key_1_last_rotated="9" * 100,  # oversized date
                access_key_1_last_used_date="2026-13-45T99:99:99+00:00",
                access_key_2_active="true",
                access_key_2_last_rotated="2026-01-01T00:00:00+00:00<!channel>",
            ),
        )
    )

    assert sorted(report.users) == ["alice", "bob"]
    assert report.dropped == 8
    alice, bob = report.users["alice"], report.users["bob"]
    assert alice.password_enabled and not alice.mfa_active
    assert alice.password_last_used == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # bob's hostile cells are all unknown: no password, no MFA, no key with a date.
    assert (bob.password_enabled, bob.password_last_used, bob.mfa_active) == (False, None, False)
    assert bob.keys == ()


def test_a_campaign_from_a_hostile_report_keeps_only_checked_evidence(core, iam):
    integration_id = add_integration(core, managers=["UMANAGER"])
    for name in ("alice", "bob"):
        iam.create_user(UserName=name)
    sync_integration(core, integration_id, actor="test")
    hostile = report_of(
        row("alice", password_enabled="true", password_last_used="<!channel> =cmd|' /C calc'!A0"),
        row("bob", arn="arn:aws:iam::999999999999:user/bob"),  # another account's bob
        row("<@U0ADMIN>"),
        row("z" * 200_000),
    )

    started = review_start.start_campaign(
        core,
        integration_id=integration_id,
        actor="UMANAGER",
        fetch=lambda client: credential_report.parse(hostile),
    )

    with core.sessions() as session:
        frozen = {i.user_name: i for i in session.scalars(select(ReviewItem)).all()}
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "review.started"))
    assert started.items == 2 and event.detail["report_rows_dropped"] == 2
    assert frozen["alice"].evidence["password_enabled"] is True
    assert frozen["alice"].evidence["password_last_used"] is None
    # An ARN that is not the synced user's is no evidence of that user.
    assert frozen["bob"].evidence == {"in_report": False}
    stored = json.dumps([i.evidence for i in frozen.values()])
    assert "channel" not in stored and "cmd" not in stored and "U0ADMIN" not in stored


def test_hostile_values_are_shown_escaped_in_slack():
    """Values that reached the store by another way (an older version, a hand edit) are still
    escaped on every review surface: mrkdwn's specials, control and bidi characters."""
    item = ItemView(
        id=7,
        campaign_id=1,
        integration="prod<!here>",
        due_at=datetime(2026, 1, 20, tzinfo=UTC),
        user_name="<!channel>\u202eexe.doc",
        slack_user_id="<@U0ADMIN>",
        groups=["*admins*", "<https://evil.example|bank>"],
        policies=["=cmd|' /C calc'!A0"],
        inline_policies=["`tick`\x07"],
        evidence={
            "in_report": True,
            "password_enabled": True,
            "password_last_used": "<!everyone>",
            "keys": [{"active": True, "last_rotated": "<#C1>", "last_used": None}],
        },
        flags=["<!subteam^S1>"],
        drift="changed outside RoleUp since the campaign started: +<!channel>",
    )

    for shown in (item_text(item), json.dumps(KeepView.build(item))):
        for raw in ("<!channel>", "<!here>", "<https://", "<@U0ADMIN>", "<!everyone>", "<#C1>"):
            assert raw not in shown
        assert "\u202e" not in shown and "\x07" not in shown and "\\u202e" not in shown
    text = item_text(item)
    assert "*&lt;!channel&gt;exe.doc* in *prod&lt;!here&gt;*" in text
    assert "&lt;@U0ADMIN&gt;" in text  # not a mention: not a Slack user id
    assert "`&lt;https://evil.example|bank&gt;`" in text
    assert "console last used &lt;!everyon" in text  # dates are cut to ten characters
    assert "+&lt;!channel&gt;" in text


# --- a user re-created since the last sync ---------------------------------------------------
def test_evidence_of_a_user_re_created_since_the_last_sync_is_not_the_frozen_accounts(core, iam):
    """The store (as of the last sync) holds alice as she was; the report's alice was created
    after: another user under the same name and ARN, whose use and MFA say nothing of her."""
    integration_id = add_integration(core, managers=["UMANAGER"])
    iam.create_user(UserName="alice")
    iam.create_user(UserName="bob")
    sync_integration(core, integration_id, actor="test")
    created = iam.get_user(UserName="alice")["User"]["CreateDate"]
    later = (created + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    same = iam.get_user(UserName="bob")["User"]["CreateDate"].strftime("%Y-%m-%dT%H:%M:%S+00:00")
    report = report_of(
        row("alice", user_creation_time=later, password_enabled="true", mfa_active="true"),
        row("bob", user_creation_time=same, password_enabled="true", mfa_active="true"),
    )

    review_start.start_campaign(
        core,
        integration_id=integration_id,
        actor="UMANAGER",
        fetch=lambda client: credential_report.parse(report),
    )

    with core.sessions() as session:
        frozen = {i.user_name: i for i in session.scalars(select(ReviewItem)).all()}
    assert frozen["alice"].evidence == {"in_report": False}
    assert frozen["bob"].evidence["mfa_active"] is True
