"""The scheduler's reviews job as Slack sees it: reviewers with open items are reminded every 3
days (not more often, and once across two instances), and at the due date the summary goes to
the approvals channel and each admin hears which accounts were left undecided, once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.app import create_app
from bot.review_notices import REVIEW_OPEN_ACTION
from bot.scheduler import tend_reviews
from bot.services import review_decisions, review_start
from bot.services.sync import sync_integration
from storage.models import Account, ReviewCampaign, ReviewItem, utcnow
from tests.support.seed import add_integration

MANAGER, OTHER = "UMANAGER", "UMANAGER2"
pytestmark = pytest.mark.usefixtures("moto_gaps")


@pytest.fixture
def campaign(roleup, iam) -> int:
    """Review #1 of prod, just started: alice, bob (linked to MANAGER) and carol."""
    core = roleup.core
    integration_id = add_integration(core, managers=[MANAGER, OTHER])
    for name in ("alice", "bob", "carol"):
        iam.create_user(UserName=name)
    sync_integration(core, integration_id, actor="test")
    with core.sessions.begin() as session:
        session.execute(
            update(Account).where(Account.user_name == "bob").values(slack_user_id=MANAGER)
        )
    return review_start.start_campaign(
        core, integration_id=integration_id, actor=MANAGER
    ).campaign_id


@pytest.fixture
def second(settings):
    """Another instance of RoleUp over the same store, as behind a load balancer."""
    app = create_app(settings)
    yield app.core
    app.close()


def ago(**delta: float):
    return utcnow() - timedelta(**delta)


def set_campaign(core, campaign_id: int, **values) -> None:
    with core.sessions.begin() as session:
        session.execute(
            update(ReviewCampaign).where(ReviewCampaign.id == campaign_id).values(**values)
        )


def decide(core, campaign_id: int, name: str, how: str, reviewer: str = OTHER) -> None:
    with core.sessions() as session:
        item_id = session.scalar(
            select(ReviewItem.id).where(
                ReviewItem.campaign_id == campaign_id, ReviewItem.user_name == name
            )
        )
    getattr(review_decisions, how)(core, item_id, reviewer=reviewer)


def posts(slack_api) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for call in slack_api.calls_to("chat.postMessage"):
        found.setdefault(call.params["channel"], []).append(call.params["text"])
    return found


def at_once(*cores) -> None:
    """tend_reviews on each instance, released together."""
    barrier = threading.Barrier(len(cores))
    errors: list[BaseException] = []

    def run(core) -> None:
        barrier.wait()
        try:
            tend_reviews(core)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(core,)) for core in cores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_reviewers_are_reminded_every_three_days_once_across_two_instances(
    roleup, second, campaign, slack_api
):
    core = roleup.core
    slack_api.reset()
    at_once(core, second)
    assert posts(slack_api) == {}  # just started: nobody is reminded yet

    set_campaign(core, campaign, started_at=ago(days=3, minutes=1))
    at_once(core, second)
    told = posts(slack_api)
    assert told == {
        # bob is linked to the manager, so only two are his to decide.
        MANAGER: [
            ":alarm_clock: Access review #1 of *prod*: 2 accounts still wait for your decision; "
            f"it closes *{_due(core, campaign)}*."
        ],
        OTHER: [
            ":alarm_clock: Access review #1 of *prod*: 3 accounts still wait for your decision; "
            f"it closes *{_due(core, campaign)}*."
        ],
    }
    (dm,) = [c for c in slack_api.calls_to("chat.postMessage") if c.params["channel"] == OTHER]
    blocks = dm.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert blocks[1]["elements"][0]["action_id"] == REVIEW_OPEN_ACTION
    assert blocks[1]["elements"][0]["text"]["text"] == "Review"

    # Not more often than every 3 days.
    slack_api.reset()
    set_campaign(core, campaign, reminded_at=ago(days=2, hours=23))
    at_once(core, second)
    assert posts(slack_api) == {}

    # Three days on, only reviewers who still have open items hear again.
    decide(core, campaign, "alice", "keep")
    decide(core, campaign, "carol", "keep")
    set_campaign(core, campaign, reminded_at=ago(days=3, minutes=1))
    at_once(core, second)
    assert posts(slack_api) == {
        OTHER: [
            ":alarm_clock: Access review #1 of *prod*: 1 account still waits for your decision; "
            f"it closes *{_due(core, campaign)}*."
        ]
    }


def _due(core, campaign_id: int) -> str:
    from bot.services.reviews import shown

    with core.sessions() as session:
        return shown(session.get(ReviewCampaign, campaign_id).due_at)


def test_at_the_due_date_the_summary_and_the_undecided_list_are_posted_once(
    roleup, second, campaign, slack_api
):
    core = roleup.core
    decide(core, campaign, "alice", "keep")
    decide(core, campaign, "bob", "offboard")  # raises an approval request in CAPPROVALS
    slack_api.reset()
    # Due a minute ago, and not reminded for days: closing comes first, so no reminder goes.
    set_campaign(core, campaign, started_at=ago(days=14, minutes=1), due_at=ago(minutes=1))

    at_once(core, second)
    at_once(core, second)

    assert posts(slack_api) == {
        "CAPPROVALS": [
            ":white_check_mark: *Access review #1 of prod closed*: 1 kept, 0 removed from "
            "groups, 1 offboarded, 1 undecided (of 3). Evidence: `roleup review export 1`."
        ],
        "UADMIN": [
            ":warning: Access review #1 of *prod* closed with 1 account left undecided: `carol`."
        ],
    }


def test_a_campaign_closed_with_every_item_decided_tells_no_admin(roleup, campaign, slack_api):
    core = roleup.core
    for name in ("alice", "bob", "carol"):
        decide(core, campaign, name, "keep")
    slack_api.reset()
    set_campaign(core, campaign, due_at=ago(minutes=1))
    tend_reviews(core)
    assert list(posts(slack_api)) == ["CAPPROVALS"]
    assert (
        "3 kept, 0 removed from groups, 0 offboarded, 0 undecided (of 3)"
        in (posts(slack_api)["CAPPROVALS"][0])
    )
