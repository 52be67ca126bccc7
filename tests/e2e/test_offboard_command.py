"""/offboard and /roleup integration remove as typed in Slack: signed commands into the live app."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import Account, Integration, Request
from tests.support.approvals import (
    add_integration,
    approval_post,
    click,
    make_user,
    message_text,
    request_id_of,
    user_exists,
    wait_for,
)

# moto 5 lacks service-specific credentials: answer as AWS does for a user with none.
pytestmark = [pytest.mark.usefixtures("moto_gaps"), pytest.mark.moto_server]


def test_offboard_command_asks_for_approval_and_says_where(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    response = slack.command("/offboard", "alice")
    assert response.status_code == 200
    post = approval_post(slack_api)
    assert "Console password" in message_text(post)
    told = wait_for(slack_api, "response_url:/respond/cmd")
    assert "Asked for approval in <#CAPPROVALS>" in told[-1].params["text"]
    assert told[-1].params["response_type"] == "ephemeral"
    click(slack, "approval_approve", request_id_of(post), user="UAPPROVER")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    assert not user_exists(aws, "alice")


def test_offboard_names_the_integration_when_a_username_is_in_several(
    roleup, slack, slack_api, aws
):
    core = roleup.core
    prod = add_integration(core, name="prod", path_prefix="/prod/")
    dev = add_integration(core, name="dev", path_prefix="/dev/")
    make_user(aws, core, prod, "alice", path="/prod/")
    with core.sessions.begin() as s:
        s.add(Account(integration_id=dev, user_name="alice", path="/dev/"))
    slack.command("/offboard", "alice")
    told = wait_for(slack_api, "response_url:/respond/cmd")
    assert "alice is in several integrations (dev, prod)" in told[-1].params["text"]
    slack.command("/offboard", "alice prod")
    post = approval_post(slack_api)
    assert "prod/alice" in message_text(post)


def test_offboarding_a_mentioned_slack_user_asks_once_for_all_their_accounts(
    roleup, slack, slack_api, aws
):
    core = roleup.core
    prod = add_integration(core, name="prod", path_prefix="/prod/")
    dev = add_integration(core, name="dev", path_prefix="/dev/")
    make_user(aws, core, prod, "alice-prod", path="/prod/", slack_user="UALICE")
    make_user(aws, core, dev, "alice-dev", path="/dev/", slack_user="UALICE")
    slack.command("/offboard", "<@UALICE|alice>")
    post = approval_post(slack_api)
    assert "prod/alice-prod" in message_text(post) and "dev/alice-dev" in message_text(post)
    with core.sessions() as s:
        assert len(s.scalars(select(Request)).all()) == 1


def test_roleup_integration_remove_goes_through_approval(roleup, slack, slack_api):
    core = roleup.core
    add_integration(core)
    slack.command("/roleup", "integration remove prod", user_id="UADMIN")
    post = approval_post(slack_api)
    assert "Integration removal request" in message_text(post)
    told = wait_for(slack_api, "response_url:/respond/cmd")
    assert "Asked for approval in <#CAPPROVALS>" in told[-1].params["text"]
    with core.sessions() as s:
        assert s.scalars(select(Integration.name)).all() == ["prod"]
    click(slack, "approval_approve", request_id_of(post), user="UAPPROVER")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    with core.sessions() as s:
        assert s.scalars(select(Integration)).all() == []


@pytest.mark.parametrize(
    ("user", "text", "expected"),
    [
        ("UMANAGER", "integration remove prod", "You can't manage integrations"),
        ("UADMIN", "integration remove nope", "There is no integration nope"),
    ],
)
def test_roleup_integration_remove_refusals(roleup, slack, slack_api, user, text, expected):
    add_integration(roleup.core)
    slack.command("/roleup", text, user_id=user)
    told = wait_for(slack_api, "response_url:/respond/cmd")
    assert expected in told[-1].params["text"]
    with roleup.core.sessions() as s:
        assert s.scalars(select(Request)).all() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "Say whom to offboard"),
        ("nobody", "There is no IAM user nobody"),
        ("<@UNOLINK|x>", "No IAM account is linked"),
        ("alice prod extra", "Too many words"),
        ("<!channel>", "is not an IAM username"),
        ("a" * 10_000, "too long"),
    ],
)
def test_bad_offboard_input_gets_a_short_answer(roleup, slack, slack_api, text, expected):
    add_integration(roleup.core)
    response = slack.command("/offboard", text)
    answer = response.text
    if not answer:
        answer = wait_for(slack_api, "response_url:/respond/cmd")[0].params["text"]
    assert expected in answer
    assert "Traceback" not in answer
    assert "<!channel>" not in answer
    with roleup.core.sessions() as s:
        assert s.scalars(select(Request)).all() == []


def test_a_non_manager_cannot_ask_to_offboard(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    slack.command("/offboard", "alice", user_id="USTRANGER")
    told = wait_for(slack_api, "response_url:/respond/cmd")
    assert "You can't offboard people" in told[0].params["text"]
    with core.sessions() as s:
        assert s.scalars(select(Request)).all() == []


def test_a_slack_retry_of_offboard_asks_once(roleup, slack, slack_api, aws):
    core = roleup.core
    integration_id = add_integration(core)
    make_user(aws, core, integration_id, "alice")
    slack.command("/offboard", "alice", trigger_id="777.888.trigger")
    request_id = request_id_of(approval_post(slack_api))
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    response = slack.command("/offboard", "alice", trigger_id="777.888.trigger", headers=retry)
    assert response.status_code == 200
    click(slack, "approval_approve", request_id, user="UAPPROVER")
    wait_for(slack_api, "chat.update", where=lambda c: "Done" in message_text(c))
    # Had the retry run, its request would have been posted by now (and failed its plan).
    wait_for(slack_api, "response_url:/respond/cmd")
    with core.sessions() as s:
        assert len(s.scalars(select(Request)).all()) == 1
    assert len(slack_api.calls_to("response_url:/respond/cmd")) == 1
    assert not user_exists(aws, "alice")
