"""The last store reads before an ack, made while the store is stalled (a SQLite writer's lock, a
PostgreSQL row lock: tests/support/held_store.py): a Slack retry's delivery-key claim, the
`/roleup integration add|edit` forms' checks and `/roleup help`. Each ack comes back while the
store is held, and once it answers the work is done once, as an in-time delivery's would have
been. Really signed requests into the real app, IAM on a moto server, both stores."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.slack import retry_guard
from storage.models import Integration
from tests.support.guard_clock import LaterClock
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.integration_form import added
from tests.support.modal import submission, text, users
from tests.support.seed import ADMIN, MANAGER
from tests.support.slack_answers import RESPOND
from tests.support.stalled_submissions import (
    DROPPED,
    GUARD_LOG,
    RETRY,
    ack_view,
    acked_while_stalled,
    first_then_retry,
    held_then_released,
    shown_once,
    stored_keys,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.moto_server

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def integrations_named(roleup, name: str) -> int:
    with roleup.core.sessions() as session:
        query = select(func.count()).select_from(Integration).where(Integration.name == name)
        return session.scalar(query) or 0


def listing(slack, trigger: str, *, retry: bool) -> Any:
    headers = RETRY if retry else None
    return slack.command(
        "/roleup", "integrations", user_id=MANAGER, trigger_id=trigger, headers=headers
    )


# --- 1. a Slack retry's claim ------------------------------------------------------------------
def test_a_retry_whose_claim_waits_on_a_stalled_store_is_acked_then_runs_once(
    slack, slack_api, roleup, prod, sending, caplog
):
    """The first delivery never reached the app: its retry is the only one, so once the store
    answers the claim is won and the work runs, once; a further retry is dropped."""
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    slack_api.reset()
    acked = held_then_released(roleup, sending, lambda: listing(slack, "5.5.lost", retry=True))
    assert acked.status_code == 200 and acked.text == ""  # as a dropped retry is answered
    (answer,) = slack_api.wait_for(RESPOND)
    assert "1 integration(s)" in answer.params["text"] and "prod" in json.dumps(answer.params)
    again = listing(slack, "5.5.lost", retry=True)
    assert again.status_code == 200 and again.text == ""
    # Dropped once its claim is lost: under load that claim can outlast ANSWER_WITHIN too.
    wait_until(lambda: DROPPED in caplog.text)
    assert len(slack_api.calls_to(RESPOND)) == 1
    assert "trigger:5.5.lost" in stored_keys(roleup)


def test_two_retries_claimed_late_at_once_run_the_work_once(
    slack, slack_api, roleup, prod, sending, caplog
):
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        retries = [sending(lambda: listing(slack, "5.5.twice", retry=True)) for _ in range(2)]
        assert held.arrived.wait(PATIENCE)
        acks = [retry.result(timeout=PATIENCE) for retry in retries]
    assert all(ack.status_code == 200 and ack.text == "" for ack in acks)
    wait_until(lambda: DROPPED in caplog.text)  # the other claim was lost
    slack_api.wait_for(RESPOND)
    assert len(slack_api.calls_to(RESPOND)) == 1


def test_a_retry_of_a_started_delivery_acked_while_stalled_does_nothing_more(
    slack, slack_api, roleup, prod, sending, caplog
):
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        first = sending(lambda: listing(slack, "5.5.slow", retry=False)).result(timeout=PATIENCE)
        retried = sending(lambda: listing(slack, "5.5.slow", retry=True))
        assert held.arrived.wait(PATIENCE)
        retried_ack = retried.result(timeout=PATIENCE)
    assert first.status_code == 200
    assert retried_ack.status_code == 200 and retried_ack.text == ""
    wait_until(lambda: DROPPED in caplog.text)  # the late claim was lost
    (answer,) = slack_api.wait_for(RESPOND)
    assert "1 integration(s)" in answer.params["text"]
    assert len(slack_api.calls_to(RESPOND)) == 1


def test_a_retry_claimed_after_its_signature_expired_is_not_run_nor_its_body_logged(
    slack, slack_api, roleup, prod, sending, caplog, monkeypatch
):
    """Bolt would refuse it and log its whole body (a password, a secret key) doing so."""
    caplog.set_level(logging.DEBUG)
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        retried = sending(lambda: listing(slack, "5.5.stale", retry=True))
        assert held.arrived.wait(PATIENCE)
        assert retried.result(timeout=PATIENCE).text == ""
        monkeypatch.setattr(retry_guard, "time", LaterClock(ahead=6 * 60))
    wait_until(lambda: "claimed after its signature expired" in caplog.text)
    assert "5.5.stale" not in caplog.text and "Invalid request signature" not in caplog.text
    assert slack_api.calls_to(RESPOND) == []


def test_a_usage_error_whose_claim_was_won_late_is_posted_to_its_response_url_once(
    slack, slack_api, roleup, prod, sending
):
    """What its ack would have said (Slack never saw it: the retry was answered first) is
    posted where the command's later answers go."""
    slack_api.reset()
    acked = held_then_released(
        roleup,
        sending,
        lambda: slack.command(
            "/roleup", "frobnicate", user_id=MANAGER, trigger_id="5.5.usage", headers=RETRY
        ),
    )
    assert acked.status_code == 200 and acked.text == ""
    (answer,) = slack_api.wait_for(RESPOND)
    assert "Unknown subcommand `frobnicate`" in answer.params["text"]
    assert answer.params.get("response_type") == "ephemeral"


def test_a_submission_and_its_retry_during_a_stall_add_one_integration(
    slack, slack_api, roleup, prod, sending, caplog
):
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    body = added(slack, slack_api, "staging", SECRET)
    slack_api.reset()
    first, retried_ack = first_then_retry(
        roleup,
        sending,
        lambda: slack.interact(body),
        lambda: slack.interact(body, headers=RETRY),
    )
    assert "Checking the credentials" in json.dumps(first.json())
    assert retried_ack.status_code == 200 and retried_ack.text == ""
    wait_until(lambda: DROPPED in caplog.text)
    shown_once(slack_api, "*staging* added")
    assert integrations_named(roleup, "staging") == 1
    assert len(slack_api.calls_to("views.update")) == 1  # no second run's "already exists"


def test_a_submission_whose_only_delivery_is_a_retry_claimed_late_is_saved_once(
    slack, slack_api, roleup, prod, sending, caplog
):
    """Its modal was closed by the retry's empty answer, as by any dropped retry: the work is
    done once all the same (what it shows in that modal is lost)."""
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    body = added(slack, slack_api, "staging", SECRET)
    slack_api.reset()
    acked = held_then_released(roleup, sending, lambda: slack.interact(body, headers=RETRY))
    assert acked.status_code == 200 and acked.text == ""
    wait_until(lambda: integrations_named(roleup, "staging") == 1)
    assert slack.interact(body, headers=RETRY).text == ""  # a further retry: dropped
    # Dropped once its claim is lost: under load that claim can outlast ANSWER_WITHIN too.
    wait_until(lambda: DROPPED in caplog.text)
    shown_once(slack_api, "*staging* added")


# --- 2. /roleup integration add | edit -----------------------------------------------------------
def test_an_integration_added_while_the_store_is_stalled_is_acked_then_added_once(
    slack, slack_api, roleup, prod, sending, caplog
):
    caplog.set_level(logging.DEBUG)
    body = added(slack, slack_api, "staging", SECRET)
    acked = acked_while_stalled(roleup, slack_api, sending, lambda: slack.interact(body))
    assert "Checking the credentials with AWS" in ack_view(acked)
    shown_once(slack_api, "*staging* added")
    assert integrations_named(roleup, "staging") == 1
    assert SECRET not in slack_api.all_text() + caplog.text


def test_a_taken_name_found_after_a_stalled_store_is_shown_in_the_modal_once(
    slack, slack_api, roleup, prod, sending
):
    body = added(slack, slack_api, "prod", SECRET)
    acked = acked_while_stalled(roleup, slack_api, sending, lambda: slack.interact(body))
    assert "Checking the credentials with AWS" in ack_view(acked)
    shown = json.dumps(shown_once(slack_api, "already exists"))
    assert "An integration named prod already exists." in shown
    assert integrations_named(roleup, "prod") == 1
    assert len(slack_api.calls_to("views.update")) == 1


def test_an_add_form_submitted_twice_during_a_stall_adds_one_integration(
    slack, slack_api, roleup, prod, sending
):
    """Both submissions pass the late name check; the store's unique name lets one through and
    the other is told, in its own modal."""
    body = added(slack, slack_api, "staging", SECRET)
    again = {**body, "trigger_id": body["trigger_id"] + ".again"}  # the user's second click
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        sent = [sending(lambda b=b: slack.interact(b)) for b in (body, again)]
        assert held.arrived.wait(PATIENCE)
        acks = [answer.result(timeout=PATIENCE) for answer in sent]
    assert all("Checking the credentials with AWS" in ack_view(a) for a in acks)
    shown = [
        json.dumps(c.params["view"])
        for c in slack_api.wait_for("views.update", count=2, timeout=PATIENCE)
    ]
    assert sum("*staging* added" in s for s in shown) == 1, shown
    assert sum("already exists" in s for s in shown) == 1, shown
    assert integrations_named(roleup, "staging") == 1


def test_a_taken_name_is_still_flagged_in_the_ack_when_the_store_answers_in_time(
    slack, slack_api, roleup, prod
):
    answer = slack.interact(added(slack, slack_api, "prod", SECRET)).json()
    assert answer == {
        "response_action": "errors",
        "errors": {"name": "An integration named prod already exists."},
    }


def test_an_integration_edited_while_the_store_is_stalled_is_acked_then_saved_once(
    slack, slack_api, roleup, prod, sending
):
    assert slack.command("/roleup", "integration edit prod", user_id=ADMIN).status_code == 200
    (opened,) = slack_api.wait_for("views.open", timeout=PATIENCE)
    values = {"path_prefix": {"value": text("/staff/")}, "managers": {"value": users(MANAGER)}}
    body = submission(opened.params["view"], values, ADMIN)
    acked = acked_while_stalled(roleup, slack_api, sending, lambda: slack.interact(body))
    assert "Saving…" in ack_view(acked)
    assert "updated" in json.dumps(shown_once(slack_api, "/staff/"))
    with roleup.core.sessions() as session:
        row = session.scalar(select(Integration).where(Integration.name == "prod"))
        assert row is not None and row.path_prefix == "/staff/"


# --- 3. /roleup help ---------------------------------------------------------------------------
def test_a_retried_help_is_answered_again_while_the_store_is_stalled(
    slack, slack_api, roleup, prod, sending
):
    first = slack.command("/roleup", "help", user_id=MANAGER, trigger_id="5.5.help")
    assert "integration add" in json.dumps(first.json()["blocks"])
    with HeldStore(roleup.core.engine):
        retried = sending(
            lambda: slack.command(
                "/roleup", "help", user_id=MANAGER, trigger_id="5.5.help", headers=RETRY
            )
        ).result(timeout=PATIENCE)
    assert retried.json() == first.json()  # answered again, never waiting on a key
    assert "trigger:5.5.help" not in stored_keys(roleup)


@pytest.mark.parametrize("typed", ["helpx", "help extra words", "integrations"])
def test_what_only_looks_like_help_keeps_its_delivery_key(slack, roleup, prod, typed):
    trigger = f"5.5.{typed.replace(' ', '-')}"
    assert slack.command("/roleup", typed, user_id=MANAGER, trigger_id=trigger).status_code == 200
    assert f"trigger:{trigger}" in stored_keys(roleup)
