"""Attacks on what a stop tells people (bot.slack.acked_work, bot.app's close): the stop whose
grace ends while acked work still runs must tell its person the truth, once, where they wait,
with nothing secret in it, and let the process exit before its platform kills it, even when the
store or Slack is what holds the work. Really signed requests into the real app, a held store,
IAM on a moto server, both stores."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bot.app import AFTER_ACK_THREADS
from bot.services import approvals
from bot.slack import acked_work
from bot.slack.acked_work import CUT_OFF, READ_CUT_OFF
from bot.slack.approval_messages import APPROVE_ACTION
from bot.slack.commands import WORKING
from handlers.onboard.listeners import CUT_OFF as ONBOARDING_CUT_OFF
from tests.security.snapshot import all_cells, leaks
from tests.support.approvals import click, removal_request
from tests.support.held_calls import PATIENCE, HeldCall
from tests.support.held_store import HeldStore
from tests.support.invite_flow import answer_values, open_answer_form, send_invite, view_submission
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.modal import submission
from tests.support.onboard_modal import TYPED, fill, open_modal
from tests.support.seed import MANAGER
from tests.support.stalled_submissions import requests_filed

pytestmark = pytest.mark.moto_server


class Stopping:
    """roleup.close with its grace already over (SIGTERM's path in bot.server and bot.cli), in
    its own thread: `returned` is what it returned, once it has (waited for at most PATIENCE)."""

    def __init__(self, roleup) -> None:
        self.result: list[bool] = []
        self.thread = threading.Thread(target=lambda: self.result.append(roleup.close(0.0)))
        self.thread.start()

    def returned(self) -> list[bool]:
        self.thread.join(PATIENCE)  # a bound on waiting, not on speed
        return self.result


@contextmanager
def submitted_while_held(roleup, slack_api, sending, submit: Callable[[], Any]) -> Iterator[Any]:
    """`submit()`'s answer, taken while every statement is held (its check runs late); the
    store is let go when the block ends."""
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        acked = sending(submit).result(timeout=PATIENCE)
        assert held.arrived.wait(PATIENCE)
        yield acked


def in_view(text: str) -> Callable[[Any], bool]:
    """A views.update call showing `text` (as it reads inside the view's JSON)."""
    quoted = json.dumps(text)[1:-1]
    return lambda call: quoted in json.dumps(call.params)


def test_a_stop_on_a_stalled_store_tells_the_cut_off_person_and_returns_while_still_stalled(
    slack, slack_api, roleup, prod, sending
):
    """The store hangs (the very thing that leaves work running at the grace's end): close must
    still come back, so that bot.server and bot.cli exit before gunicorn's kill, not wait on the
    store to write the last deliveries' keys."""
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "dora"), MANAGER)
    told = ONBOARDING_CUT_OFF.format(username="dora")
    with submitted_while_held(roleup, slack_api, sending, lambda: slack.interact(body)) as acked:
        assert acked.json()["response_action"] == "update"
        stopping = Stopping(roleup)
        slack_api.wait_for("views.update", where=in_view(told))
        assert stopping.returned() == [False], "close waited on the stalled store"


def stopped_while_held(roleup, slack_api, sending, submit: Callable[[], Any], told: str) -> None:
    """`submit()` while the store is held; the app stopped while its check still waits: `told`
    reaches the modal; then the store is let go."""
    with submitted_while_held(roleup, slack_api, sending, submit):
        stopping = Stopping(roleup)
        slack_api.wait_for("views.update", where=in_view(told))
    assert stopping.returned() == [False]


def test_no_password_reaches_a_log_slack_or_the_store_when_a_stop_cuts_off_an_invite_answer(
    slack, slack_api, roleup, prod, sending, caplog
):
    form = open_answer_form(slack, slack_api, send_invite(slack, slack_api))
    caplog.set_level(logging.DEBUG)  # slack_sdk and Bolt log request bodies at DEBUG
    assert logging.getLogger("slack_bolt").isEnabledFor(logging.DEBUG)
    values = answer_values("newbie", GOOD_PASSWORD)
    submit = lambda: view_submission(slack, "UNEWBIE", form, values)  # noqa: E731
    stopped_while_held(
        roleup, slack_api, sending, submit, CUT_OFF.format(what="answering an invite")
    )
    # The check ends after all in this process (which does not exit): it files nothing.
    slack_api.wait_for(
        "views.update", where=lambda c: "nothing was changed" in json.dumps(c.params)
    )
    assert requests_filed(roleup) == 0
    assert leaks(GOOD_PASSWORD, caplog.text) == []
    assert leaks(GOOD_PASSWORD, slack_api.all_text()) == []
    cells = " ".join(value for _table, _column, value in all_cells(roleup.core.engine))
    assert leaks(GOOD_PASSWORD, cells) == []


def test_no_password_reaches_a_log_or_slack_when_a_stop_cuts_off_an_onboarding_check(
    slack, slack_api, roleup, prod, sending, caplog
):
    view = open_modal(slack, slack_api)
    caplog.set_level(logging.DEBUG)
    body = submission(view, fill(prod, "dora"), MANAGER)
    told = ONBOARDING_CUT_OFF.format(username="dora")
    stopped_while_held(roleup, slack_api, sending, lambda: slack.interact(body), told)
    slack_api.wait_for(
        "views.update", where=lambda c: "nothing was changed" in json.dumps(c.params)
    )
    assert leaks(TYPED, caplog.text) == []
    assert leaks(TYPED, slack_api.all_text()) == []
    cells = " ".join(value for _table, _column, value in all_cells(roleup.core.engine))
    assert leaks(TYPED, cells) == []


def test_a_slack_too_slow_to_take_the_stop_message_does_not_hold_the_stop(
    slack, slack_api, roleup, prod, sending, monkeypatch, caplog
):
    """Slack's API hangs on the very message a stop sends: close still comes back (bot.server
    then exits before gunicorn's kill), saying in the log who could not be told."""
    monkeypatch.setattr(acked_work, "TELL_SECONDS", 0.05)  # a bound, not a timing assertion
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "dora"), MANAGER)
    told = in_view(ONBOARDING_CUT_OFF.format(username="dora"))
    submitting = submitted_while_held(roleup, slack_api, sending, lambda: slack.interact(body))
    with submitting, HeldCall(slack_api, "views.update", where=told) as slow:
        stopping = Stopping(roleup)
        assert slow.arrived.wait(PATIENCE)
        # Slack still holds the message, the store the check.
        assert stopping.returned() == [False], "close waited on Slack"
    assert "1 of 1 people could not be told" in caplog.text


def test_a_late_listing_still_queued_when_the_grace_ends_is_told_too_and_once(
    slack, slack_api, roleup, prod
):
    """The after-ack pool is full of listings stalled on the store; one more waits in its
    queue, its ack already "Working on it…". The stop cancels it: its person is told, as those
    whose listing was running are, once each, and where each asked."""
    told = READ_CUT_OFF.format(what="/accounts")
    people = [f"cmd{n}" for n in range(AFTER_ACK_THREADS + 1)]  # one response_url each
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        for person in people:
            url = slack_api.response_url_base + person
            acked = slack.command("/accounts", "prod", user_id=MANAGER, response_url=url)
            assert acked.json()["text"] == WORKING
        assert held.arrived.wait(PATIENCE)
        stopping = Stopping(roleup)
        for person in people:
            slack_api.wait_for(f"response_url:/respond/{person}", timeout=PATIENCE)
        assert stopping.returned() == [False]
    for person in people:
        (answer,) = slack_api.calls_to(f"response_url:/respond/{person}")
        assert answer.params["text"] == told


def test_two_onboardings_queued_at_a_stop_each_tell_their_own_modal_with_hostile_names_inert(
    slack, slack_api, roleup, prod, sending
):
    """The pool busy with listings stalled on the store, two onboarding checks queue behind
    them, one of a name made to shout and to push the message's advice out (20,000
    characters): each modal gets its own message, once, mentioning nobody, advice intact."""
    view = open_modal(slack, slack_api)
    hostile = "<!channel> *bold* `code` <https://evil.example|click>" + "x" * 20_000
    bodies = {
        "VDORA": submission(view, fill(prod, "dora"), MANAGER, view_id="VDORA"),
        "VHOSTILE": submission(view, fill(prod, hostile), MANAGER, view_id="VHOSTILE"),
    }
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        for n in range(AFTER_ACK_THREADS):
            url = slack_api.response_url_base + f"cmd{n}"
            slack.command("/accounts", "prod", user_id=MANAGER, response_url=url)
        assert held.arrived.wait(PATIENCE)
        for body in bodies.values():
            acked = sending(lambda body=body: slack.interact(body)).result(timeout=PATIENCE)
            assert acked.json()["response_action"] == "update"  # "Onboarding…"
        stopping = Stopping(roleup)
        slack_api.wait_for("views.update", count=2, timeout=PATIENCE)
        assert stopping.returned() == [False]
    shown = {
        c.params["view_id"]: json.dumps(c.params["view"])
        for c in slack_api.calls_to("views.update")
    }
    assert len(slack_api.calls_to("views.update")) == 2
    assert json.dumps(ONBOARDING_CUT_OFF.format(username="dora"))[1:-1] in shown["VDORA"]
    told = shown["VHOSTILE"]
    assert "dora" not in told
    assert "&lt;!channel&gt;" in told and "<!channel>" not in told
    assert "<https://" not in told
    assert "Check `/accounts` before you try again" in told
    assert "approvals channel" in told
    assert requests_filed(roleup) == 0


def test_an_approve_click_cut_off_after_its_request_was_done_is_not_told_to_wait_for_a_takeover(
    slack, slack_api, roleup
):
    """The click's request is done (saved so) and RoleUp is updating the approval message when
    the grace ends: the store's recovery takes over only requests left running, so nothing will
    ever change that message from "running". The approver is told the request was done."""
    request_id = removal_request(roleup.core)
    slack_api.reset()
    done = lambda c: ":white_check_mark: Done" in json.dumps(c.params)  # noqa: E731
    with HeldCall(slack_api, "chat.update", where=done) as updating:
        click(slack, APPROVE_ACTION, request_id, user="UAPPROVER")
        assert updating.arrived.wait(PATIENCE)
        stopping = Stopping(roleup)
        (told,) = slack_api.wait_for("response_url:/respond/click-UAPPROVER", timeout=PATIENCE)
        assert stopping.returned() == [False]
    assert approvals.load(roleup.core, request_id).state == approvals.DONE
    assert "taken over" not in told.params["text"]
    assert "was done" in told.params["text"]
