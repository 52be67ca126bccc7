"""A grant's buttons through signed Slack requests into the live app: the reminder DM carries
Extend and End now; End now removes the membership (for its holder, requester or a manager
only); Extend opens a modal whose new end is a request; the App Home lists your access."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.notices import GRANT_END_ACTION, GRANT_EXTEND_ACTION, remind_grant
from bot.services import expiry, requesting
from bot.services.grants import Term
from bot.services.sync import sync_integration
from storage.models import Account, Grant, Request
from tests.support.home import home_opened
from tests.support.message_buttons import click
from tests.support.modal import option, submission
from tests.support.seed import MANAGER, STRANGER, add_integration

pytestmark = pytest.mark.moto_server

HOLDER = "UALICE01"


@pytest.fixture
def grant(roleup, aws):
    core = roleup.core
    integration_id = add_integration(core)
    aws.create_user(UserName="alice")
    aws.create_group(GroupName="ops")
    sync_integration(core, integration_id, actor="test")
    with core.sessions.begin() as session:
        session.execute(update(Account).values(slack_user_id=HOLDER))
    requesting.request_set_groups(
        core,
        actor=MANAGER,
        integration_id=integration_id,
        user_name="alice",
        wanted=["ops"],
        term=Term(seconds=4 * 3600),
    )
    with core.sessions() as session:
        return session.scalars(select(Grant)).one()


def groups_of(aws) -> list[str]:
    return [g["GroupName"] for g in aws.list_groups_for_user(UserName="alice")["Groups"]]


def test_the_reminder_dm_carries_extend_and_end_now(roleup, grant, slack_api):
    (reminder,) = expiry.remind_due(roleup.core, now=grant.ends_at - timedelta(minutes=30))
    assert remind_grant(roleup.core, reminder) == 2
    calls = slack_api.calls_to("chat.postMessage")
    assert {c.params["channel"] for c in calls} == {HOLDER, MANAGER}
    blocks = calls[0].params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    buttons = blocks[-1]["elements"]
    assert [(b["text"]["text"], b["action_id"], b["value"]) for b in buttons] == [
        ("Extend", GRANT_EXTEND_ACTION, str(grant.id)),
        ("End now", GRANT_END_ACTION, str(grant.id)),
    ]
    assert "in about an hour" in str(blocks[0])


@pytest.mark.parametrize("who", [HOLDER, MANAGER])
def test_end_now_by_the_holder_or_requester_removes_the_membership(
    slack, slack_api, grant, aws, roleup, who
):
    url = slack_api.response_url_base + "dm"
    assert slack.interact(click(GRANT_END_ACTION, str(grant.id), who, url)).status_code == 200
    (answer,) = slack_api.wait_for("response_url:/respond/dm")
    assert answer.params["replace_original"] is True
    assert "Ended: *ops* removed from *alice*" in answer.params["text"]
    assert groups_of(aws) == []
    with roleup.core.sessions() as session:
        ended = session.get(Grant, grant.id)
    assert ended.state == "ended" and ended.end_reason == f"ended early by {who}"


def test_end_now_by_anyone_else_is_refused_and_changes_nothing(slack, slack_api, grant, aws):
    url = slack_api.response_url_base + "dm"
    slack.interact(click(GRANT_END_ACTION, str(grant.id), STRANGER, url))
    (answer,) = slack_api.wait_for("response_url:/respond/dm")
    assert "can't" in answer.params["text"] or "not allowed" in answer.params["text"]
    assert groups_of(aws) == ["ops"]


@pytest.mark.parametrize("value", ["", "x", "-1", "9" * 40, "<!channel>"])
def test_a_tampered_button_value_is_refused(slack, slack_api, grant, aws, value):
    url = slack_api.response_url_base + "dm"
    slack.interact(click(GRANT_END_ACTION, value, MANAGER, url))
    (answer,) = slack_api.wait_for("response_url:/respond/dm")
    assert "<!channel>" not in answer.params["text"]
    assert groups_of(aws) == ["ops"]


def test_extend_opens_a_modal_and_a_new_end_is_applied(slack, slack_api, grant, roleup):
    url = slack_api.response_url_base + "dm"
    slack.interact(click(GRANT_EXTEND_ACTION, str(grant.id), MANAGER, url))
    (opened,) = slack_api.wait_for("views.open")
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    lasting = next(b for b in view["blocks"] if b.get("block_id") == "for")
    assert "Permanent" not in str(lasting)

    bad = {"for": {"value": option("until")}, "until": {"value": {"selected_date_time": 1}}}
    body = slack.interact(submission(view, bad, MANAGER)).json()
    assert body["response_action"] == "errors" and "at least one minute" in body["errors"]["until"]

    body = slack.interact(submission(view, {"for": {"value": option("1d")}}, MANAGER)).json()
    assert body["response_action"] == "update"
    done = slack_api.wait_for("views.update", where=lambda c: "Done" in str(c.params))
    assert "now lasts until" in str(done[0].params)
    with roleup.core.sessions() as session:
        extended = session.get(Grant, grant.id)
    assert extended.ends_at > datetime.now(UTC) + timedelta(hours=23)


def test_the_holder_asking_to_extend_waits_for_an_approver(slack, slack_api, grant, roleup):
    url = slack_api.response_url_base + "dm"
    slack.interact(click(GRANT_EXTEND_ACTION, str(grant.id), HOLDER, url))
    (opened,) = slack_api.wait_for("views.open")
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    slack.interact(submission(view, {"for": {"value": option("7d")}}, HOLDER))
    slack_api.wait_for("views.update", where=lambda c: "Asked for approval" in str(c.params))
    with roleup.core.sessions() as session:
        request = session.scalars(select(Request).where(Request.kind == "extend_grant")).one()
        unchanged = session.get(Grant, grant.id)
    assert request.state == "pending" and request.requester == HOLDER
    assert unchanged.ends_at == grant.ends_at


def test_the_app_home_lists_your_access_with_its_buttons(slack, slack_api, grant):
    body = home_opened(HOLDER, "home")
    assert slack.post(body, content_type="application/json").status_code == 200
    (published,) = slack_api.wait_for("views.publish")
    view = published.params["view"]
    text = json.dumps(view)
    assert "Your access" in text and "*ops* for *alice*" in text
    assert GRANT_END_ACTION in text and GRANT_EXTEND_ACTION in text

    slack_api.reset()
    manager_home = home_opened(MANAGER, "home").replace("EvUMANAGERhome", "EvUMANAGERhome2")
    slack.post(manager_home, content_type="application/json")
    (published,) = slack_api.wait_for("views.publish")
    text = json.dumps(published.params["view"])
    assert "Ending soon" in text and "Your access" not in text
    assert f"<@{HOLDER}>" in text


def test_end_now_from_the_app_home_publishes_it_again(slack, slack_api, grant, aws):
    url = slack_api.response_url_base + "unused"
    slack.interact(click(GRANT_END_ACTION, str(grant.id), HOLDER, url, container="view"))
    (published,) = slack_api.wait_for("views.publish")
    assert "Your access" not in json.dumps(published.params["view"])
    assert groups_of(aws) == []


def test_the_app_home_lists_the_requests_waiting_for_you(slack, slack_api, grant, roleup):
    # alice asks to extend her own access: it waits for an approver, never for her.
    request = requesting.request_extend_grant(
        roleup.core, actor=HOLDER, grant_id=grant.id, term=Term(seconds=24 * 3600)
    )
    slack_api.reset()
    slack.post(
        home_opened("UAPPROVER", "home").replace("EvUAPPROVERhome", "EvUAPPROVERhome2"),
        content_type="application/json",
    )
    (published,) = slack_api.wait_for("views.publish")
    text = json.dumps(published.params["view"])
    assert "Waiting for you" in text and request.id[:8] in text and f"<@{HOLDER}>" in text

    slack_api.reset()
    slack.post(
        home_opened(HOLDER, "home").replace(f"Ev{HOLDER}home", f"Ev{HOLDER}home3"),
        content_type="application/json",
    )
    (published,) = slack_api.wait_for("views.publish")
    assert "Waiting for you" not in json.dumps(published.params["view"])  # not hers to decide
