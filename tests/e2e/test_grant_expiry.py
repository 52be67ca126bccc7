"""Time-bound access with real `roleup serve` processes: a grant asked through the /groups
modal *Until* a minute ahead is removed by itself within a minute of its end, once across two
instances over one PostgreSQL, and the person and the requester each get one DM."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.services.policy import END_GRANT
from storage.models import Account, AuditEvent, Grant, Integration, Request
from tests.e2e.instances import add_integration_with_own_user, syncs, wait_until
from tests.support.config import SIGNING_SECRET
from tests.support.modal import option, options, submission
from tests.support.sender import SlackSender

pytestmark = pytest.mark.slow

MANAGER, HOLDER = "UMANAGER", "UALICE01"


def test_a_grant_until_a_minute_ahead_ends_once_within_a_minute_with_both_dms(
    instances_db, aws, slack_api, start_instance
):
    aws.create_user(UserName="gina")
    aws.create_group(GroupName="ops")
    add_integration_with_own_user(instances_db, aws, "prod", every=4)
    with instances_db.begin() as conn:
        conn.execute(update(Integration).values(managers=[MANAGER], approvers=["UAPPROVER"]))
    first, _second = start_instance("first"), start_instance("second")
    wait_until(lambda: "ok" in syncs(instances_db, "prod"))
    with instances_db.begin() as conn:  # gina is linked to her Slack account (/roleup link)
        conn.execute(update(Account).where(Account.user_name == "gina").values(
            slack_user_id=HOLDER
        ))  # fmt: skip

    slack = SlackSender(first.url, SIGNING_SECRET, slack_api.response_url_base)
    assert slack.command("/groups", "gina", user_id=MANAGER).status_code == 200
    view = slack_api.wait_for(
        "views.update", where=lambda c: "groups" in str(c.params.get("view")), timeout=30
    )[0].params["view"]
    until = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    values = {
        "groups": {"value": options("ops")},
        "for": {"value": option("until")},
        "until": {
            "value": {"type": "datetimepicker", "selected_date_time": int(until.timestamp())}
        },
    }
    assert slack.interact(submission(view, values, MANAGER)).json()["response_action"] == "update"
    slack_api.wait_for("views.update", where=lambda c: "changed" in str(c.params), timeout=30)
    assert [g["GroupName"] for g in aws.list_groups_for_user(UserName="gina")["Groups"]] == ["ops"]
    with instances_db.connect() as conn:
        grant = conn.execute(select(Grant)).one()
    assert grant.ends_at == until

    def gone() -> bool:
        return aws.list_groups_for_user(UserName="gina")["Groups"] == []

    wait_until(gone, timeout=(until - datetime.now(UTC)).total_seconds() + 60)
    removed_at = datetime.now(UTC)
    assert removed_at - until <= timedelta(seconds=60)
    time.sleep(25)  # a whole grants tick more on both instances: nothing runs twice

    with instances_db.connect() as conn:
        ended = conn.execute(select(Grant)).one()
        runs = conn.scalars(select(Request.id).where(Request.kind == END_GRANT)).all()
        changes = conn.scalars(
            select(AuditEvent.request_id).where(
                AuditEvent.action == "iam.set_groups", AuditEvent.request_id.in_(runs)
            )
        ).all()
    assert (ended.state, ended.end_reason) == ("ended", "expired")
    assert len(runs) == 1 and len(changes) == 1
    told = [
        c.params["channel"]
        for c in slack_api.calls_to("chat.postMessage")
        if "has ended" in str(c.params)
    ]
    assert sorted(told) == sorted([HOLDER, MANAGER])


def test_end_now_and_extend_through_their_buttons_on_a_serve_process(
    instances_db, aws, slack_api, start_instance
):
    from bot.notices import GRANT_END_ACTION, GRANT_EXTEND_ACTION
    from tests.support.message_buttons import click

    aws.create_user(UserName="hugo")
    aws.create_group(GroupName="ops")
    aws.create_group(GroupName="devs")
    add_integration_with_own_user(instances_db, aws, "prod", every=4)
    with instances_db.begin() as conn:
        conn.execute(update(Integration).values(managers=[MANAGER], approvers=["UAPPROVER"]))
    first = start_instance("first")
    wait_until(lambda: "ok" in syncs(instances_db, "prod"))
    with instances_db.begin() as conn:
        conn.execute(update(Account).values(slack_user_id=HOLDER))
    slack = SlackSender(first.url, SIGNING_SECRET, slack_api.response_url_base)
    assert slack.command("/groups", "hugo", user_id=MANAGER).status_code == 200
    view = slack_api.wait_for(
        "views.update", where=lambda c: "groups" in str(c.params.get("view")), timeout=30
    )[0].params["view"]
    values = {"groups": {"value": options("devs", "ops")}, "for": {"value": option("4h")}}
    slack.interact(submission(view, values, MANAGER))
    slack_api.wait_for("views.update", where=lambda c: "changed" in str(c.params), timeout=30)
    with instances_db.connect() as conn:
        grants = {g.group_name: g for g in conn.execute(select(Grant))}
    url = slack_api.response_url_base + "dm"

    # End now, by the person: ops goes at once, devs stays.
    slack.interact(click(GRANT_END_ACTION, str(grants["ops"].id), HOLDER, url))
    slack_api.wait_for("response_url:/respond/dm", timeout=30)
    groups = [g["GroupName"] for g in aws.list_groups_for_user(UserName="hugo")["Groups"]]
    assert groups == ["devs"]

    # Extend, by the requester: devs now lasts 7 days.
    slack_api.reset()
    slack.interact(click(GRANT_EXTEND_ACTION, str(grants["devs"].id), MANAGER, url))
    (opened,) = slack_api.wait_for("views.open", timeout=30)
    extend = submission(opened.params["view"], {"for": {"value": option("7d")}}, MANAGER)
    assert slack.interact(extend).json()["response_action"] == "update"
    slack_api.wait_for("views.update", where=lambda c: "now lasts" in str(c.params), timeout=30)
    with instances_db.connect() as conn:
        extended = conn.execute(select(Grant).where(Grant.id == grants["devs"].id)).one()
        ended = conn.execute(select(Grant).where(Grant.id == grants["ops"].id)).one()
    assert extended.ends_at - datetime.now(UTC) > timedelta(days=6, hours=23)
    assert (ended.state, ended.end_reason) == ("ended", f"ended early by {HOLDER}")
