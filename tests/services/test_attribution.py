"""Attribution in CloudTrail: who RoleUp acts for, as it goes over the wire to STS and IAM.

A recording proxy sits in front of the moto server (moto keeps neither SourceIdentity nor
session tags), so every assertion is about what was actually sent.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from sqlalchemy import update

from bot.services import integrations, lifecycle
from bot.services.acting import Actor
from bot.services.aws import AwsClients, NoBoundCredentials
from bot.services.sync import sync_integration
from storage.models import Integration
from tests.support.aws_wire import AwsWire
from tests.support.seed import MakeIntegration

EXTERNAL_ID = "ext-attribution-1"
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
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def wire(moto_url: str) -> Any:
    proxy = AwsWire(moto_url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC))


@pytest.fixture
def role_core(core: Any, wire: AwsWire, clock: Clock) -> Any:
    core.aws = AwsClients(endpoint_url=wire.url, clock=clock)
    return core


@pytest.fixture
def aws(moto_url: str) -> Any:
    iam = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")
    iam.create_user(UserName="bob", Path="/staff/")
    return iam


@pytest.fixture
def role_integration(role_core: Any, aws: Any) -> Integration:
    role = aws.create_role(RoleName="RoleUp", AssumeRolePolicyDocument=TRUST)["Role"]
    with role_core.sessions.begin() as session:
        row = Integration(
            name="prod",
            role_arn=role["Arn"],
            external_id_ciphertext=role_core.require_box().encrypt(EXTERNAL_ID),
            path_prefix="/staff/",
            created_by="UADMIN",
        )
        session.add(row)
    return row


def read_bob(core: Any, integration: Integration, actor: str) -> None:
    lifecycle.user_and_groups(core, integration.id, "bob", actor=actor)


def signed_keys(wire: AwsWire) -> set[str]:
    return {call.key_id for call in wire.calls if call.action == "GetUser"}


def test_a_slack_user_acting_for_a_request_is_named_tagged_and_the_source_identity(
    role_core, role_integration, wire
):
    lifecycle.set_groups(
        role_core, role_integration.id, "bob", [], actor="U0ALICE", request_id="req-42"
    )
    (assumed,) = wire.of("AssumeRole")
    assert assumed.params["RoleArn"] == role_integration.role_arn
    assert assumed.params["ExternalId"] == EXTERNAL_ID
    assert assumed.params["RoleSessionName"] == "roleup-U0ALICE"
    assert assumed.params["SourceIdentity"] == "U0ALICE"
    assert assumed.tags() == {"roleup:request": "req-42", "roleup:integration": "prod"}
    assert not any(k.startswith("TransitiveTagKeys") for k in assumed.params)
    # Every IAM call of the action is signed with that session's key, not the server's own.
    iam_keys = {call.key_id for call in wire.calls if call.action != "AssumeRole"}
    assert len(iam_keys) == 1 and iam_keys != {assumed.key_id}


def test_scheduled_and_cli_work_are_named_without_a_source_identity(
    role_core, role_integration, wire
):
    sync_integration(role_core, role_integration.id, actor="scheduler")
    read_bob(role_core, role_integration, "cli:ops admin")
    scheduled, cli = wire.of("AssumeRole")
    assert scheduled.params["RoleSessionName"] == "roleup-scheduler"
    assert cli.params["RoleSessionName"] == "roleup-cli-ops-admin"
    for assumed in (scheduled, cli):
        assert "SourceIdentity" not in assumed.params
        assert assumed.tags() == {"roleup:integration": "prod"}


def test_one_assume_role_per_integration_and_actor_until_five_minutes_before_expiry(
    role_core, role_integration, wire, clock
):
    for _ in range(3):
        read_bob(role_core, role_integration, "U0ALICE")
    read_bob(role_core, role_integration, "U0BOB")
    assert [a.params["RoleSessionName"] for a in wire.of("AssumeRole")] == [
        "roleup-U0ALICE",
        "roleup-U0BOB",
    ]
    assert len(signed_keys(wire)) == 2  # Bob's reads never used Alice's session

    clock.advance(minutes=54)  # moto's sessions last an hour: still five minutes to spare
    read_bob(role_core, role_integration, "U0ALICE")
    assert len(wire.of("AssumeRole")) == 2
    clock.advance(minutes=2)
    read_bob(role_core, role_integration, "U0ALICE")
    assert len(wire.of("AssumeRole")) == 3
    assert wire.of("AssumeRole")[-1].params["RoleSessionName"] == "roleup-U0ALICE"
    assert len(signed_keys(wire)) == 3


def test_each_request_has_its_own_session_so_its_tag_is_never_on_another(
    role_core, role_integration, wire
):
    for request_id in ("req-1", "req-2", "req-1"):
        lifecycle.set_groups(
            role_core, role_integration.id, "bob", [], actor="U0ALICE", request_id=request_id
        )
    read_bob(role_core, role_integration, "U0ALICE")
    tags = [a.tags().get("roleup:request") for a in wire.of("AssumeRole")]
    assert tags == ["req-1", "req-2", None]


def test_actors_whose_names_sanitise_alike_still_get_sessions_of_their_own(
    role_core, role_integration, wire
):
    read_bob(role_core, role_integration, "cli:a b")
    read_bob(role_core, role_integration, "cli:a-b")
    names = [a.params["RoleSessionName"] for a in wire.of("AssumeRole")]
    assert names == ["roleup-cli-a-b", "roleup-cli-a-b"]
    assert len(signed_keys(wire)) == 2


def test_concurrent_actions_of_one_actor_assume_the_role_once(role_core, role_integration, wire):
    errors: list[BaseException] = []

    def act() -> None:
        try:
            read_bob(role_core, role_integration, "U0ALICE")
        except BaseException as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=act) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(wire.of("AssumeRole")) == 1
    assert len(wire.of("GetUser")) == 8


def test_sessions_are_dropped_when_the_credentials_change_or_the_integration_goes(
    role_core, role_integration, wire
):
    read_bob(role_core, role_integration, "U0ALICE")
    with role_core.sessions.begin() as session:
        session.execute(
            update(Integration)
            .where(Integration.id == role_integration.id)
            .values(external_id_ciphertext=role_core.require_box().encrypt("ext-new"))
        )
    read_bob(role_core, role_integration, "U0ALICE")
    first, second = wire.of("AssumeRole")
    assert (first.params["ExternalId"], second.params["ExternalId"]) == (EXTERNAL_ID, "ext-new")
    assert len(role_core.aws.sessions) == 1  # the session of the old credentials is gone

    integrations.remove_integration(role_core, "prod", actor="UADMIN")
    assert len(role_core.aws.sessions) == 0


def test_a_trust_policy_without_source_identity_or_tags_still_works_by_session_name(
    role_core, role_integration, wire
):
    wire.refuse(lambda call: call.action == "AssumeRole" and "SourceIdentity" in call.params)
    read_bob(role_core, role_integration, "U0ALICE")
    refused, plain = wire.of("AssumeRole")
    assert refused.params["SourceIdentity"] == "U0ALICE"
    assert plain.params["RoleSessionName"] == "roleup-U0ALICE"
    assert "SourceIdentity" not in plain.params and plain.tags() == {}


def test_a_key_integration_signs_every_call_with_its_own_key(
    core, make_integration: MakeIntegration, wire, aws
):
    core.aws = AwsClients(endpoint_url=wire.url)
    integration = make_integration(path_prefix="/staff/")
    read_bob(core, integration, "U0ALICE")
    assert wire.of("AssumeRole") == []
    assert signed_keys(wire) == {"AKIAIOSFODNN7EXAMPLE"}  # CloudTrail names the key's user


@pytest.mark.parametrize(
    "who, name, source",
    [
        ("U0ALICE", "roleup-U0ALICE", "U0ALICE"),
        ("W0ENTERPRISE", "roleup-W0ENTERPRISE", "W0ENTERPRISE"),
        ("scheduler", "roleup-scheduler", None),
        ("roleup", "roleup-scheduler", None),
        ("cli:root", "roleup-cli-root", None),
        ("invite:12", "roleup-invite-12", None),
        ("roleup-demo", "roleup-demo", None),
        ("cli:" + "é/x:" * 40, "roleup-cli-" + "--x-" * 13 + "-", None),
        ("u0lower", "roleup-u0lower", None),
        ("", "roleup-scheduler", None),
    ],
)
def test_session_names_and_source_identities_are_what_aws_accepts(who, name, source):
    actor = Actor(who or "roleup")
    assert actor.session_name == name
    assert SESSION_NAME.fullmatch(actor.session_name)
    assert actor.source_identity == source


# --- clients share one botocore client; each call is signed with its own request's session ---
def furnish(aws: Any, name: str) -> None:
    aws.create_user(UserName=name, Path="/staff/")
    aws.create_login_profile(UserName=name, Password="Initial-Passw0rd!")
    for _ in range(2):
        aws.create_access_key(UserName=name)


def test_two_concurrent_offboardings_each_sign_every_call_with_their_own_request_session(
    role_core, role_integration, wire, aws
):
    users = {"req-1": "alice", "req-2": "carol"}
    for name in users.values():
        furnish(aws, name)
    errors: list[BaseException] = []
    start = threading.Barrier(len(users))

    def offboard(request_id: str) -> None:
        try:
            start.wait()
            lifecycle.offboard(
                role_core,
                role_integration.id,
                users[request_id],
                actor="U0ALICE",
                request_id=request_id,
            )
        except BaseException as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=offboard, args=(r,)) for r in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    box = role_core.require_box()
    key_of = {
        request_id: role_core.aws.credentials_for(
            role_integration, box, Actor("U0ALICE", request_id)
        )["aws_access_key_id"]
        for request_id in users
    }
    assert sorted(a.tags()["roleup:request"] for a in wire.of("AssumeRole")) == ["req-1", "req-2"]
    assert key_of["req-1"] != key_of["req-2"]
    for request_id, name in users.items():
        calls = [c for c in wire.calls if c.params.get("UserName") == name]
        assert {c.action for c in calls} >= {"PutUserPolicy", "UpdateAccessKey", "DeleteUser"}
        # Every call about this user, on whichever thread, carries its own request's session.
        assert {c.key_id for c in calls} == {key_of[request_id]}, name


def test_clients_for_different_requests_share_the_botocore_client_not_the_credentials(
    role_core, role_integration, wire
):
    box = role_core.require_box()
    first = role_core.aws.iam_for(role_integration, box, Actor("U0ALICE", "req-1"))
    second = role_core.aws.iam_for(role_integration, box, Actor("U0BOB", "req-2"))
    assert first.meta is second.meta  # built once: no per-request client construction
    first.get_user(UserName="bob")
    second.get_user(UserName="bob")
    one, two = signed_keys_in_order(wire)
    assert one != two


def test_a_shared_client_called_without_credentials_is_refused_not_signed(
    role_core, role_integration, wire
):
    client = role_core.aws.iam_for(
        role_integration, role_core.require_box(), Actor("U0ALICE", "req-1")
    )
    with pytest.raises(NoBoundCredentials):
        client._shared.get_user(UserName="bob")
    assert wire.of("GetUser") == []  # nothing went out


def signed_keys_in_order(wire: AwsWire) -> list[str]:
    return [call.key_id for call in wire.calls if call.action == "GetUser"]
