"""Access reviews attacked through forged Slack payloads, really signed, into the live app over
the moto server: buttons and modal submissions carrying another integration's item, an item
id the clicker may not see, groups the account never had, a tampered form; and
`/roleup review start` with hostile arguments."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from bot.slack.review_blocks import (
    KEEP_ACTION,
    OFFBOARD_ACTION,
    REMOVE_ACTION,
    KeepView,
    RemoveView,
)
from storage.models import Request, ReviewCampaign, ReviewItem
from tests.support.modal import submission
from tests.support.review_slack import (  # noqa: F401 (fixtures, asked for by name)
    MANAGER,
    OTHER,
    as_dict,
    click,
    iam,
    item_ids,
    prod,
    settings,
    start,
)
from tests.support.seed import add_integration

pytestmark = pytest.mark.usefixtures("moto_gaps")
STRANGER = "USTRANGER"  # manages staging only


def dm_to(slack_api, who: str) -> str:
    (told,) = slack_api.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == who)
    return str(told.params["text"])


def nothing_decided(roleup) -> None:
    with roleup.core.sessions() as session:
        assert session.scalars(select(ReviewItem.decision)).all() == [None, None, None]
        assert session.scalar(select(func.count(Request.id))) == 0


@pytest.mark.parametrize("action", [KEEP_ACTION, REMOVE_ACTION, OFFBOARD_ACTION])
def test_a_forged_button_of_another_integrations_item_shows_and_decides_nothing(
    slack,
    slack_api,
    prod,  # noqa: F811
    roleup,
    action,
):
    """The Keep and Remove buttons open a modal showing the account's evidence (groups,
    policies, MFA, last use): someone who may not review it must not see it either."""
    add_integration(roleup.core, name="staging", managers=[STRANGER])
    start(slack, slack_api)
    alice = item_ids(roleup)["alice"]
    slack_api.reset()

    slack.interact(click(action, str(alice), STRANGER, slack_api.response_url_base + "home"))

    assert dm_to(slack_api, STRANGER) == (
        ":no_entry: Only the managers of integration prod review its accounts."
    )
    assert slack_api.calls_to("views.open") == []
    nothing_decided(roleup)


def test_a_reviewer_cannot_open_their_own_accounts_modal_either(
    slack,
    slack_api,
    prod,  # noqa: F811
    roleup,
):
    start(slack, slack_api)
    bob = item_ids(roleup)["bob"]  # linked to MANAGER
    slack_api.reset()
    slack.interact(click(KEEP_ACTION, str(bob), MANAGER, slack_api.response_url_base + "home"))
    assert "linked to you, so another reviewer decides it" in dm_to(slack_api, MANAGER)
    assert slack_api.calls_to("views.open") == []


def _keep_view(roleup, item_id: int) -> dict:
    from bot.services import reviews

    return KeepView.build(reviews.item_view(roleup.core, item_id))


def test_a_forged_keep_submission_for_another_integrations_item_is_refused(
    slack,
    slack_api,
    prod,  # noqa: F811
    roleup,
):
    add_integration(roleup.core, name="staging", managers=[STRANGER])
    start(slack, slack_api)
    view = _keep_view(roleup, item_ids(roleup)["alice"])
    note = {KeepView.NOTE: {KeepView.ACTION: {"type": "plain_text_input", "value": "mine now"}}}

    answer = slack.interact(submission(view, note, STRANGER)).json()

    assert answer["response_action"] == "update"
    assert "Only the managers of integration prod review its accounts." in json.dumps(answer)
    nothing_decided(roleup)


@pytest.mark.parametrize(
    "metadata",
    ["", "-1", "1 OR 1=1", "9" * 19, "\uff11"],  # the last a fullwidth 1
    ids=["empty", "negative", "sql", "huge", "fullwidth"],
)
def test_a_tampered_keep_form_is_out_of_date(
    slack,
    slack_api,
    prod,  # noqa: F811
    roleup,
    metadata,
):
    start(slack, slack_api)
    view = {**_keep_view(roleup, item_ids(roleup)["alice"]), "private_metadata": metadata}
    answer = slack.interact(submission(view, {}, OTHER)).json()
    assert "This form is out of date: use the button again." in json.dumps(answer)
    nothing_decided(roleup)


def test_a_forged_remove_submission_of_a_group_the_account_never_had_is_refused(
    slack,
    slack_api,
    prod,  # noqa: F811
    roleup,
    iam,  # noqa: F811
):
    """alice is in developers only; an admins group exists (someone else's)."""
    iam.create_group(GroupName="admins")
    start(slack, slack_api)
    from bot.services import reviews

    view = RemoveView.build(reviews.item_view(roleup.core, item_ids(roleup)["alice"]))
    chosen = {RemoveView.GROUPS: {RemoveView.ACTION: {"selected_options": [{"value": "admins"}]}}}

    answer = slack.interact(submission(view, chosen, OTHER)).json()

    assert answer["response_action"] == "update"
    (updated,) = slack_api.wait_for("views.update")
    assert "admins is not one of the groups this account had" in str(updated.params["view"])
    nothing_decided(roleup)


@pytest.mark.parametrize(
    "args, said",
    [
        ("staging", "You can't start access reviews for *staging*. Ask its managers"),
        ("PROD", "There is no integration PROD."),
        # Two words: an integration then days; the 10 is never dropped to start prod's review.
        ("10 20", "There is no integration 10."),
    ],
)
def test_review_start_of_what_is_not_yours_or_not_there_starts_nothing(
    slack,
    slack_api,
    prod,  # noqa: F811
    roleup,
    args,
    said,
):
    add_integration(roleup.core, name="staging", managers=[STRANGER])
    slack.command("/roleup", f"review start {args}", user_id=MANAGER)
    (reply,) = slack_api.wait_for("response_url:/respond/cmd")
    assert said in reply.params["text"]
    with roleup.core.sessions() as session:
        assert session.scalar(select(func.count(ReviewCampaign.id))) == 0
