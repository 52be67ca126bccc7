"""The ack path of an access review's modals (see test_ack_path_attacks.py): a Keep submitted
by a reviewer whose Slack profile is not at hand (the modal stayed open past the people cache's
lifetime) is acked while Slack's users.info is held, and the decision is still made once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.slack.review_blocks import KeepView
from storage.models import ReviewItem
from tests.security.faults import failing_statements
from tests.support.held_calls import PATIENCE, HeldCall
from tests.support.modal import submission
from tests.support.review_slack import OTHER, iam, item_ids, prod, settings, start  # noqa: F401 (fixtures)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("moto_gaps")
LATE_REVIEWER = OTHER  # the manager of prod who did not start the review: not looked up yet


@pytest.fixture
def sender() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-sender") as pool:
        yield pool


def test_a_keep_is_acked_while_the_reviewers_slack_profile_is_held_then_decided_once(
    slack,
    slack_api,
    prod,  # noqa: F811
    roleup,
    sender,
):
    start(slack, slack_api)
    alice = item_ids(roleup)["alice"]
    view = KeepView.modal(alice, [], "Keep")
    note = {KeepView.NOTE: {KeepView.ACTION: {"type": "plain_text_input", "value": "on call"}}}
    body = submission(view, note, LATE_REVIEWER)
    slack_api.reset()
    mine = lambda call: call.params.get("user") == LATE_REVIEWER  # noqa: E731
    with HeldCall(slack_api, "users.info", mine) as held:
        answer = sender.submit(slack.interact, body)
        assert held.arrived.wait(PATIENCE), "the app never asked Slack who the reviewer is"
        response = answer.result(timeout=PATIENCE)  # never while the ack waits on users.info
        assert response.status_code == 200
    (shown,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    assert "Kept alice in prod." in json.dumps(shown.params["view"])

    def decided() -> tuple:
        with roleup.core.sessions() as session:
            item = session.get(ReviewItem, alice)
            return (item.decision, item.decided_by, item.note)

    wait_until(lambda: decided() == ("keep", LATE_REVIEWER, "on call"), timeout=PATIENCE)


def test_a_keep_the_store_fails_keeps_its_ack_and_says_so_in_one_line(
    slack,
    slack_api,
    prod,  # noqa: F811
    roleup,
):
    """The decision's write fails as a lost connection would: the submission is still answered
    (never Bolt's 500, which Slack shows as an error of its own), with the one-line message and
    its reference, and no SQL or traceback in it; nothing is decided."""
    start(slack, slack_api)
    alice = item_ids(roleup)["alice"]
    view = KeepView.modal(alice, [], "Keep")
    with failing_statements(roleup.core.engine, r"^UPDATE review_items", times=10) as fault:
        response = slack.interact(submission(view, {}, OTHER))
    assert fault.hits >= 1
    assert response.status_code == 200, response.text
    shown = json.dumps(response.json()) if response.text else ""
    if not shown:  # acked late: the outcome is shown in the modal
        (update,) = slack_api.wait_for("views.update", timeout=PATIENCE)
        shown = json.dumps(update.params["view"])
    assert "Something went wrong on our side" in shown and "reference" in shown
    assert "UPDATE" not in shown and "Traceback" not in shown and "server closed" not in shown
    with roleup.core.sessions() as session:
        assert session.get(ReviewItem, alice).decision is None
