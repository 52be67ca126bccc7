"""Break-glass on real `roleup serve` processes (two over one PostgreSQL; one with two workers
over SQLite): `/roleup breakglass` adds the membership at once with no approver, the approvals
channel hears of it with *Revoke now* and *Acknowledge*, and *Revoke now* pressed twice at
once on both processes removes the membership once, audited as break-glass."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select, update

from bot.notices import BREAKGLASS_ACK_ACTION, BREAKGLASS_REVOKE_ACTION
from storage.models import Account, AuditEvent, Grant, Integration
from tests.e2e.cluster import Cluster
from tests.e2e.instances import add_integration_with_own_user, syncs, wait_until
from tests.support.message_buttons import click

pytestmark = pytest.mark.slow

ONCALL, APPROVER, APPROVER2 = "UONCALL01", "UAPPR0001", "UAPPR0002"
CHANNEL = "CPROD"
PATIENCE = 60.0


@pytest.fixture
def prod(cluster: Cluster, aws) -> Cluster:
    aws.create_user(UserName="olga")
    aws.create_group(GroupName="admins")
    add_integration_with_own_user(cluster.engine, aws, "prod", every=4)
    with cluster.engine.begin() as conn:
        conn.execute(
            update(Integration).values(
                managers=["UMANAGER"], approvers=[APPROVER, APPROVER2], breakglass=[ONCALL]
            )
        )
    wait_until(lambda: "ok" in syncs(cluster.engine, "prod"))
    with cluster.engine.begin() as conn:  # olga's IAM user is the on-call person's (/roleup link)
        conn.execute(update(Account).where(Account.user_name == "olga").values(
            slack_user_id=ONCALL
        ))  # fmt: skip
    return cluster


def groups_of(aws) -> list[str]:
    return [g["GroupName"] for g in aws.list_groups_for_user(UserName="olga")["Groups"]]


def test_breakglass_is_given_at_once_announced_and_revoked_once(prod, slack_api, aws):
    cluster = prod
    slack = cluster.senders[0]
    answer = slack.command("/roleup", "breakglass admins 1h prod is down", user_id=ONCALL)
    assert answer.status_code == 200
    (told,) = slack_api.wait_for("response_url:/respond/cmd", timeout=PATIENCE)
    assert "Break-glass: *admins* added to *olga* in *prod*" in told.params["text"]
    # No approver was asked: the membership exists the moment the person is told.
    assert groups_of(aws) == ["admins"]
    assert [c.params["GroupName"] for c in cluster.wire.of("AddUserToGroup")] == ["admins"]

    (posted,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params.get("channel") == CHANNEL, timeout=PATIENCE
    )
    shown = json.dumps(posted.params["blocks"])
    assert f"<@{ONCALL}> gave themselves *admins*" in shown and "prod is down" in shown
    with cluster.engine.connect() as conn:
        grant = conn.execute(select(Grant)).one()
    buttons = posted.params["blocks"][-1]["elements"]
    assert [(b["text"]["text"], b["action_id"], b["value"]) for b in buttons] == [
        ("Revoke now", BREAKGLASS_REVOKE_ACTION, str(grant.id)),
        ("Acknowledge", BREAKGLASS_ACK_ACTION, str(grant.id)),
    ]

    # A double click by one approver, each click on another process, at the same moment.
    url = slack_api.response_url_base + "channel"
    barrier = threading.Barrier(2)

    def press(index: int) -> None:
        payload = click(BREAKGLASS_REVOKE_ACTION, str(grant.id), APPROVER, url)
        barrier.wait()
        assert cluster.senders[index].interact(payload).status_code == 200

    threads = [threading.Thread(target=press, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = slack_api.wait_for("response_url:/respond/channel", count=2, timeout=PATIENCE)

    assert groups_of(aws) == []
    assert len(cluster.wire.of("RemoveUserFromGroup")) == 1
    revoked = [a for a in answers if a.params.get("replace_original") is True]
    assert len(revoked) == 1
    assert f"Revoked by <@{APPROVER}>" in json.dumps(revoked[0].params["blocks"])
    (other,) = [a for a in answers if a is not revoked[0]]
    assert "already ended" in other.params["text"]
    with cluster.engine.connect() as conn:
        ended = conn.execute(select(Grant)).one()
        events = conn.execute(
            select(AuditEvent.action, AuditEvent.actor, AuditEvent.detail)
            .where(AuditEvent.action.like("breakglass.%"))
            .order_by(AuditEvent.id)
        ).all()
    assert (ended.state, ended.end_reason) == ("ended", f"revoked by <@{APPROVER}>")
    actions = [e.action for e in events]
    assert actions.count("breakglass.granted") == 1
    assert actions.count("breakglass.revoked") == 1
    assert all(e.detail.get("breakglass") is True for e in events)
    (revoker,) = [e.actor for e in events if e.action == "breakglass.revoked"]
    assert revoker == APPROVER
