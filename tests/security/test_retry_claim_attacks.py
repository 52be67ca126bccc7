"""Attacks on a Slack retry's delivery-key claim made in the after-ack pool (bot.slack.retry_guard):
a retry answered before its claim, and dispatched again from the pool once that claim is won
late. Can work run twice, can a request pass as claimed or read-only, does a secret leak on the
way? Really signed requests into the real app, the Slack Web API stand-in, a held store, IAM on a
moto server, both stores."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.services.offboard_requests import request_offboard, targets_by_username
from bot.slack import retry_guard
from storage.models import AuditEvent
from tests.security.snapshot import all_cells, leaks
from tests.support.approvals import add_integration as add_approved_integration
from tests.support.approvals import click, ephemeral_to, make_user, user_exists
from tests.support.guard_clock import LaterClock
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.integration_form import added
from tests.support.invite_flow import answer_values, open_answer_form, send_invite
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.live import LiveServer
from tests.support.modal import submission
from tests.support.onboard_modal import TYPED, fill, open_modal
from tests.support.seed import MANAGER
from tests.support.sender import SlackSender
from tests.support.signing import command_body, payload_body, signature
from tests.support.slack_answers import RESPOND
from tests.support.stalled_submissions import (
    DROPPED,
    RETRY,
    first_then_retry,
    held_then_released,
    request_states,
    stored_keys,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.moto_server

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# A first delivery's key, written by the DeliveryLog's batch (no RETURNING), not a retry's claim.
FLUSH = r"INSERT INTO slack_deliveries .*NOTHING\s*$"


def views_shown(slack_api) -> str:
    return json.dumps([c.params for c in slack_api.calls_to("views.update")])


# --- 1. double execution -----------------------------------------------------------------------
def test_a_retry_carrying_other_values_during_a_stall_runs_only_what_was_typed_first(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    """Same trigger_id, another username: the retry is Slack's, so it repeats the first delivery
    and is dropped; what the manager typed first is what runs."""
    caplog.set_level(logging.INFO, logger="bot.slack.retry_guard")
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob"), MANAGER)
    other = {**submission(view, fill(prod, "mallory"), MANAGER), "trigger_id": body["trigger_id"]}
    slack_api.reset()
    first, retried_ack = first_then_retry(
        roleup,
        sending,
        lambda: slack.interact(body),
        lambda: slack.interact(other, headers=RETRY),
    )
    assert first.json()["response_action"] == "update"
    assert retried_ack.status_code == 200 and retried_ack.text == ""
    wait_until(lambda: DROPPED in caplog.text)
    wait_until(lambda: "*bob* was created" in views_shown(slack_api))
    assert aws.get_user(UserName="bob")["User"]["UserName"] == "bob"
    users = [u["UserName"] for u in aws.list_users()["Users"]]
    assert "mallory" not in users
    assert "mallory" not in views_shown(slack_api)
    assert request_states(roleup) == ["done"]


@pytest.fixture
def elsewhere(settings, slack_api) -> Iterator[Any]:
    """A second process of the app on the same store (its own delivery log and pools), and a
    sender to it: where a load balancer may send Slack's retry."""
    app = create_app(settings)
    server = LiveServer(app.web).start()
    yield app, SlackSender(server.url, settings.slack_signing_secret, slack_api.response_url_base)
    server.stop()
    app.close()


def test_a_retry_to_another_process_while_the_first_key_waits_onboards_once(
    slack, slack_api, roleup, aws, prod, sending, elsewhere, caplog
):
    """The first delivery ran in this process, whose batch of keys is stalled: Slack's retry
    reaches another process, whose claim finds no key."""
    caplog.set_level(logging.INFO, logger="bot.slack.retry_guard")
    _, other_slack = elsewhere
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob"), MANAGER)
    slack_api.reset()
    with HeldStore(roleup.core.engine, FLUSH) as held:
        assert slack.interact(body).json()["response_action"] == "update"
        assert held.arrived.wait(PATIENCE), "the first delivery's key was never written"
        wait_until(lambda: "*bob* was created" in views_shown(slack_api))
        retried = other_slack.interact(body, headers=RETRY)
        # Its claim finds no key (the one in this process's batch is not written yet), so it
        # runs there: the onboarding's own check, in the ack, is what refuses it.
        assert retried.json()["errors"] == {"username": "The username bob is already taken."}
    wait_until(lambda: "trigger:" + body["trigger_id"] in stored_keys(roleup))
    assert [u["UserName"] for u in aws.list_users()["Users"]].count("bob") == 1
    assert request_states(roleup) == ["done"], views_shown(slack_api)
    assert len(slack_api.calls_to("views.update")) == 1, views_shown(slack_api)


def iam_offboardings(core, request_id: str) -> int:
    with core.sessions() as session:
        query = select(func.count()).select_from(AuditEvent)
        return session.scalar(
            query.where(AuditEvent.request_id == request_id, AuditEvent.action == "iam.offboard")
        )


def test_an_approve_retried_to_another_process_while_the_first_key_waits_runs_once(
    slack, slack_api, roleup, aws, elsewhere
):
    """As above, for a decision: the guarded UPDATE of the approval is what holds."""
    _, other_slack = elsewhere
    core = roleup.core
    make_user(aws, core, add_approved_integration(core), "dora")
    request_id = request_offboard(
        core, requester="UMANAGER", targets=targets_by_username(core, "dora"), asked_for="dora"
    ).id
    slack_api.reset()
    with HeldStore(core.engine, FLUSH) as held:
        click(slack, "approval_approve", request_id, user="UAPPROVER")
        assert held.arrived.wait(PATIENCE), "the first delivery's key was never written"
        wait_until(lambda: iam_offboardings(core, request_id) == 1, PATIENCE)
        before = ephemeral_to(slack_api, "UAPPROVER")  # before the retry: its reply may be quick
        click(other_slack, "approval_approve", request_id, user="UAPPROVER", retry=1)
    assert not user_exists(aws, "dora")
    # The retry ran there (its claim found no key) and was refused by the decision's guarded
    # UPDATE: what the approver is then told is true.
    already = "This request was already approved by <@UAPPROVER> and is"

    def refusals() -> list[str]:
        return [t for t in ephemeral_to(slack_api, "UAPPROVER")[len(before) :] if already in t]

    wait_until(lambda: refusals() != [])
    (told,) = refusals()
    # "running" or "done": where the first delivery's offboarding stood when the retry came.
    assert told in (f"{already} done.", f"{already} running."), told
    wait_until(lambda: request_states(roleup) == ["done"], PATIENCE)
    assert iam_offboardings(core, request_id) == 1


def test_two_retries_to_two_processes_claimed_late_onboard_once(
    slack, slack_api, roleup, aws, prod, sending, elsewhere, caplog
):
    """The first delivery was lost; Slack's retries reach two processes while the store is
    stalled: both are answered at once, and of the two claims one wins."""
    caplog.set_level(logging.INFO, logger="bot.slack.retry_guard")
    other, other_slack = elsewhere
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob"), MANAGER)
    slack_api.reset()
    with HeldStore(roleup.core.engine) as here, HeldStore(other.core.engine) as there:
        retries = [
            sending(lambda s=s: s.interact(body, headers=RETRY)) for s in (slack, other_slack)
        ]
        assert here.arrived.wait(PATIENCE) and there.arrived.wait(PATIENCE)
        acks = [retry.result(timeout=PATIENCE) for retry in retries]
    assert all(ack.status_code == 200 and ack.text == "" for ack in acks)
    wait_until(lambda: DROPPED in caplog.text)  # the other claim was lost
    wait_until(lambda: "*bob* was created" in views_shown(slack_api))
    assert [u["UserName"] for u in aws.list_users()["Users"]].count("bob") == 1
    assert request_states(roleup) == ["done"]
    assert len(slack_api.calls_to("views.update")) == 1, views_shown(slack_api)


def test_a_submission_claimed_late_and_refused_tells_its_person_once_what_was_wrong(
    slack, slack_api, roleup, aws, prod, sending
):
    """Its modal was closed by the retry's empty answer, so the field errors its ack carries
    would reach nobody: the person is told in a direct message that nothing was saved, and why."""
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "alice"), MANAGER)  # alice exists already
    slack_api.reset()
    acked = held_then_released(roleup, sending, lambda: slack.interact(body, headers=RETRY))
    assert acked.status_code == 200 and acked.text == ""
    (told,) = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params.get("channel") == "D" + MANAGER
    )
    text = told.params["text"]
    assert "was not saved" in text and "The username alice is already taken." in text, text
    assert request_states(roleup) == []
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert leaks(TYPED, slack_api.all_text()) == []


def test_a_first_delivery_reaching_the_app_after_its_own_retry_files_no_second_request(
    slack, slack_api, roleup, prod, sending
):
    """A busy worker's backlog can hold the first delivery past Slack's 3 seconds: its retry,
    claimed late elsewhere, runs first. A first delivery is never dropped by its key, so the
    invite's own guard is what holds."""
    body = invite_answer(slack, slack_api)
    slack_api.reset()
    acked = held_then_released(roleup, sending, lambda: slack.interact(body, headers=RETRY))
    assert acked.text == ""
    wait_until(lambda: request_states(roleup) == ["pending"])
    late_first = slack.interact(body)
    assert late_first.status_code == 200
    assert "This invite link was already used." in late_first.text, late_first.text
    assert request_states(roleup) == ["pending"]
    # The retry's outcome, once (the request is stored before its message is shown).
    wait_until(lambda: len(slack_api.calls_to("views.update")) >= 1)
    (shown,) = slack_api.calls_to("views.update")
    assert "waiting for approval" in json.dumps(shown.params)


def test_a_forged_retry_header_on_a_fresh_submission_claimed_late_runs_it_once(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    """X-Slack-Retry-Num is not signed: on a first delivery it only costs the ack (answered
    empty, as a retry claimed late is); the work runs once and a further copy is dropped."""
    caplog.set_level(logging.INFO, logger="bot.slack.retry_guard")
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob"), MANAGER)
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        forged = sending(lambda: slack.interact(body, headers={"X-Slack-Retry-Num": "7"}))
        assert held.arrived.wait(PATIENCE)
        assert forged.result(timeout=PATIENCE).text == ""
    wait_until(lambda: request_states(roleup) == ["done"])
    for headers in (RETRY, {"X-Slack-Retry-Num": "2"}, None):
        again = slack.interact(body, headers=headers)
        assert again.status_code == 200
        if headers is not None:
            assert again.text == ""  # dropped
    # Dropped once its claim is lost: under load that claim can outlast ANSWER_WITHIN too.
    wait_until(lambda: DROPPED in caplog.text)
    assert [u["UserName"] for u in aws.list_users()["Users"]].count("bob") == 1
    assert request_states(roleup) == ["done"]  # the unmarked copy refused by its own check


def test_a_replayed_retry_signed_over_five_minutes_ago_is_refused_and_nothing_logged(
    slack, slack_api, roleup, aws, prod, caplog
):
    caplog.set_level(logging.DEBUG)
    view = open_modal(slack, slack_api)
    body = payload_body(submission(view, fill(prod, "bob"), MANAGER))
    slack_api.reset()
    old = str(int(time.time()) - 6 * 60)
    headers = {
        **RETRY,
        "X-Slack-Request-Timestamp": old,
        "X-Slack-Signature": signature(roleup.core.settings.slack_signing_secret, old, body),
    }
    refused = slack.post(body, headers=headers)
    assert refused.status_code == 401
    assert request_states(roleup) == []
    assert not any(k.endswith(".submit") for k in stored_keys(roleup))
    assert "bob" not in [u["UserName"] for u in aws.list_users()["Users"]]
    assert leaks(TYPED, caplog.text + slack_api.all_text()) == []


# --- 2. passing as claimed or read-only ----------------------------------------------------------
def test_a_request_naming_the_claimed_marker_keeps_its_key_and_its_retry_is_dropped(
    slack, slack_api, roleup, prod, caplog
):
    """The marker lives in the Bolt context the guard builds; a field or header of that name in
    a request is only data."""
    caplog.set_level(logging.INFO, logger="bot.slack.retry_guard")
    marker = {"roleup_claimed_delivery": "trigger:6.6.marked"}
    body = command_body(
        "/roleup",
        "integrations",
        user_id=MANAGER,
        trigger_id="6.6.marked",
        response_url=slack.response_url_base + "cmd",
    )
    body += "&" + urlencode(marker)
    slack_api.reset()
    for headers in (marker, {**marker, **RETRY}):
        assert slack.post(body, headers=headers).status_code == 200
    wait_until(lambda: DROPPED in caplog.text)
    slack_api.wait_for(RESPOND)
    assert len(slack_api.calls_to(RESPOND)) == 1
    assert "trigger:6.6.marked" in stored_keys(roleup)


@pytest.mark.parametrize(
    ("command", "typed"),
    [
        ("/roleup", "HELP"),
        ("/roleup", "   help   "),
        ("/roleup", "help integration add"),
        ("/roleup", "h\u0435lp"),  # a Cyrillic e
        ("/roleup", "help\u200b"),
        ("/roleup", "\u00a0help"),
        ("/roleup", "integration add help"),
        ("/roleup", "help reason: because"),
        ("/onboard", "help"),
        ("/offboard", "help"),
        ("/groups", "help"),
        ("/accounts", "help"),
    ],
)
def test_what_is_not_roleup_help_never_passes_as_read_only(slack, roleup, prod, command, typed):
    """A request with no delivery key must be one that only reads: the help message itself
    (or /accounts, a listing)."""
    help_text = slack.command("/roleup", "help", user_id=MANAGER).json()
    trigger = "7.7." + typed.encode("unicode_escape").decode().replace(" ", "_")
    answer = slack.command(command, typed, user_id=MANAGER, trigger_id=trigger)
    assert answer.status_code == 200
    keyed = f"trigger:{trigger}" in stored_keys(roleup)
    if command == "/accounts":
        assert not keyed  # registered read-only: a listing whatever its text
    elif not keyed:
        assert command == "/roleup" and answer.json() == help_text, answer.text


# --- 3. leaks on the path of a retry dispatched again --------------------------------------------
def invite_answer(slack, slack_api) -> dict[str, Any]:
    form = open_answer_form(slack, slack_api, send_invite(slack, slack_api))
    return submission(form, answer_values("newbie", GOOD_PASSWORD), "UNEWBIE")


def test_an_invite_answer_claimed_late_files_once_and_its_password_is_nowhere(
    slack, slack_api, roleup, prod, sending, caplog
):
    caplog.set_level(logging.DEBUG)
    body = invite_answer(slack, slack_api)
    slack_api.reset()
    acked = held_then_released(roleup, sending, lambda: slack.interact(body, headers=RETRY))
    assert acked.status_code == 200 and acked.text == ""
    wait_until(lambda: request_states(roleup) == ["pending"])
    assert slack.interact(body, headers=RETRY).text == ""  # a further retry: dropped
    assert request_states(roleup) == ["pending"]
    everything = slack_api.all_text() + caplog.text + json.dumps(all_cells(roleup.core.engine))
    assert leaks(GOOD_PASSWORD, everything) == []


def test_an_invite_answer_claimed_after_its_signature_expired_is_not_run_nor_logged(
    slack, slack_api, roleup, prod, sending, caplog, monkeypatch
):
    """Bolt would refuse it, logging its body (the password) as it does."""
    caplog.set_level(logging.DEBUG)
    body = invite_answer(slack, slack_api)
    slack_api.reset()
    # Its claim is won once the store answers, by then (its clock says) 6 minutes on.
    monkeypatch.setattr(retry_guard, "time", LaterClock(ahead=6 * 60))
    acked = held_then_released(roleup, sending, lambda: slack.interact(body, headers=RETRY))
    assert acked.status_code == 200 and acked.text == ""
    wait_until(lambda: "claimed after its signature expired" in caplog.text)
    assert request_states(roleup) == []
    assert "Invalid request signature" not in caplog.text
    assert leaks(GOOD_PASSWORD, caplog.text + slack_api.all_text()) == []


def test_an_integration_added_by_a_retry_claimed_late_keeps_its_secret_key_sealed(
    slack, slack_api, roleup, prod, sending, caplog
):
    caplog.set_level(logging.DEBUG)
    body = added(slack, slack_api, "staging", SECRET_KEY)
    slack_api.reset()
    acked = held_then_released(roleup, sending, lambda: slack.interact(body, headers=RETRY))
    assert acked.status_code == 200 and acked.text == ""
    wait_until(lambda: "*staging* added" in views_shown(slack_api))
    everything = slack_api.all_text() + caplog.text + json.dumps(all_cells(roleup.core.engine))
    assert leaks(SECRET_KEY, everything) == []
