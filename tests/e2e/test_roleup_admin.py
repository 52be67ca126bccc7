"""/roleup sync, link, integration add and integration remove, end to end over moto."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from bot.slack.logsafe import BODY_LOGGERS
from storage.models import Account, Integration, Request
from tests.security.snapshot import leaks
from tests.support.logs import without_redaction
from tests.support.modal import labels, option, options, submission, text, users
from tests.support.seed import ADMIN, MANAGER, STRANGER, add_integration
from tests.support.slack_answers import RESPOND

pytestmark = pytest.mark.moto_server

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def answers(slack_api, count):
    return [c.params["text"] for c in slack_api.wait_for(RESPOND, count)]


def test_sync_fills_the_store_and_reports(slack, slack_api, roleup, aws):
    add_integration(roleup.core)
    aws.create_user(UserName="zed")
    slack.command("/roleup", "sync prod", user_id=MANAGER)
    started, finished = answers(slack_api, 2)[:2]
    assert "Syncing prod" in started and "*prod*" in finished
    with roleup.core.sessions() as session:
        assert session.scalar(select(Account.user_name)) == "zed"


def test_sync_is_refused_to_a_stranger(slack, slack_api, roleup):
    add_integration(roleup.core)
    slack.command("/roleup", "sync prod", user_id=STRANGER)
    assert "can't sync" in answers(slack_api, 1)[0]


def test_link_tags_the_iam_user_and_the_store(slack, slack_api, roleup, aws):
    prod = add_integration(roleup.core)
    aws.create_user(UserName="alice")
    with roleup.core.sessions.begin() as session:
        session.add(Account(integration_id=prod, user_name="alice"))
    slack.command("/roleup", "link <@UALICE123|alice> alice", user_id=MANAGER)
    assert "Linked <@UALICE123> to *alice* in *prod*" in answers(slack_api, 1)[0]
    tags = {t["Key"]: t["Value"] for t in aws.list_user_tags(UserName="alice")["Tags"]}
    assert "UALICE123" in tags.values()
    with roleup.core.sessions() as session:
        assert session.scalar(select(Account.slack_user_id)) == "UALICE123"


def test_link_of_an_unknown_user_says_so(slack, slack_api, roleup):
    add_integration(roleup.core)
    slack.command("/roleup", "link <@UALICE123|alice> ghost", user_id=MANAGER)
    assert "No IAM user 'ghost'" in answers(slack_api, 1)[0]


def test_integration_add_is_for_admins(slack, slack_api, roleup):
    body = slack.command("/roleup", "integration add", user_id=MANAGER).json()
    assert "can't manage integrations" in body["text"] and f"<@{ADMIN}>" in body["text"]
    assert slack_api.calls_to("views.open") == []
    slack.command("/roleup", "integration add", user_id=ADMIN)
    view = slack_api.wait_for("views.open")[0].params["view"]
    assert labels(view)[:3] == ["Name", "Access key ID", "Secret access key"]
    assert "Managers" in labels(view) and "Approvers" in labels(view)


def form(name="staging", **extra):
    values = {
        "name": {"value": text(name)},
        "access_key_id": {"value": text("AKIAIOSFODNN7EXAMPLE")},
        "secret_access_key": {"value": text(SECRET)},
        "path_prefix": {"value": text("/")},
        "managers": {"value": users(MANAGER)},
        "sync_interval": {"value": {"type": "number_input", "value": "30"}},
    }
    values.update(extra)
    return values


def test_integration_add_saves_it_sealed_and_never_echoes_the_secret(
    slack, slack_api, roleup, caplog
):
    caplog.set_level(logging.DEBUG)
    for name in BODY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    with without_redaction(BODY_LOGGERS):
        slack.command("/roleup", "integration add", user_id=ADMIN)
        view = slack_api.wait_for("views.open")[0].params["view"]
        body = slack.interact(submission(view, form(), ADMIN)).json()
        assert body["response_action"] == "update"
        done = slack_api.wait_for("views.update", where=lambda c: "added" in str(c.params))
    assert "*staging* added" in str(done[0].params["view"])
    with roleup.core.sessions() as session:
        row = session.scalar(select(Integration).where(Integration.name == "staging"))
        assert row is not None and row.managers == [MANAGER] and row.sync_interval_minutes == 30
        assert SECRET not in (row.credentials_ciphertext or "")
    assert leaks(SECRET, slack_api.all_text()) == [] and leaks(SECRET, caplog.text) == []


@pytest.mark.parametrize(
    ("changes", "block"),
    [
        ({"name": {"value": text("<!channel>")}}, "name"),
        ({"name": {"value": text("x" * 10_000)}}, "name"),
        ({"role_arn": {"value": text("arn:aws:iam::123456789012:role/R")}}, "role_arn"),
        ({"access_key_id": {"value": text("nope")}}, "access_key_id"),
        ({"secret_access_key": {"value": text("")}}, "secret_access_key"),
        ({"path_prefix": {"value": text("no-slashes")}}, "path_prefix"),
        ({"sync_interval": {"value": {"type": "number_input", "value": "0"}}}, "sync_interval"),
        ({"sync_interval": {"value": {"type": "number_input", "value": "1441"}}}, "sync_interval"),
        ({"name": {"value": text("prod")}}, "name"),  # taken
        ({"approvals_required": {"value": option("9")}}, "approvals_required"),  # tampered
    ],
)
def test_integration_add_bad_input_is_flagged_inline(slack, slack_api, roleup, changes, block):
    add_integration(roleup.core)
    slack.command("/roleup", "integration add", user_id=ADMIN)
    view = slack_api.wait_for("views.open")[0].params["view"]
    body = slack.interact(submission(view, form(**changes), ADMIN)).json()
    assert body["response_action"] == "errors" and block in body["errors"], body
    assert SECRET not in str(body)


def test_integration_add_stores_the_reason_and_quorum_settings(slack, slack_api, roleup):
    slack.command("/roleup", "integration add", user_id=ADMIN)
    view = slack_api.wait_for("views.open")[0].params["view"]
    assert "Approvers needed" in labels(view)
    chosen = {
        "options": {"value": options("require_reason")},
        "approvals_required": {"value": option("2")},
    }
    body = slack.interact(submission(view, form(**chosen), ADMIN)).json()
    assert body["response_action"] == "update", body
    slack_api.wait_for("views.update", where=lambda c: "added" in str(c.params))
    with roleup.core.sessions() as session:
        row = session.scalar(select(Integration).where(Integration.name == "staging"))
        assert row is not None and row.require_reason and row.approvals_required == 2


def test_integration_add_submitted_by_a_non_admin_is_refused(slack, slack_api, roleup):
    slack.command("/roleup", "integration add", user_id=ADMIN)
    view = slack_api.wait_for("views.open")[0].params["view"]
    body = slack.interact(submission(view, form(), MANAGER)).json()
    assert body["response_action"] == "errors"
    with roleup.core.sessions() as session:
        assert session.scalar(select(Integration)) is None


def test_integration_remove_asks_for_approval(slack, slack_api, roleup):
    add_integration(roleup.core)
    slack.command("/roleup", "integration remove prod", user_id=ADMIN)
    slack_api.wait_for(RESPOND)
    with roleup.core.sessions() as session:
        request = session.scalar(select(Request))
    assert request is not None and request.kind == "remove_integration"
    assert request.state == "pending"
    slack_api.reset()
    slack.command("/roleup", "integration remove prod", user_id=MANAGER)
    assert "can't manage integrations" in answers(slack_api, 1)[0]


def test_integration_remove_takes_a_reason_the_integration_requires(slack, slack_api, roleup):
    add_integration(roleup.core, require_reason=True)
    slack.command("/roleup", "integration remove prod", user_id=ADMIN)
    assert "requires a reason" in answers(slack_api, 1)[0]
    slack_api.reset()
    slack.command("/roleup", "integration remove prod -- retiring the account", user_id=ADMIN)
    slack_api.wait_for(RESPOND)
    with roleup.core.sessions() as session:
        request = session.scalar(select(Request))
    assert request is not None and request.reason == "retiring the account"


def test_refresh_on_accounts_syncs_then_shows_the_new_state(slack, slack_api, roleup, aws):
    from tests.support.slack_answers import _acked, _click, _text

    add_integration(roleup.core)
    first = _acked(slack.command("/accounts", "prod", user_id=MANAGER))
    assert "*newcomer*" not in _text(first)
    aws.create_user(UserName="newcomer")
    refresh = first["blocks"][-1]["elements"][0]
    assert refresh["text"]["text"] == "Refresh"
    slack.interact(_click(refresh, MANAGER, slack_api.response_url_base + "cmd"))
    second = slack_api.wait_for(RESPOND)[0].params
    assert second["replace_original"] is True and "*newcomer*" in _text(second)


def test_a_tampered_onboard_form_is_refused_inline(slack, slack_api, roleup):
    add_integration(roleup.core)
    slack.command("/onboard", "", user_id=MANAGER)
    view = slack_api.wait_for("views.update")[0].params["view"]
    tampered = {**view, "private_metadata": "\x00not json<!channel>"}
    values = {"username": {"value": text("ok.name")}, "password": {"value": text("\x07" * 3)}}
    body = slack.interact(submission(tampered, values, MANAGER)).json()
    assert body["response_action"] == "errors" and "integration" in body["errors"]
