"""A submission's outcome whose modal was closed while it waited (the waiting view's Close, or a
retry's empty answer): Slack answers views.update with `not_found`, and the person who submitted
it is told in one DM naming the form, never with a secret the modal would not have shown them. A
`hash_conflict` is no closed modal: nobody is messaged. Really signed requests into the real app,
the store stalled past the ack (tests/support/held_store.py), IAM on a moto server, both stores."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.security.snapshot import leaks
from tests.support import invite_flow as invites
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.modal import options, submission
from tests.support.onboard_modal import TYPED, fill, open_modal
from tests.support.seed import MANAGER
from tests.support.stalled_submissions import requests_filed, require_reason
from tests.support.waiting import wait_until

pytestmark = pytest.mark.moto_server


def closed_while_waiting(roleup, slack_api, sending, submit: Callable[[], Any], view_id: str):
    """The ack of `submit()`, taken while the store is held; then the person closes the modal,
    and only then does the store answer (the outcome comes after the modal is gone). What Slack
    was asked before is forgotten (not how it is told to answer)."""
    slack_api.calls.clear()
    with HeldStore(roleup.core.engine) as held:
        answer = sending(submit)
        assert held.arrived.wait(PATIENCE), "the submission never asked the store"
        acked = answer.result(timeout=PATIENCE)
        slack_api.close_view(view_id)
    return acked


def dms_to(slack_api, user: str, says: str) -> list[dict[str, Any]]:
    """The DMs to `user` saying `says` (waited for), after every call to Slack has been answered."""
    slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == f"D{user}" and says in str(c)
    )
    return [
        c.params
        for c in slack_api.calls_to("chat.postMessage")
        if c.params["channel"] == f"D{user}"
    ]


def not_found_once(slack_api) -> None:
    """The outcome was tried in the modal once, and Slack said it was gone."""
    tried = slack_api.calls_to("views.update")
    assert [c.response.get("error") for c in tried] == ["not_found"]


# --- /onboard ------------------------------------------------------------------------------------
def test_a_late_onboarding_whose_modal_was_closed_is_told_in_one_dm_without_the_password(
    slack, slack_api, roleup, aws, prod, sending
):
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob", password="", generate=True), MANAGER)
    closed_while_waiting(roleup, slack_api, sending, lambda: slack.interact(body), "V1")
    (dm,) = dms_to(slack_api, MANAGER, "created")
    assert dm["text"].startswith("*Onboard* (closed before it could show you this):")
    assert "*bob* was created in *prod*" in dm["text"]
    assert "The generated password was shown to you alone, once." in dm["text"]
    not_found_once(slack_api)
    # The password went where it always goes, ephemerally, and nowhere else.
    (shown,) = slack_api.calls_to("chat.postEphemeral")
    password = shown.params["text"].split("`")[1]
    others = [c for c in slack_api.calls if c is not shown]
    assert all(leaks(password, json.dumps(c.params)) == [] for c in others)
    assert aws.get_user(UserName="bob")["User"]["UserName"] == "bob"
    assert requests_filed(roleup) == 1


def test_a_late_refusal_of_an_onboarding_whose_modal_was_closed_is_told_in_a_dm(
    slack, slack_api, roleup, aws, prod, sending
):
    """The form would have come back with the error on top: it is gone, so the error is DMed."""
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "alice"), MANAGER)  # alice is already in prod
    closed_while_waiting(roleup, slack_api, sending, lambda: slack.interact(body), "V1")
    (dm,) = dms_to(slack_api, MANAGER, "already taken")
    assert "*alice* was not onboarded." in dm["text"]
    assert leaks(TYPED, slack_api.all_text()) == []
    assert requests_filed(roleup) == 0


def test_a_retry_claimed_late_whose_empty_answer_closed_the_modal_tells_its_outcome_once(
    slack, slack_api, roleup, aws, prod, sending
):
    """Slack's retry is answered empty while its claim waits on the store (bot.slack.retry_guard):
    that answer closes the modal, so the onboarding the won claim runs is told in a DM."""
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob"), MANAGER)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    acked = closed_while_waiting(
        roleup, slack_api, sending, lambda: slack.interact(body, headers=retry), "V1"
    )
    assert acked.status_code == 200 and acked.text == ""
    (dm,) = dms_to(slack_api, MANAGER, "created")
    assert "*bob* was created in *prod*" in dm["text"]
    not_found_once(slack_api)
    assert [u["UserName"] for u in aws.list_users()["Users"]].count("bob") == 1
    assert leaks(TYPED, slack_api.all_text()) == []


# --- /groups -------------------------------------------------------------------------------------
def groups_form(slack, slack_api) -> dict[str, Any]:
    assert slack.command("/groups", "alice", user_id=MANAGER).status_code == 200
    (filled,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    return filled.params["view"]


def test_a_late_groups_change_whose_modal_was_closed_is_told_in_one_dm(
    slack, slack_api, roleup, aws, prod, sending
):
    view = groups_form(slack, slack_api)
    body = submission(view, {"groups": {"value": options("developers", "ops")}}, MANAGER)
    closed_while_waiting(roleup, slack_api, sending, lambda: slack.interact(body), "V1")
    (dm,) = dms_to(slack_api, MANAGER, "Added: ops")
    assert dm["text"].startswith(f"*{view['title']['text']}* (closed before")
    not_found_once(slack_api)
    groups = aws.list_groups_for_user(UserName="alice")["Groups"]
    assert sorted(g["GroupName"] for g in groups) == ["developers", "ops"]
    assert requests_filed(roleup) == 1


def test_a_hash_conflict_is_no_closed_modal_and_nobody_is_messaged(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    view = groups_form(slack, slack_api)
    body = submission(view, {"groups": {"value": options("developers", "ops")}}, MANAGER)
    slack_api.reset()
    slack_api.fail("views.update", "hash_conflict")
    caplog.set_level(logging.WARNING, logger="bot.slack.modal_reply")
    with HeldStore(roleup.core.engine) as held:
        answer = sending(lambda: slack.interact(body))
        assert held.arrived.wait(PATIENCE)
        answer.result(timeout=PATIENCE)
    wait_until(lambda: "could not show an outcome in its modal: hash_conflict" in caplog.text)
    assert slack_api.calls_to("conversations.open") == []
    assert slack_api.calls_to("chat.postMessage") == []
    assert requests_filed(roleup) == 1


# --- invites -------------------------------------------------------------------------------------
def test_a_late_refused_invite_whose_modal_was_closed_is_told_in_one_dm(
    slack, slack_api, roleup, prod, sending
):
    require_reason(roleup, prod)
    assert slack.command("/onboard", "invite <@UNEWBIE|newbie> prod", user_id=MANAGER).ok
    form = invites.opened_view(slack_api, "invite_create")
    values = invites.create_values("UNEWBIE", ["developers"])
    send = lambda: invites.view_submission(slack, MANAGER, form, values)  # noqa: E731
    closed_while_waiting(roleup, slack_api, sending, send, "VSUBMITTED")
    (dm,) = dms_to(slack_api, MANAGER, "requires a reason")
    assert "closed before it could show you this" in dm["text"]
    not_found_once(slack_api)
    # Nobody else was messaged: no invite reached the invitee.
    assert [c.params["channel"] for c in slack_api.calls_to("chat.postMessage")] == [f"D{MANAGER}"]


def test_a_late_refused_invite_answer_whose_modal_was_closed_says_why_without_the_password(
    slack, slack_api, roleup, prod, sending
):
    """The form would have come back with its errors: they are DMed, never the password typed."""
    form = invites.open_answer_form(slack, slack_api, invites.send_invite(slack, slack_api))
    values = invites.answer_values("newbie", GOOD_PASSWORD, confirm=GOOD_PASSWORD + "x")
    send = lambda: invites.view_submission(slack, "UNEWBIE", form, values)  # noqa: E731
    closed_while_waiting(roleup, slack_api, sending, send, "VSUBMITTED")
    (dm,) = dms_to(slack_api, "UNEWBIE", "not the same")
    assert "The two passwords are not the same." in dm["text"]
    assert "Your answer was not sent" in dm["text"]
    not_found_once(slack_api)
    assert leaks(GOOD_PASSWORD, slack_api.all_text()) == []
    assert requests_filed(roleup) == 0


# --- a DM that fails too -------------------------------------------------------------------------
def test_a_dm_that_fails_too_is_logged_once_and_nothing_else_is_tried(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    caplog.set_level(logging.WARNING, logger="bot.slack.modal_reply")
    view = groups_form(slack, slack_api)
    body = submission(view, {"groups": {"value": options("developers", "ops")}}, MANAGER)
    slack_api.fail("chat.postMessage", "channel_not_found")
    closed_while_waiting(roleup, slack_api, sending, lambda: slack.interact(body), "V1")
    wait_until(lambda: "the DM of its outcome failed" in caplog.text)
    failed = [r for r in caplog.records if "the DM of its outcome failed" in r.getMessage()]
    assert len(failed) == 1 and "channel_not_found" in failed[0].getMessage()
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    not_found_once(slack_api)  # no second "something went wrong" was tried in the modal
    assert requests_filed(roleup) == 1
