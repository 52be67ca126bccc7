"""Invite Block Kit without Slack: labels, limits, escaping, build/parse round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.services.errors import InvalidInput
from bot.services.iam import PasswordRules
from bot.services.invites import CreatedInvite, InviteAnswerInvalid, OpenInvite
from bot.slack.args import parse_invite
from handlers.invite.blocks import (
    InviteAnswerModal,
    InviteCreateModal,
    invite_dm,
)
from handlers.invite.views import _field_errors

EXPIRES = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
OPEN = OpenInvite(
    id=7,
    integration_id=1,
    integration="prod<&>",
    slack_user_id="UNEWBIE",
    groups=["devs"],
    policies=[],
    created_by="UMANAGER",
    expires_at=EXPIRES,
    token_hash="0" * 64,
)


def submitted(view: dict, values: dict) -> dict:
    return {**view, "state": {"values": values}}


def test_the_answer_modal_has_the_labelled_fields_and_the_policy():
    rules = PasswordRules(minimum_length=14, require_symbols=True, minimum_kinds=0)
    view = InviteAnswerModal.build(OPEN, rules, channel="DUNEWBIE", ts="1.2")
    inputs = [b for b in view["blocks"] if b["type"] == "input"]
    assert [b["label"]["text"] for b in inputs] == [
        "Username",
        "Initial password",
        "Confirm initial password",
    ]
    text = json.dumps(view["blocks"])
    assert "At least 14 characters" in text and "At least one symbol" in text
    assert "prod&lt;&amp;&gt;" in text  # user-named things are escaped for mrkdwn
    assert all("initial_value" not in b["element"] for b in inputs)


def test_the_answer_modal_round_trips_its_metadata_and_values():
    rules = PasswordRules(minimum_length=14, require_numbers=True, minimum_kinds=0)
    view = InviteAnswerModal.build(OPEN, rules, channel="DUNEWBIE", ts="1.2", username="kept")
    values = {
        "username": {"value": {"value": "  newbie "}},
        "password": {"value": {"value": "Secret-Passw0rd!"}},
        "confirm": {"value": {"value": "Secret-Passw0rd!"}},
    }
    form = InviteAnswerModal.parse(submitted(view, values))
    assert (form.invite_id, form.username, form.channel, form.ts) == (
        7,
        "newbie",
        "DUNEWBIE",
        "1.2",
    )
    assert form.password == form.confirm == "Secret-Passw0rd!"
    assert form.rules == rules
    assert "Secret-Passw0rd!" not in repr(form)
    assert view["blocks"][1]["element"]["initial_value"] == "kept"


def test_tampered_metadata_parses_to_nothing_usable():
    form = InviteAnswerModal.parse({"private_metadata": "not json", "state": {"values": {}}})
    assert (form.invite_id, form.rules, form.channel) == (0, None, None)
    odd = InviteAnswerModal.parse({"private_metadata": json.dumps({"rules": {"bogus": 1}})})
    assert odd.rules == PasswordRules()


def test_errors_found_after_the_ack_are_listed_above_the_fields():
    view = InviteAnswerModal.build(OPEN, PasswordRules())
    shown = InviteAnswerModal.with_errors(view, {"username": "That username is taken."})
    assert shown["blocks"][1]["text"]["text"] == ":warning: *Username*: That username is taken."
    assert shown["blocks"][2]["block_id"] == "username"


def test_field_errors_map_to_the_modal_blocks():
    errors = InviteAnswerInvalid({"username": "u", "password": "p", "confirm": "c"}).errors
    assert _field_errors(errors) == {"username": "u", "password": "p", "confirm": "c"}


def test_the_create_modal_offers_only_what_block_kit_can_carry():
    policies = [(f"arn:aws:iam::123456789012:policy/p{i}", f"p{i}") for i in range(150)]
    policies.append(("arn:aws:iam::123456789012:policy/" + "x" * 200, "too-long"))
    view = InviteCreateModal.build(
        integration_id=3,
        integration="prod",
        slack_user_id="UNEWBIE",
        groups=[],
        policies=policies,
        ttl_hours=48,
    )
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert "invite_groups" not in blocks  # no group synced: no empty select
    assert len(blocks["invite_policies"]["element"]["options"]) == 100
    assert blocks["invite_user"]["element"]["initial_user"] == "UNEWBIE"
    assert "48 hours" in json.dumps(view["blocks"])
    values = {
        "invite_user": {"invite_user_select": {"selected_user": "UOTHER"}},
        "invite_policies": {
            "invite_policies_select": {"selected_options": [{"value": policies[0][0]}]}
        },
    }
    form = InviteCreateModal.parse(submitted(view, values))
    assert (form.integration_id, form.slack_user_id) == (3, "UOTHER")
    assert (form.groups, form.policies) == ([], [policies[0][0]])


def test_the_dm_carries_the_button_with_the_invite_id_and_the_link():
    created = CreatedInvite(
        invite_id=9,
        token="t" * 43,
        url="https://roleup.example.com/invite/" + "t" * 43,
        expires_at=EXPIRES,
        slack_user_id="UNEWBIE",
        integration="prod",
    )
    text, blocks = invite_dm(created, manager="UMANAGER", groups=["devs"], policies=[])
    assert "prod" in text and "t" * 43 not in text
    (button,) = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["value"]) == ("invite_open", "9")
    assert f"<{created.url}|open your invite>" in json.dumps(blocks)


@pytest.mark.parametrize(
    ("text", "user", "integration"),
    [
        ("<@U123ABC|bob>", "U123ABC", None),
        ("invite <@U123ABC> prod", "U123ABC", "prod"),
        ("INVITE <@W0ABC|x> dev-1", "W0ABC", "dev-1"),
    ],
)
def test_the_invite_arguments_are_understood(text, user, integration):
    args = parse_invite(text)
    assert (args.slack_user_id, args.integration) == (user, integration)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Who should get the invite?"),
        ("bob", "Mention the person with @."),
        ("<@U123ABC> prod extra", "Too many words."),
        ("<@U123ABC> <!channel>", "not an integration name"),
    ],
)
def test_bad_invite_arguments_say_how_to_write_them(text, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_invite(text)
    assert "/onboard invite @user [integration]" in str(caught.value)
