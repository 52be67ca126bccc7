"""/onboard end to end: signed requests into the live app, IAM on a moto server."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.slack.logsafe import BODY_LOGGERS
from storage.models import Grant, Group, ManagedPolicy
from tests.security.snapshot import leaks
from tests.support.logs import without_redaction
from tests.support.modal import labels, option, submission, suggestion, text
from tests.support.onboard_modal import CHECKBOX, POLICY, TYPED, fill, open_modal  # noqa: F401
from tests.support.seed import MANAGER, STRANGER, add_integration

pytestmark = pytest.mark.moto_server


@pytest.fixture(autouse=True)
def only_the_guards():
    """The log assertions below measure the app's own guards, not bot.logging_setup's masking."""
    with without_redaction(BODY_LOGGERS):
        yield


@pytest.fixture
def prod(roleup, aws):
    integration_id = add_integration(roleup.core)
    aws.create_group(GroupName="developers")
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
    )
    policy_arn = aws.create_policy(PolicyName="ReadSome", PolicyDocument=document)["Policy"]["Arn"]
    assert policy_arn == POLICY
    with roleup.core.sessions.begin() as session:
        session.add(Group(integration_id=integration_id, name="developers"))
        session.add(
            ManagedPolicy(
                integration_id=integration_id,
                arn=POLICY,
                name="ReadSome",
                aws_managed=False,
            )
        )
    return integration_id


def test_modal_opens_at_once_then_fills_with_the_product_labels(slack, slack_api, prod):
    view = open_modal(slack, slack_api)
    assert labels(view) == [
        "Integration",
        "Username",
        "Initial password",
        "Generate",
        "Groups",
        "For",
        "Until",
        "Managed policies",
        "Slack user",
        "Account expires",
        "Reason",
        "Ticket",
    ]
    groups = next(b for b in view["blocks"] if b.get("block_id") == "groups")
    assert [o["value"] for o in groups["element"]["options"]] == ["developers"]


def test_typed_password_onboarding_creates_the_user_and_never_logs_it(
    slack, slack_api, prod, aws, caplog
):
    _debug_everything(caplog)
    view = open_modal(slack, slack_api)
    response = slack.interact(submission(view, fill(prod, "alice"), MANAGER))
    assert response.json()["response_action"] == "update"
    done = slack_api.wait_for("views.update", where=lambda c: "created" in str(c.params))
    assert "*alice* was created in *prod*" in str(done[0].params["view"])
    assert aws.get_user(UserName="alice")["User"]["UserName"] == "alice"
    assert [g["GroupName"] for g in aws.list_groups_for_user(UserName="alice")["Groups"]] == [
        "developers"
    ]
    # moto does not echo PasswordResetRequired (the iam service tests assert the call itself).
    assert aws.get_login_profile(UserName="alice")["LoginProfile"]["UserName"] == "alice"
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # the capture did run at DEBUG
    assert leaks(TYPED, caplog.text) == []
    assert leaks(TYPED, slack_api.all_text()) == []


def test_generated_password_is_shown_once_to_the_requester_only(
    slack, slack_api, prod, aws, caplog
):
    _debug_everything(caplog)
    view = open_modal(slack, slack_api)
    slack.interact(submission(view, fill(prod, "bob", password="", generate=True), MANAGER))
    shown = slack_api.wait_for("chat.postEphemeral")
    assert len(shown) == 1
    assert shown[0].params["user"] == MANAGER and shown[0].params["channel"] == "CGENERAL"
    message = shown[0].params["text"]
    password = message.split("`")[1].replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    assert len(password) >= 8
    slack_api.wait_for("views.update", where=lambda c: "created" in str(c.params))
    others = [c for c in slack_api.calls if c is not shown[0]]
    assert all(leaks(password, str(c.params)) == [] for c in others)
    assert leaks(password, caplog.text) == []
    assert aws.get_login_profile(UserName="bob")["LoginProfile"]["UserName"] == "bob"


def test_fast_errors_are_inline_and_the_modal_stays_open(slack, slack_api, prod):
    view = open_modal(slack, slack_api)
    cases = {
        "bad name!": "username",
        "x" * 10_000: "username",
        "<!channel>": "username",
    }
    for username, block in cases.items():
        body = slack.interact(submission(view, fill(prod, username), MANAGER)).json()
        assert body["response_action"] == "errors" and block in body["errors"]
    neither = fill(prod, "dave", password="")
    body = slack.interact(submission(view, neither, MANAGER)).json()
    assert body["errors"] == {"password": "Type a password, or tick Generate."}
    both = fill(prod, "dave", generate=True)
    assert "password" in slack.interact(submission(view, both, MANAGER)).json()["errors"]
    missing = {k: v for k, v in fill(prod, "dave").items() if k != "username"}
    assert "username" in slack.interact(submission(view, missing, MANAGER)).json()["errors"]


def test_an_existing_username_is_flagged_on_the_field(slack, slack_api, prod, aws):
    view = open_modal(slack, slack_api)
    slack.interact(submission(view, fill(prod, "erin"), MANAGER))
    slack_api.wait_for("views.update", where=lambda c: "created" in str(c.params))
    body = slack.interact(submission(view, fill(prod, "ERIN"), MANAGER)).json()
    assert body["response_action"] == "errors" and "already taken" in body["errors"]["username"]


def test_a_weak_password_comes_back_on_the_form_without_the_password(slack, slack_api, prod, aws):
    aws.update_account_password_policy(MinimumPasswordLength=20, RequireSymbols=True)
    view = open_modal(slack, slack_api)
    slack.interact(submission(view, fill(prod, "frank", password="short"), MANAGER))
    back = slack_api.wait_for("views.update", where=lambda c: ":warning:" in str(c.params))
    sent = back[0].params["view"]
    assert sent["callback_id"] == "onboard"
    username = next(b for b in sent["blocks"] if b.get("block_id") == "username")
    assert username["element"]["initial_value"] == "frank"
    password = next(b for b in sent["blocks"] if b.get("block_id") == "password")
    assert "initial_value" not in password["element"] and "'short'" not in str(sent)
    with pytest.raises(aws.exceptions.NoSuchEntityException):
        aws.get_user(UserName="frank")


def test_policy_search_answers_from_the_store(slack, slack_api, prod):
    view = open_modal(slack, slack_api)
    body = slack.interact(suggestion(view, "onboard_policies", "readso", MANAGER)).json()
    assert [o["value"] for o in body["options"]] == [POLICY]
    stranger = slack.interact(suggestion(view, "onboard_policies", "", STRANGER)).json()
    assert stranger["options"] == []


def test_a_stranger_sees_a_refusal_naming_the_managers(slack, slack_api, prod):
    slack.command("/onboard", "", user_id=STRANGER)
    update = slack_api.wait_for("views.update")[0].params["view"]
    assert "can't onboard people" in str(update) and f"<@{MANAGER}>" in str(update)


def test_unknown_onboard_option_gets_usage(slack, slack_api):
    body = slack.command("/onboard", "<!channel>", user_id=MANAGER).json()
    assert "Usage: `/onboard" in body["text"] and "<!channel>" not in body["text"]
    assert slack_api.calls_to("views.open") == []


def _debug_everything(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("roleup", "slack_bolt", "slack_sdk", "botocore", "urllib3", *BODY_LOGGERS):
        caplog.set_level(logging.DEBUG, logger=name)


def test_onboarding_that_needs_approval_waits_and_says_where(slack, slack_api, prod, aws, roleup):
    from storage.models import Integration

    with roleup.core.sessions.begin() as session:
        session.get(Integration, prod).approve_onboarding = True
    view = open_modal(slack, slack_api)
    slack.interact(submission(view, fill(prod, "gina"), MANAGER))
    slack_api.wait_for("views.update", where=lambda c: "Asked for approval" in str(c.params))
    with pytest.raises(aws.exceptions.NoSuchEntityException):
        aws.get_user(UserName="gina")
    assert leaks(TYPED, slack_api.all_text()) == []


# --- groups for a while -------------------------------------------------------------------------
def test_groups_given_for_a_day_at_onboarding_end_with_a_pinned_grant(
    slack, slack_api, prod, aws, roleup
):
    view = open_modal(slack, slack_api)
    values = {**fill(prod, "carol"), "for": {"value": option("1d")}}
    slack.interact(submission(view, values, MANAGER))
    done = slack_api.wait_for("views.update", where=lambda c: "created" in str(c.params))
    assert "*carol* was created in *prod*" in str(done[0].params["view"])
    with roleup.core.sessions() as session:
        grant = session.scalars(select(Grant)).one()
    user = aws.get_user(UserName="carol")["User"]
    assert (grant.user_name, grant.group_name, grant.state) == ("carol", "developers", "active")
    assert grant.user_id == user["UserId"] and grant.slack_user_id == "UNEWBIE"
    assert timedelta(hours=23) < grant.ends_at - datetime.now(UTC) <= timedelta(days=1)


def test_a_bad_until_at_onboarding_is_shown_by_the_field_and_keeps_the_choice(
    slack, slack_api, prod, aws
):
    view = open_modal(slack, slack_api)
    past = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    values = {
        **fill(prod, "dave"),
        "for": {"value": option("until")},
        "until": {"value": {"type": "datetimepicker", "selected_date_time": past}},
    }
    body = slack.interact(submission(view, values, MANAGER)).json()
    assert body["response_action"] == "errors"
    assert "at least one minute" in body["errors"]["until"]
    assert "dave" not in [u["UserName"] for u in aws.list_users()["Users"]]


def test_a_required_reason_is_asked_inline_and_kept_with_the_request(
    slack, slack_api, prod, roleup
):
    from storage.models import Integration, Request

    with roleup.core.sessions.begin() as session:
        session.get(Integration, prod).require_reason = True
    view = open_modal(slack, slack_api)
    body = slack.interact(submission(view, fill(prod, "alice"), MANAGER)).json()
    assert body["response_action"] == "errors"
    assert "requires a reason" in body["errors"]["reason"]
    values = {**fill(prod, "alice"), "reason": {"value": text("Joins the data team")}}
    values["ticket"] = {"value": text("https://jira.example.com/browse/HR-1")}
    assert slack.interact(submission(view, values, MANAGER)).json()["response_action"] == "update"
    slack_api.wait_for("views.update", where=lambda c: "was created" in str(c.params))
    with roleup.core.sessions() as session:
        row = session.query(Request).one()
    assert (row.reason, row.ticket) == (
        "Joins the data team",
        "https://jira.example.com/browse/HR-1",
    )
