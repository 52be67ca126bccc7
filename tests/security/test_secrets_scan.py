"""One whole life of an integration and a person, then a search for every secret it handled.

An admin adds an integration in the Slack modal with a real (moto) secret access key, a person
is onboarded with a known initial password, an invitee picks a password on the public page and
an approver approves it, then a manager offboards the invitee. Afterwards the secret key, both
passwords, the invite token, the Fernet key, the signing secret and the bot token are searched
for (as is, form-encoded and JSON-escaped) in every log record at DEBUG, every call the app made
to the Slack Web API, every HTTP answer the invitee saw and every column of every row.
"""

from __future__ import annotations

import logging
import re

import pytest
import requests
from sqlalchemy import select

from bot.services import approvals, invites
from storage.models import Integration
from tests.security.payloads import view_submission
from tests.security.snapshot import all_cells, leaks
from tests.support.approvals import click, wait_until
from tests.support.config import BOT_TOKEN, SIGNING_SECRET, TEST_KEY
from tests.support.requests import submit_request

pytestmark = pytest.mark.moto_server

ONBOARD_PASSWORD = "Onb0ard-Known-Pw!7731"
CHOSEN_PASSWORD = "Ch0sen-By-Invitee!5512"


@pytest.fixture(autouse=True)
def served_logging():
    """Logging as `roleup serve` sets it up (its records masked from creation), undone after."""
    from bot.logging_setup import install_redaction

    factory = logging.getLogRecordFactory()
    install_redaction()
    yield
    logging.setLogRecordFactory(factory)


def admin_key(aws) -> tuple[str, str]:
    aws.create_user(UserName="roleup-bot")
    key = aws.create_access_key(UserName="roleup-bot")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def add_integration_in_slack(slack, slack_api, core, key_id: str, secret: str) -> int:
    assert slack.command("/roleup", "integration add", user_id="UADMIN").status_code == 200
    slack_api.wait_for("views.open")
    values = {
        "name": {"value": {"type": "plain_text_input", "value": "prod"}},
        "access_key_id": {"value": {"type": "plain_text_input", "value": key_id}},
        "secret_access_key": {"value": {"type": "plain_text_input", "value": secret}},
        "managers": {"value": {"type": "multi_users_select", "selected_users": ["UMANAGER"]}},
        "approvers": {"value": {"type": "multi_users_select", "selected_users": ["UAPPROVER"]}},
        "approvals_channel": {
            "value": {"type": "conversations_select", "selected_conversation": "CAPPROVALS"}
        },
    }
    response = slack.interact(view_submission("integration_add", values, user_id="UADMIN"))
    assert response.status_code == 200, response.text

    def added() -> bool:
        with core.sessions() as s:
            return s.scalar(select(Integration.id).where(Integration.name == "prod")) is not None

    wait_until(added)
    slack_api.wait_for("views.update", where=lambda c: "prod" in str(c.params.get("view")))
    with core.sessions() as s:
        return int(s.scalar(select(Integration.id).where(Integration.name == "prod")))


def onboard_with_known_password(core, integration_id: int) -> None:
    row = submit_request(
        core,
        kind="onboard",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={"username": "known", "groups": [], "policies": [], "created_by": "UMANAGER"},
        secret=ONBOARD_PASSWORD,
    )
    assert row.state == approvals.DONE, row.outcome


def invitee_answers_on_the_web(live, token: str) -> list[str]:
    browser = requests.Session()
    url = f"{live.url}/invite/{token}"
    form = browser.get(url, timeout=20)
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text)
    assert found, form.text[:500]
    data = {
        "csrf_token": found.group(1),
        "username": "newbie",
        "password": CHOSEN_PASSWORD,
        "confirm": CHOSEN_PASSWORD,
    }
    answer = browser.post(url, data=data, timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    return [form.text, answer.text, browser.get(url, timeout=20).text]


def pending_request_id(core, kind: str) -> str:
    with core.sessions() as s:
        return str(
            s.scalar(
                select(approvals.Request.id).where(
                    approvals.Request.kind == kind, approvals.Request.state == approvals.PENDING
                )
            )
        )


def test_no_secret_survives_anywhere_after_a_whole_scenario(
    roleup, live, slack, slack_api, aws, caplog
):
    caplog.set_level(logging.DEBUG)
    key_id, secret_key = admin_key(aws)
    core = roleup.core

    integration_id = add_integration_in_slack(slack, slack_api, core, key_id, secret_key)
    onboard_with_known_password(core, integration_id)
    assert aws.get_login_profile(UserName="known")["LoginProfile"]["UserName"] == "known"

    invite = invites.create_invite(
        core,
        integration_id=integration_id,
        slack_user_id="UNEWBIE",
        groups=[],
        policies=[],
        created_by="UMANAGER",
    )
    pages = invitee_answers_on_the_web(live, invite.token)
    click(slack, "approval_approve", pending_request_id(core, "invite_onboard"), user="UAPPROVER")
    wait_until(lambda: not pending_or_running(core))  # created in IAM and in the store
    assert "newbie" in [u["UserName"] for u in aws.list_users()["Users"]]

    assert slack.command("/offboard", "newbie", user_id="UMANAGER").status_code == 200
    wait_until(lambda: pending_request_id(core, "offboard") != "None")
    click(slack, "approval_approve", pending_request_id(core, "offboard"), user="UAPPROVER")
    wait_until(lambda: "newbie" not in [u["UserName"] for u in aws.list_users()["Users"]])
    wait_until(lambda: not pending_or_running(core))

    secrets = {
        "secret access key": secret_key,
        "onboarding password": ONBOARD_PASSWORD,
        "invitee's password": CHOSEN_PASSWORD,
        "invite token": invite.token,
        "Fernet key": TEST_KEY,
        "signing secret": SIGNING_SECRET,
        "bot token": BOT_TOKEN,
    }
    slack_text = slack_api.all_text()
    cells = "\n".join(
        f"{table}.{column}={value}" for table, column, value in all_cells(core.engine)
    )
    found = {
        where: sorted(name for name, secret in secrets.items() if leaks(secret, text))
        for where, text in (
            ("log", caplog.text),
            ("Slack Web API calls", slack_text),
            ("invite pages", "\n".join(pages)),
            ("store", cells),
        )
    }
    assert found == {"log": [], "Slack Web API calls": [], "invite pages": [], "store": []}
    # The scan looked at real material: the scenario did reach every place it searched.
    assert "newbie" in slack_text and "prod" in cells and "newbie" in caplog.text + cells


def pending_or_running(core) -> bool:
    with core.sessions() as s:
        states = s.scalars(select(approvals.Request.state)).all()
    return any(
        state in (approvals.PENDING, approvals.APPROVED, approvals.RUNNING) for state in states
    )
