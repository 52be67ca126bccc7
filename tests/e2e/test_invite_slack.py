"""Invites through Slack end to end: really signed commands, clicks and modal submissions into the
live app, the Slack stand-in recording what the app sent, AWS as a moto server over HTTP."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.services import invites
from bot.services.aws import AwsClients
from storage.models import Grant, Invite, Request, utcnow
from tests.support.approvals import click, wait_until
from tests.support.aws_calls import AwsCalls
from tests.support.invite_flow import (  # noqa: F401
    answer_values,
    create_values,
    dm_button,
    open_answer_form,
    opened_view,
    outcome_view,
    send_invite,
    submit_answer,
    text_field,
    view_submission,
)
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.secrets import rows_containing
from tests.support.seed import add_integration

pytestmark = pytest.mark.moto_server


@pytest.fixture
def aws_calls(monkeypatch) -> AwsCalls:
    """Every call of every AWS client the app builds, with its parameters."""
    calls = AwsCalls()
    original = AwsClients._client

    def recording(self: AwsClients, *args: Any, **kwargs: Any) -> Any:
        return calls.attach(original(self, *args, **kwargs))

    monkeypatch.setattr(AwsClients, "_client", recording)
    return calls


@pytest.fixture
def moto_iam(aws):
    aws.create_group(GroupName="developers")
    return aws


@pytest.fixture
def prod(roleup, moto_iam):
    from storage.models import Group

    integration_id = add_integration(roleup.core)
    with roleup.core.sessions.begin() as s:
        s.add(Group(integration_id=integration_id, name="developers"))
    return integration_id


def invite_request(core) -> Request:
    with core.sessions() as s:
        return s.scalars(select(Request)).one()


# --- the whole flow ---------------------------------------------------------------------------
def test_invite_answered_in_slack_waits_for_approval_then_creates_the_account(
    roleup, slack, slack_api, prod, moto_iam, aws_calls
):
    dm = send_invite(slack, slack_api)
    link = json.dumps(dm["blocks"])
    assert "/invite/" in link and "Choose username and password" in link
    assert "developers" in link

    form = open_answer_form(slack, slack_api, dm)
    assert form["callback_id"] == "invite_answer"
    labels = [b["label"]["text"] for b in form["blocks"] if b["type"] == "input"]
    assert labels == ["Username", "Initial password", "Confirm initial password"]
    assert "Password policy" in json.dumps(form["blocks"])

    submit_answer(slack, slack_api, form, answer_values("newbie", GOOD_PASSWORD))
    outcome_view(slack_api, "waiting for approval")
    request = invite_request(roleup.core)
    assert (request.kind, request.state, request.requester) == (
        "invite_onboard",
        "pending",
        "UNEWBIE",
    )
    assert rows_containing(roleup.core.engine, GOOD_PASSWORD) == []
    # The DM loses its button: the invite is used.
    (updated,) = slack_api.wait_for(
        "chat.update", where=lambda c: c.params["channel"] == "DUNEWBIE"
    )
    assert "invite_open" not in json.dumps(updated.params["blocks"])
    # Approvers are asked; the account does not exist yet.
    slack_api.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == "CAPPROVALS")
    assert "newbie" not in [u["UserName"] for u in moto_iam.list_users()["Users"]]

    # The manager who made the invite never completes it; an approver does.
    click(slack, "approval_approve", request.id, user="UMANAGER")
    slack_api.wait_for(
        "response_url:/respond/click-UMANAGER",
        where=lambda c: "created this invite" in json.dumps(c.params),
    )
    assert invite_request(roleup.core).state == "pending"
    click(slack, "approval_approve", request.id, user="UAPPROVER")
    wait_until(lambda: invite_request(roleup.core).state == "done")
    done = invite_request(roleup.core)
    assert done.secret_ciphertext is None
    moto_iam.get_login_profile(UserName="newbie")
    # moto does not echo PasswordResetRequired back: assert on the call RoleUp made.
    (profile,) = aws_calls.params("CreateLoginProfile")
    assert profile["PasswordResetRequired"] is True
    assert profile["Password"] == GOOD_PASSWORD  # the invitee's own choice reached AWS
    groups = moto_iam.list_groups_for_user(UserName="newbie")["Groups"]
    assert [g["GroupName"] for g in groups] == ["developers"]
    told = slack_api.wait_for(
        "chat.postMessage",
        where=lambda c: c.params["channel"] == "UNEWBIE" and "newbie" in c.params["text"],
    )
    assert "done" in told[0].params["text"]
    assert GOOD_PASSWORD not in slack_api.all_text()
    assert rows_containing(roleup.core.engine, GOOD_PASSWORD) == []


def test_denying_the_request_erases_the_password_and_creates_nothing(
    roleup, slack, slack_api, prod, moto_iam
):
    dm = send_invite(slack, slack_api)
    form = open_answer_form(slack, slack_api, dm)
    submit_answer(slack, slack_api, form, answer_values("newbie", GOOD_PASSWORD))
    outcome_view(slack_api, "waiting for approval")
    request = invite_request(roleup.core)
    click(slack, "approval_deny", request.id, user="UAPPROVER")
    wait_until(lambda: invite_request(roleup.core).state == "denied")
    assert invite_request(roleup.core).secret_ciphertext is None
    assert moto_iam.list_users()["Users"] == []
    slack_api.wait_for(
        "chat.postMessage",
        where=lambda c: c.params["channel"] == "UNEWBIE" and "denied" in c.params["text"],
    )


# --- bad answers in the modal -------------------------------------------------------------------
def test_a_bad_answer_comes_back_as_field_errors_and_changes_nothing(
    roleup, slack, slack_api, prod, moto_iam
):
    dm = send_invite(slack, slack_api)
    form = open_answer_form(slack, slack_api, dm)
    answer = view_submission(slack, "UNEWBIE", form, answer_values("has space", "weak"))
    assert answer["response_action"] == "errors"
    assert answer["errors"]["username"].startswith("A username has 1 to 64 characters")
    assert "does not meet the policy" in answer["errors"]["password"]
    assert "weak" not in json.dumps(answer)
    mismatch = view_submission(
        slack, "UNEWBIE", form, answer_values("fresh", GOOD_PASSWORD, "Other-Passw0rd!")
    )
    assert mismatch == {
        "response_action": "errors",
        "errors": {"confirm": "The two passwords are not the same."},
    }
    with roleup.core.sessions() as s:
        assert s.scalars(select(Request)).all() == []
        assert s.scalars(select(Invite.used_at)).one() is None


def test_a_username_taken_in_aws_brings_the_form_back_with_the_reason(
    roleup, slack, slack_api, prod, moto_iam
):
    moto_iam.create_user(UserName="taken")
    dm = send_invite(slack, slack_api)
    form = open_answer_form(slack, slack_api, dm)
    submit_answer(slack, slack_api, form, answer_values("taken", GOOD_PASSWORD))
    again = outcome_view(slack_api, "That username is taken")
    assert again["callback_id"] == "invite_answer"
    blocks = {b.get("block_id"): b for b in again["blocks"]}
    assert blocks["username"]["element"]["initial_value"] == "taken"
    assert "initial_value" not in blocks["password"]["element"]
    assert GOOD_PASSWORD not in slack_api.all_text()
    with roleup.core.sessions() as s:
        assert s.scalars(select(Request)).all() == []
        assert s.scalars(select(Invite.used_at)).one() is None


def test_only_the_invited_person_can_open_or_answer_the_invite(
    roleup, slack, slack_api, prod, moto_iam
):
    dm = send_invite(slack, slack_api)
    form = open_answer_form(slack, slack_api, dm, user="USTRANGER")
    assert form.get("callback_id") != "invite_answer"
    assert "sent to someone else" in json.dumps(form)
    real_form = open_answer_form_again(slack, slack_api, dm)
    answer = view_submission(slack, "USTRANGER", real_form, answer_values("x", GOOD_PASSWORD))
    assert answer["response_action"] == "update"
    assert "sent to someone else" in json.dumps(answer["view"])
    with roleup.core.sessions() as s:
        assert s.scalars(select(Request)).all() == []


@pytest.mark.parametrize("value", ["9" * 5000, "²", "99999999999", "-1"])
def test_a_hostile_button_value_shows_not_found(roleup, slack, slack_api, prod, value):
    form = open_answer_form(slack, slack_api, {"blocks": [_button(value)]})
    assert "This invite link is not valid" in json.dumps(form)


def _button(value: str) -> dict[str, Any]:
    return {"type": "actions", "elements": [{"action_id": "invite_open", "value": value}]}


def open_answer_form_again(slack, slack_api, dm) -> dict[str, Any]:
    return open_answer_form(slack, slack_api, dm)


def test_two_submissions_racing_file_one_request(roleup, slack, slack_api, prod, moto_iam):
    dm = send_invite(slack, slack_api)
    form = open_answer_form(slack, slack_api, dm)
    barrier = threading.Barrier(2)

    def submit(name: str) -> None:
        barrier.wait()
        view_submission(slack, "UNEWBIE", form, answer_values(name, GOOD_PASSWORD))

    threads = [threading.Thread(target=submit, args=(n,)) for n in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome_view(slack_api, "waiting for approval")
    outcome_view(slack_api, "already used")
    shown = [json.dumps(c.params) for c in slack_api.calls_to("views.update")]
    assert sum("waiting for approval" in text for text in shown) == 1
    with roleup.core.sessions() as s:
        assert len(s.scalars(select(Request)).all()) == 1


# --- the manager's side ---------------------------------------------------------------------------
def test_the_invite_modal_is_preset_for_the_mentioned_person(roleup, slack, slack_api, prod):
    slack.command("/onboard", "invite <@UNEWBIE|newbie>", user_id="UMANAGER")
    view = opened_view(slack_api, "invite_create")
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks["invite_user"]["label"]["text"] == "Slack user"
    assert blocks["invite_user"]["element"]["initial_user"] == "UNEWBIE"
    assert blocks["invite_groups"]["label"]["text"] == "Groups"
    assert [o["value"] for o in blocks["invite_groups"]["element"]["options"]] == ["developers"]
    with roleup.core.sessions() as s:
        assert s.scalars(select(Invite)).all() == []  # nothing is made until it is sent


@pytest.mark.parametrize(
    ("text", "user", "expected"),
    [
        ("invite", "UMANAGER", "Who should get the invite?"),
        ("invite bob prod", "UMANAGER", "Mention the person with @."),
        ("invite <@UNEWBIE> nowhere", "UMANAGER", "There is no integration named nowhere."),
        ("invite <@UNEWBIE> prod", "URANDOM", "Only the managers of prod can send invites"),
        ("invite <@UNEWBIE>", "URANDOM", "you manage none"),
    ],
)
def test_a_bad_invite_command_gets_a_short_ephemeral_answer(
    roleup, slack, slack_api, prod, text, user, expected
):
    assert slack.command("/onboard", text, user_id=user).status_code == 200
    (reply,) = slack_api.wait_for("response_url:/respond/cmd")
    assert expected in reply.params["text"]
    assert reply.params["response_type"] == "ephemeral"
    assert slack_api.calls_to("views.open") == []
    with roleup.core.sessions() as s:
        assert s.scalars(select(Invite)).all() == []


def test_an_invite_that_cannot_be_delivered_is_not_kept(roleup, slack, slack_api, prod):
    slack.command("/onboard", "invite <@UNEWBIE|newbie> prod", user_id="UMANAGER")
    view = opened_view(slack_api, "invite_create")
    slack_api.fail("conversations.open", "cannot_dm_bot")
    view_submission(slack, "UMANAGER", view, create_values("UNEWBIE", []))
    (shown,) = slack_api.wait_for("views.update")
    assert "Invite not sent" in json.dumps(shown.params["view"])
    assert "Could not send this person a message (cannot_dm_bot)" in json.dumps(shown.params)
    with roleup.core.sessions() as s:
        assert s.scalars(select(Invite)).all() == []


def test_the_dm_link_opens_the_web_page(roleup, live, slack, slack_api, prod):
    import re

    import requests

    dm = send_invite(slack, slack_api)
    found = re.search(r"<(http[^|>]+/invite/([A-Za-z0-9_-]+))\|", json.dumps(dm["blocks"]))
    assert found
    token = found.group(2)
    assert invites.open_invite(roleup.core, token).slack_user_id == "UNEWBIE"
    page = requests.get(f"{live.url}/invite/{token}", timeout=10)
    assert page.status_code == 200 and "Choose your AWS sign-in" in page.text


# --- groups for a while -------------------------------------------------------------------------
def test_an_invites_groups_given_for_7_days_become_a_grant_when_it_is_approved(
    roleup, slack, slack_api, prod, moto_iam
):
    slack.command("/onboard", "invite <@UNEWBIE|newbie> prod", user_id="UMANAGER")
    view = opened_view(slack_api, "invite_create")
    lasting = next(b for b in view["blocks"] if b.get("block_id") == "invite_for")
    assert lasting["label"]["text"] == "For"
    values = {
        **create_values("UNEWBIE", ["developers"]),
        "invite_for": {"value": {"type": "static_select", "selected_option": {"value": "7d"}}},
    }
    assert view_submission(slack, "UMANAGER", view, values)["response_action"] == "update"
    (dm,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == "DUNEWBIE"
    )
    # The manager's "Invite sent" comes after the DM: waited for, so that it is not taken for
    # the answer form's views.update below.
    slack_api.wait_for("views.update", where=lambda c: "Invite sent" in json.dumps(c.params))
    form = open_answer_form(slack, slack_api, dm.params)
    submit_answer(slack, slack_api, form, answer_values("newbie", GOOD_PASSWORD))
    outcome_view(slack_api, "waiting for approval")
    request = invite_request(roleup.core)
    assert request.payload["for_seconds"] == 7 * 24 * 3600
    (approval,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == "CAPPROVALS"
    )
    assert "*Groups:* developers (for 7 days)" in json.dumps(approval.params["blocks"])
    click(slack, "approval_approve", request.id, user="UAPPROVER")
    wait_until(lambda: invite_request(roleup.core).state == "done")
    with roleup.core.sessions() as session:
        grant = session.scalars(select(Grant)).one()
    user_id = moto_iam.get_user(UserName="newbie")["User"]["UserId"]
    assert (grant.user_name, grant.group_name, grant.user_id) == ("newbie", "developers", user_id)
    assert grant.slack_user_id == "UNEWBIE" and grant.requester == "UNEWBIE"
    assert timedelta(days=6, hours=23) < grant.ends_at - utcnow() <= timedelta(days=7)


def test_an_invites_until_in_the_past_is_shown_by_the_field(roleup, slack, slack_api, prod):
    slack.command("/onboard", "invite <@UNEWBIE|newbie> prod", user_id="UMANAGER")
    view = opened_view(slack_api, "invite_create")
    past = int((utcnow() - timedelta(hours=1)).timestamp())
    values = {
        **create_values("UNEWBIE", ["developers"]),
        "invite_for": {"value": {"type": "static_select", "selected_option": {"value": "until"}}},
        "invite_until": {"value": {"type": "datetimepicker", "selected_date_time": past}},
    }
    answer = view_submission(slack, "UMANAGER", view, values)
    assert answer["response_action"] == "errors"
    assert "at least one minute" in answer["errors"]["invite_until"]
    with roleup.core.sessions() as session:
        assert session.scalars(select(Invite)).all() == []
