"""Break-glass through signed Slack requests into the live app, against a moto server:
`/roleup breakglass` by someone on the list adds the membership at once and announces it in
the approvals channel with Revoke now and Acknowledge; only another approver may press them;
the person's reason reaches Slack escaped."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from bot.notices import BREAKGLASS_ACK_ACTION, BREAKGLASS_REVOKE_ACTION
from bot.services.sync import sync_integration
from storage.models import Account, AuditEvent, Grant
from tests.support.message_buttons import click
from tests.support.seed import add_integration

pytestmark = pytest.mark.moto_server

ONCALL = "UONCALL01"
APPROVER = "UAPPROVER"


@pytest.fixture
def prod(roleup, aws):
    core = roleup.core
    # The grantee is an approver too: still not the one to review their own access.
    integration_id = add_integration(core, approvers=[APPROVER, ONCALL], breakglass=[ONCALL])
    aws.create_user(UserName="alice")
    aws.create_group(GroupName="admins")
    sync_integration(core, integration_id, actor="test")
    with core.sessions.begin() as session:
        session.execute(update(Account).values(slack_user_id=ONCALL))
    return integration_id


def groups_of(aws) -> list[str]:
    return [g["GroupName"] for g in aws.list_groups_for_user(UserName="alice")["Groups"]]


def breakglass(slack, slack_api, text="admins 1h prod is down", user=ONCALL) -> str:
    assert slack.command("/roleup", f"breakglass {text}", user_id=user).status_code == 200
    (answer,) = slack_api.wait_for("response_url:/respond/cmd")
    return str(answer.params["text"])


def announcement(slack_api) -> dict:
    (posted,) = slack_api.wait_for("chat.postMessage")
    assert posted.params["channel"] == "CAPPROVALS"
    blocks = posted.params["blocks"]
    posted.params["blocks"] = json.loads(blocks) if isinstance(blocks, str) else blocks
    return posted.params


def the_grant(roleup) -> Grant:
    with roleup.core.sessions() as session:
        return session.scalars(select(Grant)).one()


def test_someone_on_the_list_gets_it_at_once_and_the_approvers_see_two_buttons(
    slack, slack_api, prod, aws, roleup
):
    answer = breakglass(slack, slack_api)
    assert "Break-glass: *admins* added to *alice* in *prod*" in answer
    assert groups_of(aws) == ["admins"]
    posted = announcement(slack_api)
    text = json.dumps(posted["blocks"])
    assert "<@UONCALL01> gave themselves *admins*" in text and "prod is down" in text
    grant = the_grant(roleup)
    buttons = posted["blocks"][-1]["elements"]
    assert [(b["text"]["text"], b["action_id"], b["value"]) for b in buttons] == [
        ("Revoke now", BREAKGLASS_REVOKE_ACTION, str(grant.id)),
        ("Acknowledge", BREAKGLASS_ACK_ACTION, str(grant.id)),
    ]


def test_revoke_now_by_an_approver_removes_the_membership(slack, slack_api, prod, aws, roleup):
    breakglass(slack, slack_api)
    grant = the_grant(roleup)
    url = slack_api.response_url_base + "channel"
    slack.interact(click(BREAKGLASS_REVOKE_ACTION, str(grant.id), APPROVER, url))
    (answer,) = slack_api.wait_for("response_url:/respond/channel")
    assert answer.params["replace_original"] is True
    assert "Revoked by <@UAPPROVER>" in json.dumps(answer.params["blocks"])
    assert groups_of(aws) == []
    assert the_grant(roleup).end_reason == "revoked by <@UAPPROVER>"


def test_acknowledge_by_an_approver_records_it_and_updates_the_message(
    slack, slack_api, prod, roleup
):
    breakglass(slack, slack_api)
    grant = the_grant(roleup)
    url = slack_api.response_url_base + "channel"
    slack.interact(click(BREAKGLASS_ACK_ACTION, str(grant.id), APPROVER, url))
    (answer,) = slack_api.wait_for("response_url:/respond/channel")
    blocks = json.dumps(answer.params["blocks"])
    assert answer.params["replace_original"] is True
    assert "Acknowledged by <@UAPPROVER>" in blocks and BREAKGLASS_ACK_ACTION not in blocks
    assert the_grant(roleup).acknowledged_by == APPROVER


@pytest.mark.parametrize("action", [BREAKGLASS_REVOKE_ACTION, BREAKGLASS_ACK_ACTION])
@pytest.mark.parametrize("who", [ONCALL, "UMANAGER", "USTRANGER"])
def test_the_grantee_or_a_non_approver_pressing_a_button_is_refused(
    slack, slack_api, prod, aws, roleup, action, who
):
    breakglass(slack, slack_api)
    grant = the_grant(roleup)
    url = slack_api.response_url_base + "channel"
    slack.interact(click(action, str(grant.id), who, url))
    (answer,) = slack_api.wait_for("response_url:/respond/channel")
    assert answer.params.get("replace_original") is False
    assert (
        "another approver" in answer.params["text"]
        or "Only the approvers" in (answer.params["text"])
    )
    assert groups_of(aws) == ["admins"]
    unchanged = the_grant(roleup)
    assert unchanged.state == "active" and unchanged.acknowledged_at is None
    with roleup.core.sessions() as session:
        refused = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "breakglass.review_refused")
        ).one()
    assert refused.actor == who and refused.detail["breakglass"] is True


def test_a_hostile_reason_reaches_slack_escaped(slack, slack_api, prod, roleup):
    breakglass(slack, slack_api, text="admins 30m <!channel> <https://evil.example|bank> &")
    posted = announcement(slack_api)
    everything = json.dumps(posted)
    assert "<!channel>" not in everything and "<https://evil" not in everything
    assert "&lt;!channel&gt; &lt;https://evil.example|bank&gt; &amp;" in everything
    assert the_grant(roleup).reason == "<!channel> <https://evil.example|bank> &"


def test_someone_not_on_the_list_is_refused_in_one_sentence(slack, slack_api, prod, aws):
    answer = breakglass(slack, slack_api, user="UMANAGER")
    assert "You are not on the break-glass list of any integration." in answer
    assert groups_of(aws) == [] and slack_api.calls_to("chat.postMessage") == []


def test_a_malformed_duration_gets_the_usage_line(slack, slack_api, prod, aws):
    response = slack.command("/roleup", "breakglass admins soon fire", user_id=ONCALL)
    text = response.json()["text"]  # answered in the ack
    assert "not a duration like 30m, 1h or 2h30m" in text and "Usage:" in text
    assert groups_of(aws) == []
