"""/groups end to end: current groups preselected; grants applied, removals sent for approval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.services import grants
from storage.models import Grant, Group, Request
from tests.support.modal import option, options, submission
from tests.support.modal import text as typed
from tests.support.seed import MANAGER, STRANGER, add_account, add_integration
from tests.support.slack_answers import _acked

pytestmark = pytest.mark.moto_server


@pytest.fixture
def prod(roleup, aws):
    integration_id = add_integration(roleup.core)
    for name in ("developers", "ops", "xchannel"):
        aws.create_group(GroupName=name)
        with roleup.core.sessions.begin() as session:
            session.add(Group(integration_id=integration_id, name=name))
    aws.create_user(UserName="alice")
    aws.add_user_to_group(UserName="alice", GroupName="developers")
    add_account(roleup.core.sessions, integration_id, "alice", ("developers",))
    return integration_id


def open_groups(slack, slack_api, text="alice", user_id=MANAGER):
    assert slack.command("/groups", text, user_id=user_id).status_code == 200
    slack_api.wait_for("views.open")
    return slack_api.wait_for("views.update")[0].params["view"]


def groups_of(aws, user):
    return sorted(g["GroupName"] for g in aws.list_groups_for_user(UserName=user)["Groups"])


def test_modal_preselects_current_groups_among_grantable(slack, slack_api, prod):
    view = open_groups(slack, slack_api)
    block = next(b for b in view["blocks"] if b.get("block_id") == "groups")
    assert block["label"]["text"] == "Groups"
    assert [o["value"] for o in block["element"]["initial_options"]] == ["developers"]
    assert {o["value"] for o in block["element"]["options"]} == {"developers", "ops", "xchannel"}


def test_a_grant_is_applied_directly(slack, slack_api, prod, aws, roleup):
    view = open_groups(slack, slack_api)
    values = {"groups": {"value": options("developers", "ops")}}
    body = slack.interact(submission(view, values, MANAGER)).json()
    assert body["response_action"] == "update"
    done = slack_api.wait_for("views.update", where=lambda c: "changed" in str(c.params))
    assert "Added: ops" in str(done[0].params["view"])
    assert groups_of(aws, "alice") == ["developers", "ops"]


def test_a_removal_waits_for_an_approver(slack, slack_api, prod, aws, roleup):
    view = open_groups(slack, slack_api)
    slack.interact(submission(view, {"groups": {"value": options()}}, MANAGER))
    slack_api.wait_for(
        "views.update", where=lambda c: "Asked for approval in <#CAPPROVALS>" in str(c.params)
    )
    assert groups_of(aws, "alice") == ["developers"]
    with roleup.core.sessions() as session:
        request = session.query(Request).one()
    assert request.kind == "set_groups" and request.state == "pending"
    assert request.payload["removed"] == ["developers"]


def test_unknown_user_stranger_and_bad_input(slack, slack_api, prod):
    view = open_groups(slack, slack_api, "nobody")
    assert "No IAM user 'nobody'" in str(view)
    slack_api.reset()
    view = open_groups(slack, slack_api, "alice", user_id=STRANGER)
    assert "can't change groups" in str(view) and f"<@{MANAGER}>" in str(view)
    for text in ["", "<!channel>", "x" * 10_000, "a b c", "\x00\x07"]:
        body = slack.command("/groups", text, user_id=MANAGER).json()
        assert "Usage: `/groups" in body["text"] and "<!channel>" not in body["text"]


def test_a_tampered_form_is_refused_inline(slack, slack_api, prod):
    view = open_groups(slack, slack_api)
    tampered = {**view, "private_metadata": "not json"}
    body = slack.interact(submission(tampered, {}, MANAGER)).json()
    assert body["response_action"] == "errors" and "out of date" in body["errors"]["groups"]


# --- for a while --------------------------------------------------------------------------------
def until(moment: datetime) -> dict:
    return {"type": "datetimepicker", "selected_date_time": int(moment.timestamp())}


def test_the_modal_offers_for_and_until(slack, slack_api, prod):
    view = open_groups(slack, slack_api)
    lasting = next(b for b in view["blocks"] if b.get("block_id") == "for")
    assert lasting["label"]["text"] == "For"
    assert [o["text"]["text"] for o in lasting["element"]["options"]] == [
        "Permanent",
        "1 hour",
        "4 hours",
        "1 day",
        "7 days",
        "30 days",
        "Until a date and time…",
    ]
    picker = next(b for b in view["blocks"] if b.get("block_id") == "until")
    assert picker["element"]["type"] == "datetimepicker"


def test_a_grant_for_4_hours_is_shown_with_its_end_in_accounts_and_groups(
    slack, slack_api, prod, aws, roleup
):
    view = open_groups(slack, slack_api)
    values = {
        "groups": {"value": options("developers", "ops")},
        "for": {"value": option("4h")},
    }
    slack.interact(submission(view, values, MANAGER))
    done = slack_api.wait_for("views.update", where=lambda c: "changed" in str(c.params))
    with roleup.core.sessions() as session:
        grant = session.scalars(select(Grant)).one()
    end = grants.shown(grant.ends_at)
    assert f"Added: ops (until {end})" in str(done[0].params["view"])
    assert groups_of(aws, "alice") == ["developers", "ops"]
    assert grant.group_name == "ops" and grant.requester == MANAGER

    slack_api.reset()
    listed = _acked(slack.command("/accounts", "", user_id=MANAGER))
    assert f"`ops` (until {end})" in str(listed)

    slack_api.reset()
    again = open_groups(slack, slack_api)
    assert f"ops (until {end})" in str(again["blocks"][0])


@pytest.mark.parametrize(
    ("values", "block", "words"),
    [
        ({"for": {"value": option("until")}}, "until", "Pick the date and time"),
        (
            {"for": {"value": option("until")}, "until": {"value": until(datetime.now(UTC))}},
            "until",
            "at least one minute",
        ),
        (
            {
                "for": {"value": option("until")},
                "until": {"value": until(datetime.now(UTC) + timedelta(days=91))},
            },
            "until",
            "within 90 days",
        ),
        ({"for": {"value": option("forever")}}, "for", "from the list"),
        (
            {"for": {"value": option("until")}, "until": {"value": {"selected_date_time": "x"}}},
            "until",
            "Pick the date and time",
        ),
    ],
)
def test_a_bad_end_is_an_inline_error_and_nothing_changes(
    slack, slack_api, prod, aws, roleup, values, block, words
):
    view = open_groups(slack, slack_api)
    values = {"groups": {"value": options("developers", "ops")}, **values}
    body = slack.interact(submission(view, values, MANAGER)).json()
    assert body["response_action"] == "errors"
    assert words in body["errors"][block]
    assert groups_of(aws, "alice") == ["developers"]
    with roleup.core.sessions() as session:
        assert session.scalars(select(Request)).all() == []


def test_a_reason_the_integration_requires_is_asked_inline_then_shown_to_approvers(
    slack, slack_api, prod, roleup
):
    from storage.models import Integration

    with roleup.core.sessions.begin() as session:
        session.get(Integration, prod).require_reason = True
    view = open_groups(slack, slack_api)
    assert [b.get("block_id") for b in view["blocks"]][-2:] == ["reason", "ticket"]
    removal = {"groups": {"value": options()}}
    refused = {
        "reason": ({}, "requires a reason"),
        "ticket": (
            {"reason": {"value": typed("moving teams")}, "ticket": {"value": typed("http://x")}},
            "https://",
        ),
    }
    for block, (extra, says) in refused.items():
        body = slack.interact(submission(view, {**removal, **extra}, MANAGER)).json()
        assert body["response_action"] == "errors" and says in body["errors"][block]
    long = {"reason": {"value": typed("x" * 501)}}
    body = slack.interact(submission(view, {**removal, **long}, MANAGER)).json()
    assert "too long" in body["errors"]["reason"]
    with roleup.core.sessions() as session:
        assert session.query(Request).count() == 0
    why = {
        "reason": {"value": typed("Moving to <!here> data")},
        "ticket": {"value": typed("OPS-7")},
    }
    slack.interact(submission(view, {**removal, **why}, MANAGER))
    (post,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params.get("channel") == "CAPPROVALS"
    )
    shown = str(post.params["blocks"])
    assert "*Reason:* Moving to &lt;!here&gt; data" in shown and "<!here>" not in shown
    assert "*Ticket:* OPS-7" in shown
