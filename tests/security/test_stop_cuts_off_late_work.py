"""A stop whose grace ends while acked work still runs (bot.slack.acked_work): the person waiting
on it is told, where they wait, that RoleUp restarted mid-way, in words true whatever part was
done; nothing is half-made by it. Really signed requests into the real app, a held store, IAM
on a moto server, both stores. A real `roleup serve` stopped so: tests/e2e/test_stop_cut_off.py."""

from __future__ import annotations

import json
import threading

import pytest

from handlers.onboard.listeners import CUT_OFF
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.modal import submission
from tests.support.onboard_modal import fill, open_modal
from tests.support.seed import MANAGER
from tests.support.stalled_submissions import requests_filed

pytestmark = pytest.mark.moto_server


def shown(slack_api) -> list[str]:
    """The text of every view the app put in the modal after the ack, in order."""
    return [json.dumps(c.params["view"]) for c in slack_api.calls_to("views.update")]


def test_a_late_onboarding_check_still_running_when_the_grace_ends_is_told_in_the_modal(
    slack, slack_api, roleup, aws, prod, sending
):
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "dora"), MANAGER)
    slack_api.reset()
    told = json.dumps(CUT_OFF.format(username="dora"))[1:-1]
    result: list[bool] = []
    with HeldStore(roleup.core.engine) as held:
        acked = sending(lambda: slack.interact(body)).result(timeout=PATIENCE)
        assert held.arrived.wait(PATIENCE)
        assert "Onboarding…" in json.dumps(acked.json(), ensure_ascii=False)
        # SIGTERM's path (bot.server, bot.cli), its grace already over: the check still runs.
        stopping = threading.Thread(target=lambda: result.append(roleup.close(grace=0.0)))
        stopping.start()
        slack_api.wait_for("views.update", where=lambda c: told in json.dumps(c.params))
        assert len(shown(slack_api)) == 1  # told while the check still waits on the store
    stopping.join(2 * PATIENCE)
    assert result == [False]  # what bot.server and bot.cli exit at once on
    assert "RoleUp restarted before it could confirm the onboarding of *dora*" in told
    assert "Check `/accounts` before you try again" in told
    # In this process, which does not exit, the check ends after all: whatever follows is
    # the truth (it was not carried out), never that dora was created.
    assert not any("was created" in text for text in shown(slack_api))
    with pytest.raises(aws.exceptions.NoSuchEntityException):
        aws.get_user(UserName="dora")
    assert requests_filed(roleup) == 0
