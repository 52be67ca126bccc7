"""Walking around "an admin, or a manager of the integration" (bot.services.policy): sync,
invites, access reviews and the integrations list, through really signed commands into the real
app. Every attack here must end in a refusal in words and no work done (no AWS call: none of
these tests starts a moto server, so a sync or review that ran would fail loudly)."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import delete, update

from handlers.invite.blocks import InviteCreateModal
from storage.models import Integration
from tests.security.payloads import view_submission
from tests.support.approvals import PATIENCE, add_integration

_serial = itertools.count()
GROUP = "SMANAGERS"


def reply_to(slack, slack_api, command: str, text: str, user: str) -> str:
    """What the person was shown: the ack's text, or the reply posted after it."""
    tag = f"policy{next(_serial)}"
    response = slack.command(
        command, text, user_id=user, response_url=slack_api.response_url_base + tag
    )
    assert response.status_code == 200, response.text
    if response.text.strip():
        return str(response.json().get("text", ""))
    (reply,) = slack_api.wait_for(f"response_url:/respond/{tag}", timeout=PATIENCE)
    return json.dumps(reply.params)


@pytest.fixture
def two_integrations(roleup):
    """alpha, managed by UMANAGER; beta, managed by UOTHER."""
    alpha = add_integration(roleup.core, "alpha", managers=["UMANAGER"])
    beta = add_integration(roleup.core, "beta", managers=["UOTHER"])
    return alpha, beta


@pytest.mark.parametrize(
    ("command", "text", "refused"),
    [
        ("/roleup", "sync beta", "You can't sync for *beta*"),
        ("/onboard", "invite <@UNEW|new> beta", "Only the managers of beta can send invites"),
        ("/roleup", "review start beta", "start access reviews"),
    ],
    ids=["sync", "invite", "review"],
)
def test_a_manager_of_one_integration_cannot_act_on_another(
    roleup, slack, slack_api, two_integrations, command, text, refused
):
    shown = reply_to(slack, slack_api, command, text, "UMANAGER")
    assert refused in shown
    assert slack_api.calls_to("views.open") == []
    assert "Syncing" not in slack_api.all_text()


def test_the_integrations_list_shows_a_manager_only_their_own(
    roleup, slack, slack_api, two_integrations
):
    shown = reply_to(slack, slack_api, "/roleup", "integrations", "UMANAGER")
    assert "alpha" in shown and "beta" not in shown


@pytest.mark.parametrize(
    "name",
    ["Beta", "BETA", "beta\u200b", "\uff42\uff45\uff54\uff41", "b\u0435ta", " beta\u00a0x"],
    ids=["title case", "upper case", "zero-width", "fullwidth", "cyrillic e", "nbsp"],
)
def test_a_name_spelled_otherwise_never_reaches_the_integration(
    roleup, slack, slack_api, two_integrations, name
):
    """Names are stored as a-z, 0-9, - and _: another spelling is another (missing) name or no
    name at all, never beta, and is said so in one line."""
    shown = reply_to(slack, slack_api, "/roleup", f"sync {name}", "UMANAGER")
    assert "no integration" in shown or "is not an integration name" in shown or "Usage" in shown
    assert "Syncing" not in slack_api.all_text()


def test_a_manager_removed_from_the_store_is_refused_at_their_next_command(
    roleup, slack, slack_api, two_integrations
):
    alpha, _ = two_integrations
    assert "alpha" in reply_to(slack, slack_api, "/roleup", "integrations", "UMANAGER")
    with roleup.core.sessions.begin() as session:
        session.execute(update(Integration).where(Integration.id == alpha).values(managers=[]))
    shown = reply_to(slack, slack_api, "/roleup", "sync alpha", "UMANAGER")
    assert "You can't sync for *alpha*" in shown


def test_a_manager_through_a_user_group_is_refused_when_slack_cannot_say_who_is_in_it(
    roleup, slack, slack_api
):
    add_integration(roleup.core, "alpha", managers=[GROUP])
    slack_api.fail("usergroups.users.list", "missing_scope")
    shown = reply_to(slack, slack_api, "/onboard", "invite <@UNEW|new> alpha", "UMANAGER")
    assert "Only the managers of alpha can send invites" in shown
    assert slack_api.calls_to("views.open") == []


def test_a_user_group_id_as_the_caller_never_counts_as_its_member(roleup, slack, slack_api):
    """Slack signs the caller's id; one that looks like the group's own id is not its member."""
    add_integration(roleup.core, "alpha", managers=[GROUP])
    slack_api.usergroups[GROUP] = ["UMANAGER"]
    shown = reply_to(slack, slack_api, "/roleup", "sync alpha", GROUP)
    assert "You can't sync for *alpha*" in shown or "could not check your Slack account" in shown


def test_an_integration_removed_after_the_invite_form_opened_gets_no_invite(
    roleup, slack, slack_api, two_integrations
):
    """The check at the command is asked again at the submission, of the row as it is then."""
    alpha, _ = two_integrations
    assert slack.command("/onboard", "invite <@UNEW|new> alpha").status_code == 200
    (opened,) = slack_api.wait_for("views.open", timeout=PATIENCE)
    view = opened.params["view"]
    with roleup.core.sessions.begin() as session:
        session.execute(delete(Integration).where(Integration.id == alpha))
    chosen = {"type": "users_select", "selected_user": "UNEW"}
    payload = view_submission(
        InviteCreateModal.CALLBACK_ID,
        {InviteCreateModal.USER: {InviteCreateModal.USER_ACTION: chosen}},
        user_id="UMANAGER",
        private_metadata=view["private_metadata"],
    )
    response = slack.interact(payload)
    assert response.status_code == 200
    (shown,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    assert "no longer exists" in json.dumps(shown.params["view"])
