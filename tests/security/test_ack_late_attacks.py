"""Attacks on the two newest changes to the ack path: requests registered as read-only write no
delivery key (bot.slack.retry_guard), and four submissions check the store in a pool and finish
after the ack when it is slow (bot.slack.commands.checked_within). Really signed requests into
the real app, the Slack Web API stand-in, a held store, IAM on a moto server, both stores."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from bot.slack.acked_work import NOT_CARRIED_OUT
from bot.slack.retry_guard import ReadOnlyRequests
from handlers.accounts.messages import NEXT, PREVIOUS, REFRESH, AccountsQuery
from tests.security.snapshot import all_cells, leaks, store_snapshot
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.invite_flow import (
    answer_values,
    open_answer_form,
    send_invite,
    view_submission,
)
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.modal import submission
from tests.support.modal import text as typed
from tests.support.onboard_modal import TYPED, fill, open_modal
from tests.support.seed import MANAGER, add_account
from tests.support.stalled_submissions import (
    GUARD_LOG,
    RETRY,
    request_states,
    requests_filed,
    stored_keys,
)

pytestmark = pytest.mark.moto_server


# --- 1. read-only registration -------------------------------------------------------------------
def paging_only() -> ReadOnlyRequests:
    read_only = ReadOnlyRequests()
    read_only.commands.add("/accounts")
    read_only.actions.update((PREVIOUS, NEXT))
    return read_only


def act(action_id: str) -> dict[str, Any]:
    return {"action_id": action_id, "action_ts": "1.2", "value": "x"}


@pytest.mark.parametrize(
    "body",
    [
        {"type": "block_actions", "actions": [act(NEXT), act("approve")]},
        {"type": "block_actions", "actions": [act(REFRESH), act(PREVIOUS)]},
        {"type": "block_actions", "actions": [act(NEXT), "not a dict"]},
        {"type": "block_actions", "actions": []},
        {"type": "block_actions", "actions": {"action_id": NEXT}},
        {"type": "view_submission", "command": "/accounts", "trigger_id": "1"},
        {"type": "event_callback", "command": "/accounts", "event_id": "Ev1"},
        {"command": "/roleup", "text": "accounts"},
        {"command": "/accounts "},
        # Only paging actions, but a command too: where Bolt routes it depends on listener order.
        {"type": "block_actions", "actions": [act(NEXT)], "command": "/onboard"},
    ],
)
def test_what_does_work_or_is_routed_elsewhere_is_never_taken_for_read_only(body):
    assert paging_only().covers(body) is False


def mixed_click(slack, actions: list[str], *, retry: bool) -> None:
    """A block_actions body carrying several actions (Bolt routes by the first)."""
    value = AccountsQuery("prod", None, 0).to_value()
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": MANAGER, "team_id": "T0001"},
        "api_app_id": "A0001",
        "trigger_id": "77.mixed",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": "CLIST"},
        "channel": {"id": "CLIST"},
        "response_url": f"{slack.response_url_base}mixed",
        "actions": [
            {"type": "button", "action_id": a, "block_id": "b", "value": value, "action_ts": "7.7"}
            for a in actions
        ],
    }
    response = slack.interact(payload, headers=RETRY if retry else None)
    assert response.status_code == 200


def test_a_refresh_carrying_a_paging_action_keeps_its_key_and_its_retry_is_dropped(
    slack, slack_api, roleup, prod, caplog
):
    """Refresh syncs (work): a Next riding along in the same body must not make it read-only."""
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    mixed_click(slack, [REFRESH, NEXT], retry=False)
    slack_api.wait_for("response_url:/respond/mixed")
    assert f"action:7.7:{REFRESH}" in stored_keys(roleup)
    mixed_click(slack, [REFRESH, NEXT], retry=True)
    assert "dropped Slack retry of action" in caplog.text


# --- 2. late submissions -------------------------------------------------------------------------
def held_while(roleup, sending, *sends, waiting=()) -> list[Any]:
    """Send each of `sends` and `waiting` while every statement is held: the answers of `sends`
    (acks that must come back while it is held), then those of `waiting`, taken once released
    (a Slack retry's own ack while held: tests/security/test_ack_slow_store_claims.py)."""
    with HeldStore(roleup.core.engine) as held:
        answers = [sending(send) for send in sends]
        later = [sending(send) for send in waiting]
        assert held.arrived.wait(PATIENCE), "nothing asked the store"
        acks = [answer.result(timeout=PATIENCE) for answer in answers]
    return acks + [answer.result(timeout=2 * PATIENCE) for answer in later]


def late(response) -> str:
    """The ack's view, which must be the one a late check shows (the work started)."""
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response_action"] == "update", answer
    return json.dumps(answer["view"], ensure_ascii=False)


def views_updated(slack_api, count: int) -> list[str]:
    calls = slack_api.wait_for("views.update", count=count, timeout=PATIENCE)
    return [json.dumps(c.params["view"]) for c in calls]


def test_a_late_onboarding_submitted_twice_and_retried_by_slack_creates_one_user(
    slack, slack_api, roleup, aws, prod, sending, caplog
):
    caplog.set_level(logging.DEBUG)
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "bob"), MANAGER)
    again = {**body, "trigger_id": body["trigger_id"] + ".again"}  # the user's second submit
    slack_api.reset()
    first, second, retried = held_while(
        roleup,
        sending,
        lambda: slack.interact(body),
        lambda: slack.interact(again),
        waiting=[lambda: slack.interact(body, headers=RETRY)],
    )
    assert "Onboarding…" in late(first) and "Onboarding…" in late(second)
    assert retried.status_code == 200 and retried.text == ""
    shown = views_updated(slack_api, 2)  # one per submission the user made, the retry none
    assert sum("*bob* was created" in s for s in shown) == 1, shown
    assert aws.get_user(UserName="bob")["User"]["UserName"] == "bob"
    # The second submission, let through with the first (same view, another trigger), is
    # refused by IAM's own atomic name check when both pass the store's late: a failed record.
    states = request_states(roleup)
    assert states.count("done") == 1 and set(states) <= {"done", "failed"}, states
    assert all("*bob* was created" in s or "already taken" in s for s in shown), shown
    assert "dropped Slack retry of trigger" in caplog.text
    everything = slack_api.all_text() + caplog.text + json.dumps(all_cells(roleup.core.engine))
    assert leaks(TYPED, everything) == []


def test_a_late_invite_answer_submitted_twice_files_one_request(
    slack, slack_api, roleup, prod, sending, caplog
):
    caplog.set_level(logging.DEBUG)
    form = open_answer_form(slack, slack_api, send_invite(slack, slack_api))
    slack_api.reset()
    values = answer_values("newbie", GOOD_PASSWORD)
    acks = held_while(
        roleup,
        sending,
        lambda: view_submission(slack, "UNEWBIE", form, values),
        lambda: view_submission(slack, "UNEWBIE", form, values),
    )
    assert all("Checking your choice with AWS" in json.dumps(a["view"]) for a in acks), acks
    shown = views_updated(slack_api, 2)
    assert sum("waiting for approval" in s for s in shown) == 1, shown
    assert requests_filed(roleup) == 1
    everything = slack_api.all_text() + caplog.text + json.dumps(all_cells(roleup.core.engine))
    assert leaks(GOOD_PASSWORD, everything) == []


def test_a_stop_while_a_late_onboarding_check_waits_tells_the_user_and_creates_nothing(
    slack, slack_api, roleup, aws, prod, sending
):
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "carol"), MANAGER)
    before = store_snapshot(roleup.core.engine)
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        acked = sending(lambda: slack.interact(body)).result(timeout=PATIENCE)
        assert held.arrived.wait(PATIENCE)
        assert "Onboarding…" in json.dumps(acked.json(), ensure_ascii=False)
        stopping = threading.Thread(target=roleup.close)  # SIGTERM's path (bot.app)
        stopping.start()
        assert roleup.core.after_ack.stopping or roleup.executor.stopping
    stopping.join(2 * PATIENCE)
    told = NOT_CARRIED_OUT.format(what="onboarding")
    slack_api.wait_for("views.update", where=lambda c: told[:40] in json.dumps(c.params))
    with pytest.raises(aws.exceptions.NoSuchEntityException):
        aws.get_user(UserName="carol")
    assert store_snapshot(roleup.core.engine) == before


# --- 3. hostile input on the late path -----------------------------------------------------------
@pytest.mark.parametrize(
    "username",
    ["x" * 20_000, "<!channel> `evil`\n*bold*", "bob\u202e\u0000", "../../etc/passwd"],
)
def test_hostile_usernames_checked_late_end_in_one_clear_line_and_nothing_created(
    slack, slack_api, roleup, aws, prod, sending, caplog, username
):
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, username), MANAGER)
    before = store_snapshot(roleup.core.engine)
    slack_api.reset()
    (acked,) = held_while(roleup, sending, lambda: slack.interact(body))
    assert acked.status_code == 200, acked.text
    answer = acked.json()
    if answer["response_action"] == "errors":  # refused by its shape, in the ack itself
        (line,) = answer["errors"].values()
        assert "\n" not in line and len(line) <= 150, line
        shown = line
    else:  # refused by the late check: the form again, the line on top
        (shown,) = views_updated(slack_api, 1)
    assert "Traceback" not in shown and "Error(" not in shown
    assert len(shown) < 60_000  # the oversized value is not echoed back whole
    assert store_snapshot(roleup.core.engine) == before
    assert aws.list_users()["Users"] == [aws.get_user(UserName="alice")["User"]]
    assert leaks(TYPED, slack_api.all_text() + caplog.text) == []


def test_a_late_refusal_of_a_form_flooded_with_groups_and_markup_comes_back_once_and_bounded(
    slack, slack_api, roleup, aws, prod, sending
):
    """In-shape values reach the late check: a taken username, two thousand group names no one
    offered and a reason that pings the channel. The form comes back once with one line on top,
    none of the unoffered groups echoed, the markup never as mrkdwn, nothing created."""
    add_account(roleup.core.sessions, prod, "erin", ())
    view = open_modal(slack, slack_api)
    values = fill(prod, "erin", groups=[f"g{n}" for n in range(2000)])
    values["reason"] = {"value": typed("<!channel> *urgent* <https://evil.example|click>")}
    body = submission(view, values, MANAGER)
    before = store_snapshot(roleup.core.engine)
    slack_api.reset()
    (acked,) = held_while(roleup, sending, lambda: slack.interact(body))
    assert "Onboarding…" in late(acked)
    (shown,) = views_updated(slack_api, 1)
    again = json.loads(shown)
    assert again["callback_id"] == "onboard" and "already taken" in shown
    assert "g1999" not in shown
    mrkdwn = [
        b["text"]["text"] for b in again["blocks"] if b.get("text", {}).get("type") == "mrkdwn"
    ]
    assert not any("<!channel>" in t for t in mrkdwn), mrkdwn
    assert store_snapshot(roleup.core.engine) == before
    with pytest.raises(aws.exceptions.NoSuchEntityException):
        aws.get_user(UserName="erin")
