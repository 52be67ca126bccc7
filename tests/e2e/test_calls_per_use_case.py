"""What one use case asks AWS, counted on the wire: an integration is opened once per use case
(bot.services.integration_handle), so an `/onboard`, an invite answer or a sync assumes the role
at most once, reads the password policy at most once and looks each thing up once.

A role integration on a moto server behind a recording proxy; Slack through signed requests
into the real app, the invite through its real web page.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from bot.services.sync import sync_integration
from storage.models import Group, ManagedPolicy, Request
from tests.support.aws_wire import WireCall
from tests.support.invite_kit import GOOD_PASSWORD, make_invite
from tests.support.modal import one_user, options, submission, text
from tests.support.seed import MANAGER, add_integration

EXTERNAL_ID = "ext-calls-1"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }
        ],
    }
)
POLICY_DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
)
READS = ("Get", "List")


@pytest.fixture
def settings(settings, wire):
    return dataclasses.replace(settings, aws_endpoint_url=wire.url)


@pytest.fixture
def prod(roleup, aws) -> tuple[int, str]:
    """A role integration with one group and one managed policy, both synced to the store."""
    role = aws.create_role(RoleName="RoleUp", AssumeRolePolicyDocument=TRUST)["Role"]
    aws.update_account_password_policy(MinimumPasswordLength=12, RequireSymbols=True)
    aws.create_group(GroupName="developers")
    policy = aws.create_policy(PolicyName="ReadSome", PolicyDocument=POLICY_DOCUMENT)["Policy"]
    integration_id = add_integration(
        roleup.core,
        role_arn=role["Arn"],
        external_id_ciphertext=roleup.core.require_box().encrypt(EXTERNAL_ID),
        credentials_ciphertext=None,
        access_key_hint=None,
    )
    with roleup.core.sessions.begin() as session:
        session.add(Group(integration_id=integration_id, name="developers"))
        session.add(
            ManagedPolicy(
                integration_id=integration_id,
                arn=policy["Arn"],
                name="ReadSome",
                aws_managed=False,
            )
        )
    return integration_id, policy["Arn"]


def counted(calls: list[WireCall]) -> Counter[str]:
    return Counter(call.action for call in calls)


def before_first_write(calls: list[WireCall]) -> list[WireCall]:
    for index, call in enumerate(calls):
        if call.action != "AssumeRole" and not call.action.startswith(READS):
            return calls[:index]
    raise AssertionError(f"no write among {[c.action for c in calls]}")


def only_request(core) -> Request:
    with core.sessions() as session:
        (row,) = session.scalars(select(Request)).all()
        return row


def onboard_form(integration_id: int, policy_arn: str) -> dict[str, Any]:
    return {
        "integration": {
            "onboard_integration": {
                "type": "static_select",
                "selected_option": {"value": str(integration_id)},
            }
        },
        "username": {"value": text("alice")},
        "password": {"value": text("")},
        "password_mode": {"value": options("generate")},
        "groups": {"value": options("developers")},
        "policies": {"onboard_policies": options(policy_arn)},
        "slack_user": {"value": one_user("UNEWBIE")},
    }


def test_one_onboard_assumes_the_role_once_and_reads_each_thing_once(
    slack, slack_api, roleup, prod, wire, aws
):
    integration_id, policy_arn = prod
    slack.command("/onboard", "", user_id=MANAGER)
    view = slack_api.wait_for("views.update")[0].params["view"]
    assert wire.calls == []  # opening the modal reads the store only

    slack.interact(submission(view, onboard_form(integration_id, policy_arn), MANAGER))
    done = slack_api.wait_for("views.update", where=lambda c: "created" in str(c.params))
    assert "*alice* was created in *prod*" in str(done[0].params["view"])
    assert aws.get_user(UserName="alice")["User"]["Path"] == "/"

    first = counted(before_first_write(wire.calls))
    assert first == {
        "AssumeRole": 1,
        "GetAccountPasswordPolicy": 1,  # generating the password and checking it share it
        "GetUser": 1,  # the name is free
        "GetGroup": 1,
        "GetPolicy": 1,
    }
    everything = counted(wire.calls)
    assert everything["AssumeRole"] == 1 and everything["GetAccountPasswordPolicy"] == 1
    assert everything["CreateUser"] == 1 and everything["CreateLoginProfile"] == 1
    # The one session is the request's: CloudTrail names the manager and the request on the
    # checks as on the writes.
    (assumed,) = wire.of("AssumeRole")
    assert assumed.params["SourceIdentity"] == MANAGER
    assert assumed.tags()["roleup:request"] == only_request(roleup.core).id
    assert {c.key_id for c in wire.calls if c.action != "AssumeRole"} != {assumed.key_id}
    assert len({c.key_id for c in wire.calls if c.action != "AssumeRole"}) == 1


def test_one_invite_answer_assumes_the_role_once_and_reads_each_thing_once(roleup, prod, wire, aws):
    integration_id, policy_arn = prod
    invite = make_invite(roleup.core, integration_id, groups=["developers"], policies=[policy_arn])
    web = roleup.web.test_client()
    page = web.get(f"/invite/{invite.token}", environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert page.status_code == 200, page.text
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    shown = len(wire.calls)

    answered = web.post(
        f"/invite/{invite.token}",
        data={
            "csrf_token": csrf,
            "username": "newbie",
            "password": GOOD_PASSWORD,
            "confirm": GOOD_PASSWORD,
        },
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )
    assert answered.status_code == 200, answered.text
    request = only_request(roleup.core)
    assert request.state == "pending"  # its creator never decides it: nothing written yet

    answer = wire.calls[shown:]
    assert counted(answer) == {
        "AssumeRole": 1,
        "GetAccountPasswordPolicy": 1,
        "GetUser": 1,
        "GetGroup": 1,
        "GetPolicy": 1,
    }
    (assumed,) = [c for c in answer if c.action == "AssumeRole"]
    assert assumed.tags()["roleup:request"] == request.id
    assert assumed.params["SourceIdentity"] == "UNEWBIE"


def test_a_sync_assumes_the_role_once_and_the_next_one_reuses_it(roleup, prod, wire, aws):
    integration_id, _ = prod
    aws.create_user(UserName="bob")
    first = sync_integration(roleup.core, integration_id, actor="scheduler")
    assert first.accounts == 1  # bob
    assert counted(wire.calls)["AssumeRole"] == 1
    assert counted(wire.calls)["GetAccountPasswordPolicy"] == 0  # a sync does not need it

    seen = len(wire.calls)
    sync_integration(roleup.core, integration_id, actor="scheduler")
    again = counted(wire.calls[seen:])
    assert again["AssumeRole"] == 0  # the cached session, five minutes before expiry at worst
    assert again["GetAccountAuthorizationDetails"] >= 1
