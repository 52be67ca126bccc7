"""*Account expires* in the onboarding, invite and Extend modals: signed submissions into the
live app; a past, unreadable or too-far date is an inline error by the field, a good one
reaches the request, the approval message and the reminder's Extend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.notices import ACCOUNT_EXTEND_ACTION
from bot.services.policy import EXTEND_ACCOUNT
from storage.models import AccountExpiry, Integration, Invite, Request, utcnow
from tests.support.invite_flow import create_values, opened_view, view_submission
from tests.support.message_buttons import click
from tests.support.modal import submission
from tests.support.onboard_modal import fill, open_modal
from tests.support.seed import MANAGER, add_integration
from tests.support.slack_answers import _acked

pytestmark = pytest.mark.moto_server

TOO_EARLY = "The account must expire tomorrow (UTC) or later."
UNREADABLE = "Pick the date from the calendar (YYYY-MM-DD)."
TOO_FAR = "The account must expire within 365 days."


@pytest.fixture
def prod(roleup, aws):
    aws.create_group(GroupName="developers")
    from storage.models import Group

    integration_id = add_integration(roleup.core)
    with roleup.core.sessions.begin() as session:
        session.add(Group(integration_id=integration_id, name="developers"))
    return integration_id


def day(days: int) -> str:
    return (utcnow().astimezone(UTC).date() + timedelta(days=days)).isoformat()


def picked(value: str) -> dict:
    return {"value": {"type": "datepicker", "selected_date": value}}


def onboarding_values(prod, expires: str) -> dict:
    values = fill(prod, "carol", groups=("developers",))
    del values["policies"]
    return {**values, "account_expires": picked(expires)}


@pytest.mark.parametrize(
    ("expires", "error"),
    [
        (day(0), TOO_EARLY),
        ("2020-01-01", TOO_EARLY),
        ("31/12/2026", UNREADABLE),
        (day(366), TOO_FAR),
    ],
)
def test_the_onboarding_modal_flags_a_bad_date_by_its_field(
    roleup, slack, slack_api, prod, expires, error
):
    view = open_modal(slack, slack_api)
    (block,) = [b for b in view["blocks"] if b.get("block_id") == "account_expires"]
    assert (block["label"]["text"], block["element"]["type"]) == ("Account expires", "datepicker")
    assert "00:00 UTC" in block["hint"]["text"] and block["optional"] is True
    body = slack.interact(submission(view, onboarding_values(prod, expires), MANAGER)).json()
    assert body == {"response_action": "errors", "errors": {"account_expires": error}}
    with roleup.core.sessions() as session:
        assert session.scalars(select(Request)).all() == []


def test_a_good_date_is_approved_with_the_account_and_stored_with_it(
    roleup, slack, slack_api, prod, aws
):
    with roleup.core.sessions.begin() as session:
        session.execute(update(Integration).values(approve_onboarding=True))
    view = open_modal(slack, slack_api)
    body = slack.interact(submission(view, onboarding_values(prod, day(30)), MANAGER)).json()
    assert body["response_action"] == "update"
    posted = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == "CAPPROVALS"
    )
    assert f"*Account expires:* {day(30)} (00:00 UTC)" in str(posted[0].params["blocks"])
    assert f"account expires {day(30)}" in posted[0].params["text"]
    with roleup.core.sessions() as session:
        request = session.scalars(select(Request)).one()
    slack_api.reset()
    from tests.support.message_buttons import click as press

    slack.interact(press("approval_approve", request.id, "UAPPROVER", slack_api.response_url_base))
    slack_api.wait_for("chat.update", where=lambda c: "Done" in str(c.params), timeout=30)
    with roleup.core.sessions() as session:
        expiry = session.scalars(select(AccountExpiry)).one()
    assert expiry.user_name == "carol" and expiry.requester == MANAGER
    assert expiry.expires_at == datetime.fromisoformat(day(30)).replace(tzinfo=UTC)
    assert expiry.user_id == aws.get_user(UserName="carol")["User"]["UserId"]

    # /accounts shows it next to the account
    slack_api.reset()
    listing = _acked(slack.command("/accounts", "", user_id=MANAGER))
    texts = [b["text"]["text"] for b in listing["blocks"] if b["type"] == "section"]
    assert texts[0].startswith(f"*carol* in prod · expires {day(30)}\n")


def test_the_invite_modal_flags_a_bad_date_and_carries_a_good_one(roleup, slack, slack_api, prod):
    slack.command("/onboard", "invite <@UNEWBIE|newbie> prod", user_id=MANAGER)
    view = opened_view(slack_api, "invite_create")
    labels = [b["label"]["text"] for b in view["blocks"] if b.get("type") == "input"]
    assert "Account expires" in labels
    values = create_values("UNEWBIE", ["developers"])
    bad = {**values, "invite_account_expires": picked("2020-01-01")}
    body = view_submission(slack, MANAGER, view, bad)
    assert body == {"response_action": "errors", "errors": {"invite_account_expires": TOO_EARLY}}
    good = {**values, "invite_account_expires": picked(day(90))}
    assert view_submission(slack, MANAGER, view, good)["response_action"] == "update"
    dm = slack_api.wait_for("chat.postMessage", where=lambda c: "invited you" in str(c.params))
    assert f"*Account expires:* {day(90)} (00:00 UTC)" in str(dm[0].params["blocks"])
    with roleup.core.sessions() as session:
        invite = session.scalars(select(Invite)).one()
    assert invite.account_expires_at == datetime.fromisoformat(day(90)).replace(tzinfo=UTC)


@pytest.fixture
def expiring(roleup, prod, aws):
    from bot.services import requesting
    from tests.support.invite_kit import GOOD_PASSWORD

    requesting.request_onboard(
        roleup.core,
        actor=MANAGER,
        integration_id=prod,
        ask=requesting.OnboardAsk(
            username="dave",
            password=GOOD_PASSWORD,
            account_expires=datetime.fromisoformat(day(5)).replace(tzinfo=UTC),
        ),
    )
    with roleup.core.sessions() as session:
        return session.scalars(select(AccountExpiry)).one()


def test_extend_opens_a_modal_that_flags_a_bad_date_and_asks_for_a_later_one(
    roleup, slack, slack_api, expiring
):
    url = slack_api.response_url_base + "dm"
    slack.interact(click(ACCOUNT_EXTEND_ACTION, str(expiring.id), MANAGER, url))
    (opened,) = slack_api.wait_for("views.open", timeout=30)
    view = opened.params["view"]
    assert "expires on *" + day(5) + "*" in str(view["blocks"])
    bad = submission(view, {"account_expires": picked(day(-1))}, MANAGER)
    body = slack.interact(bad).json()
    assert body == {"response_action": "errors", "errors": {"account_expires": TOO_EARLY}}
    empty = slack.interact(submission(view, {}, MANAGER)).json()
    assert empty["errors"] == {"account_expires": "Choose the new date."}

    good = submission(view, {"account_expires": picked(day(40))}, MANAGER)
    assert slack.interact(good).json()["response_action"] == "update"
    slack_api.wait_for("views.update", where=lambda c: "Done" in str(c.params), timeout=30)
    with roleup.core.sessions() as session:
        moved = session.scalars(select(AccountExpiry)).one()
        kinds = session.scalars(select(Request.kind)).all()
    assert moved.expires_at == datetime.fromisoformat(day(40)).replace(tzinfo=UTC)
    assert EXTEND_ACCOUNT in kinds


def test_a_stranger_s_extend_is_refused(roleup, slack, slack_api, expiring):
    url = slack_api.response_url_base + "dm"
    slack.interact(click(ACCOUNT_EXTEND_ACTION, str(expiring.id), "USTRANGER", url))
    (opened,) = slack_api.wait_for("views.open", timeout=30)
    good = submission(opened.params["view"], {"account_expires": picked(day(40))}, "USTRANGER")
    slack.interact(good)
    (shown,) = slack_api.wait_for("views.update", timeout=30)
    assert "You can't onboard people for *prod*" in str(shown.params["view"])
    with roleup.core.sessions() as session:
        assert session.scalars(select(AccountExpiry.expires_at)).one() == datetime.fromisoformat(
            day(5)
        ).replace(tzinfo=UTC)
