"""A stop whose grace ends while acked work still runs (bot.slack.acked_work): the person waiting
on it is told, where they wait, that RoleUp restarted mid-way, in words true whatever part was
done; nothing is half-made by it. Really signed requests into the real app, a held store, IAM
on a moto server, both stores. A real `roleup serve` stopped so: tests/e2e/test_stop_cut_off.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from bot.slack.acked_work import CUT_OFF
from bot.slack.commands import WORKING
from handlers.onboard.listeners import CUT_OFF as ONBOARDING_CUT_OFF
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.modal import options, submission
from tests.support.onboard_modal import fill, open_modal
from tests.support.seed import MANAGER
from tests.support.slack_answers import RESPOND
from tests.support.stalled_submissions import requests_filed

pytestmark = pytest.mark.moto_server


def shown(slack_api) -> list[str]:
    """The text of every view the app put in the modal after the ack, in order."""
    return [json.dumps(c.params["view"]) for c in slack_api.calls_to("views.update")]


def cut_off_while_held(roleup, slack, slack_api, sending, body: dict[str, Any], told: str) -> None:
    """Submit `body` while the store is held, so its check runs late; stop the app with no
    grace left while the check still waits: `told` must reach the modal then, and only it."""
    told = json.dumps(told)[1:-1]  # as it reads inside the view's JSON
    result: list[bool] = []
    slack_api.reset()
    with HeldStore(roleup.core.engine) as held:
        acked = sending(lambda: slack.interact(body)).result(timeout=PATIENCE)
        assert held.arrived.wait(PATIENCE)
        assert acked.json()["response_action"] == "update"  # the waiting view
        # SIGTERM's path (bot.server, bot.cli), its grace already over: the check still runs.
        stopping = threading.Thread(target=lambda: result.append(roleup.close(grace=0.0)))
        stopping.start()
        slack_api.wait_for("views.update", where=lambda c: told in json.dumps(c.params))
        assert len(shown(slack_api)) == 1  # told while the check still waits on the store
    stopping.join(2 * PATIENCE)
    assert result == [False]  # what bot.server and bot.cli exit at once on


def test_a_late_onboarding_check_still_running_when_the_grace_ends_is_told_in_the_modal(
    slack, slack_api, roleup, aws, prod, sending
):
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "dora"), MANAGER)
    told = ONBOARDING_CUT_OFF.format(username="dora")
    cut_off_while_held(roleup, slack, slack_api, sending, body, told)
    assert "RoleUp restarted before it could confirm the onboarding of *dora*" in told
    assert "Check `/accounts` before you try again" in told
    assert "approvals channel" in told
    # In this process, which does not exit, the check ends after all: whatever follows is
    # the truth (it was not carried out), never that dora was created.
    assert not any("was created" in text for text in shown(slack_api))
    with pytest.raises(aws.exceptions.NoSuchEntityException):
        aws.get_user(UserName="dora")
    assert requests_filed(roleup) == 0


def test_a_late_groups_check_still_running_when_the_grace_ends_is_told_in_the_modal(
    slack, slack_api, roleup, aws, prod, sending
):
    assert slack.command("/groups", "alice", user_id=MANAGER).status_code == 200
    (filled,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    values = {"groups": {"value": options("developers", "ops")}}
    body = submission(filled.params["view"], values, MANAGER)
    told = CUT_OFF.format(what="changing groups")
    cut_off_while_held(roleup, slack, slack_api, sending, body, told)
    assert "some of it may have been done. Please check before you try again." in told
    groups = aws.list_groups_for_user(UserName="alice")["Groups"]
    assert [g["GroupName"] for g in groups] == ["developers"]
    assert requests_filed(roleup) == 0


def test_a_late_listing_still_running_when_the_grace_ends_says_so_instead_of_working_forever(
    slack, slack_api, roleup, prod, sending
):
    slack_api.reset()
    result: list[bool] = []
    with HeldStore(roleup.core.engine) as held:
        acked = sending(lambda: slack.command("/accounts", "prod", user_id=MANAGER))
        assert held.arrived.wait(PATIENCE)
        assert acked.result(timeout=PATIENCE).json()["text"] == WORKING
        stopping = threading.Thread(target=lambda: result.append(roleup.close(grace=0.0)))
        stopping.start()
        (told,) = slack_api.wait_for(RESPOND, timeout=PATIENCE)
    stopping.join(2 * PATIENCE)
    assert result == [False]
    assert told.params["text"] == (
        ":warning: RoleUp restarted before it could answer /accounts, which only reads: nothing "
        "was changed. Please try again."
    )
    assert told.params["response_type"] == "ephemeral"
