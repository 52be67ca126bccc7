"""Attacks on what a stop tells people (bot.slack.acked_work, bot.app's close): the stop whose
grace ends while acked work still runs must tell its person the truth, once, where they wait,
with nothing secret in it, and let the process exit before its platform kills it, even when the
store or Slack is what holds the work. Really signed requests into the real app, a held store,
IAM on a moto server, both stores."""

from __future__ import annotations

import json
import threading

import pytest

from handlers.onboard.listeners import CUT_OFF as ONBOARDING_CUT_OFF
from tests.support.held_calls import PATIENCE
from tests.support.held_store import HeldStore
from tests.support.modal import submission
from tests.support.onboard_modal import fill, open_modal
from tests.support.seed import MANAGER

pytestmark = pytest.mark.moto_server


def test_a_stop_on_a_stalled_store_tells_the_cut_off_person_and_returns_while_still_stalled(
    slack, slack_api, roleup, prod, sending
):
    """The store hangs (the very thing that leaves work running at the grace's end): close must
    still come back, so that bot.server and bot.cli exit before gunicorn's kill, not wait on the
    store to write the last deliveries' keys."""
    view = open_modal(slack, slack_api)
    body = submission(view, fill(prod, "dora"), MANAGER)
    told = json.dumps(ONBOARDING_CUT_OFF.format(username="dora"))[1:-1]
    slack_api.reset()
    result: list[bool] = []
    with HeldStore(roleup.core.engine) as held:
        acked = sending(lambda: slack.interact(body)).result(timeout=PATIENCE)
        assert held.arrived.wait(PATIENCE)
        assert acked.json()["response_action"] == "update"
        stopping = threading.Thread(target=lambda: result.append(roleup.close(grace=0.0)))
        stopping.start()
        slack_api.wait_for("views.update", where=lambda c: told in json.dumps(c.params))
        stopping.join(PATIENCE)  # a bound on waiting: the store is still held here
        assert result == [False], "close waited on the stalled store"
    stopping.join(PATIENCE)
