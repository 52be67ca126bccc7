"""Expiring accounts with real `roleup serve` processes: an account onboarded through the
/onboard modal with *Account expires* is offboarded at its date by itself, once across two
instances over one PostgreSQL: the IAM user is gone on the moto server, the checklist message
is posted once to the approvals channel and ends "Done", and the requester is told."""

from __future__ import annotations

import time
from datetime import UTC, timedelta

import pytest
from sqlalchemy import select, update

from bot.services.policy import EXPIRE_ACCOUNT
from storage.models import AccountExpiry, AuditEvent, Integration, Request, utcnow
from tests.e2e.instances import add_integration_with_own_user, syncs, wait_until
from tests.support.config import SIGNING_SECRET
from tests.support.modal import one_user, submission, text
from tests.support.sender import SlackSender

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("moto_gaps")]

MANAGER, PERSON = "UMANAGER", "UKARL001"


def test_an_expiring_account_is_offboarded_once_at_its_date_across_two_instances(
    instances_db, aws, slack_api, start_instance
):
    add_integration_with_own_user(instances_db, aws, "prod", every=4)
    with instances_db.begin() as conn:
        conn.execute(update(Integration).values(managers=[MANAGER], approvers=["UAPPROVER"]))
    first, _second = start_instance("first"), start_instance("second")
    wait_until(lambda: "ok" in syncs(instances_db, "prod"))

    slack = SlackSender(first.url, SIGNING_SECRET, slack_api.response_url_base)
    assert slack.command("/onboard", "", user_id=MANAGER).status_code == 200
    view = slack_api.wait_for(
        "views.update", where=lambda c: "Account expires" in str(c.params.get("view")), timeout=30
    )[0].params["view"]
    day = (utcnow().astimezone(UTC).date() + timedelta(days=10)).isoformat()
    values = {
        "username": {"value": text("karl")},
        "password": {"value": text("Typed-Secret-Passw0rd!")},
        "slack_user": {"value": one_user(PERSON)},
        "account_expires": {"value": {"type": "datepicker", "selected_date": day}},
    }
    assert slack.interact(submission(view, values, MANAGER)).json()["response_action"] == "update"
    slack_api.wait_for("views.update", where=lambda c: "was created" in str(c.params), timeout=30)
    user_id = aws.get_user(UserName="karl")["User"]["UserId"]
    with instances_db.connect() as conn:
        expiry = conn.execute(select(AccountExpiry)).one()
    assert (expiry.user_id, expiry.state, expiry.expires_at.date().isoformat()) == (
        user_id,
        "scheduled",
        day,
    )

    # Ten days are not waited for: the stored date is moved into the past, which is exactly
    # what the instances' clocks will see on that day (nothing else reads the date).
    slack_api.reset()
    with instances_db.begin() as conn:
        conn.execute(
            update(AccountExpiry).values(
                created_at=utcnow() - timedelta(days=30), expires_at=utcnow() - timedelta(seconds=1)
            )
        )

    def gone() -> bool:
        return all(u["UserName"] != "karl" for u in aws.list_users()["Users"])

    wait_until(gone, timeout=90)
    wait_until(
        lambda: any("Done" in str(c.params) for c in slack_api.calls_to("chat.update")), timeout=30
    )
    time.sleep(25)  # a whole accounts tick more on both instances: nothing runs twice

    with instances_db.connect() as conn:
        ended = conn.execute(select(AccountExpiry)).one()
        runs = conn.scalars(select(Request.id).where(Request.kind == EXPIRE_ACCOUNT)).all()
        offboards = conn.scalars(
            select(AuditEvent.request_id).where(
                AuditEvent.action == "iam.offboard", AuditEvent.request_id.in_(runs)
            )
        ).all()
    assert (ended.state, ended.end_reason) == ("ended", "expired")
    assert len(runs) == 1 and len(offboards) == 1
    announced = [
        c.params for c in slack_api.calls_to("chat.postMessage") if c.params["channel"] == "CPROD"
    ]
    assert len(announced) == 1 and "Account expiry" in announced[0]["text"]
    final = [c.params for c in slack_api.calls_to("chat.update") if "Done" in str(c.params)]
    assert ":white_check_mark: Delete the IAM user" in str(final[-1]["blocks"])
    told = sorted(
        c.params["channel"]
        for c in slack_api.calls_to("chat.postMessage")
        if "expired and was offboarded" in str(c.params)
    )
    assert told == sorted([MANAGER, PERSON])
