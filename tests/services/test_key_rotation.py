"""Rotating RoleUp's own access key (in-process moto, signatures checked as AWS does): after an
AWS error or a crash at any step the saved key still works, and a second run finishes."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import boto3
import pytest
from sqlalchemy import select, update

from bot.logging_setup import install_redaction
from bot.services import key_rotation
from bot.services.aws import seal_key_pair
from bot.services.errors import NothingToRotate, RequestConflict, RoleUpError
from bot.services.key_rotation import Propagation, rotate_credentials
from bot.services.request_kinds import kind_of
from storage.models import AuditEvent, Integration, Request, utcnow
from tests.support.requests import typed_payload
from tests.support.secrets import rows_containing

ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


class Crash(Exception):
    """The process dying right after a step (not an AWS error: nothing cleans up after it)."""


@pytest.fixture
def no_wait() -> Propagation:
    return Propagation(attempts=4, sleep=lambda seconds: None)


@pytest.fixture
def world(core: Any, iam: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """RoleUp's IAM user `roleup` with one key held by integration `prod`; an `admin` client
    outside RoleUp; from then on moto checks every signature."""
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin

    for user in ("roleup", "admin"):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName="roleup")["AccessKey"]
    admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
    with core.sessions.begin() as session:
        session.add(
            Integration(
                name="prod",
                access_key_hint="AKIA…",
                credentials_ciphertext=seal_key_pair(
                    core.require_box(), key["AccessKeyId"], key["SecretAccessKey"]
                ),
                approvals_channel="CAPPROVALS",
                created_by="UADMIN",
            )
        )
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    admin = boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id=admin_key["AccessKeyId"],
        aws_secret_access_key=admin_key["SecretAccessKey"],
        aws_session_token="",
    )
    return {"key": key, "admin": admin}


def saved_pair(core: Any) -> dict[str, str]:
    with core.sessions() as session:
        row = session.scalar(select(Integration).where(Integration.name == "prod"))
        return core.aws.credentials_for(row, core.require_box())


def keys_in_iam(admin: Any) -> dict[str, str]:
    listed = admin.list_access_keys(UserName="roleup")["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in listed}


def assert_the_saved_key_works(core: Any, admin: Any) -> str:
    """The stored key signs a call AWS accepts, and it is active."""
    pair = saved_pair(core)
    sts = boto3.client("sts", region_name="us-east-1", aws_session_token="", **pair)
    assert sts.get_caller_identity()["Arn"].endswith(":user/roleup")
    assert keys_in_iam(admin)[pair["aws_access_key_id"]] == "Active"
    return pair["aws_access_key_id"]


def assert_finished(core: Any, admin: Any) -> str:
    key_id = assert_the_saved_key_works(core, admin)
    assert keys_in_iam(admin) == {key_id: "Active"}
    with core.sessions() as session:
        row = session.scalar(select(Integration).where(Integration.name == "prod"))
        assert row.pending_credentials_ciphertext is None and row.retiring_key_id is None
    return key_id


def audit_of(core: Any) -> list[tuple[str, dict]]:
    with core.sessions() as session:
        return [
            (e.action, e.detail)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            if e.action.startswith("integration.key")
        ]


def test_the_key_is_replaced_validated_while_it_propagates_and_the_old_one_deleted(
    core, world, aws_calls, caplog, request
):
    # As `roleup` and `roleup serve` log: every record masked (botocore logs bodies at DEBUG).
    factory = logging.getLogRecordFactory()
    install_redaction()
    request.addfinalizer(lambda: logging.setLogRecordFactory(factory))
    caplog.set_level("DEBUG")
    old = world["key"]
    waited: list[float] = []
    # The first STS call is the old key's; the new key is "not there yet" twice.
    aws_calls.fail("GetCallerIdentity", "InvalidClientTokenId", times=2, after=1)
    outcome = rotate_credentials(
        core, "prod", actor="UADMIN", propagation=Propagation(attempts=5, sleep=waited.append)
    )
    assert outcome.done == list(key_rotation.STEPS)
    assert len(waited) == 2
    new_id = assert_finished(core, world["admin"])
    assert new_id != old["AccessKeyId"]
    assert outcome.summary() == (
        f"rotated the access key of prod: {new_id[:4]}…{new_id[-4:]} is in use, "
        f"{old['AccessKeyId'][:4]}…{old['AccessKeyId'][-4:]} is deleted"
    )
    # The order the steps promise: deactivated before deleted, with the new key.
    writes = [
        n for n in aws_calls.names if n in ("CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey")
    ]
    assert writes == ["CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey"]
    assert aws_calls.params("UpdateAccessKey") == [
        {"UserName": "roleup", "AccessKeyId": old["AccessKeyId"], "Status": "Inactive"}
    ]
    assert [action for action, _ in audit_of(core)] == [
        "integration.key_switched",
        "integration.key_rotated",
    ]
    new_secret = saved_pair(core)["aws_secret_access_key"]
    for secret in (old["SecretAccessKey"], new_secret):
        assert secret not in caplog.text and secret not in json.dumps(audit_of(core))
    # The old secret is erased from the store; the new one is only sealed.
    assert rows_containing(core.engine, old["SecretAccessKey"]) == []
    assert rows_containing(core.engine, new_secret) == []


@pytest.mark.parametrize(
    ("operation", "code", "after"),
    [
        ("GetCallerIdentity", "ServiceFailure", 0),  # who RoleUp is, with the old key
        ("ListAccessKeys", "AccessDenied", 0),
        ("CreateAccessKey", "LimitExceeded", 0),
        ("GetCallerIdentity", "InvalidClientTokenId", 1),  # the new key never works
        ("ListUsers", "AccessDenied", 0),  # the new key cannot read IAM
        ("UpdateAccessKey", "ServiceFailure", 0),  # deactivating the old key
        ("ListUsers", "AccessDenied", 1),  # the first call with the new key as saved
        ("DeleteAccessKey", "ServiceFailure", 0),  # deleting the old key
    ],
)
def test_an_aws_error_at_any_step_leaves_a_working_saved_key_and_a_second_run_finishes(
    core, world, aws_calls, no_wait, operation, code, after
):
    aws_calls.fail(operation, code, times=99, after=after)
    with pytest.raises(RoleUpError) as caught:
        rotate_credentials(core, "prod", actor="UADMIN", propagation=no_wait)
    assert world["key"]["SecretAccessKey"] not in str(caught.value)
    assert_the_saved_key_works(core, world["admin"])
    assert len(keys_in_iam(world["admin"])) <= 2
    failures = [d for a, d in audit_of(core) if a == "integration.key_rotation_failed"]
    assert len(failures) == 1 and failures[0]["error"] == caught.value.user_message
    aws_calls.faults.clear()
    rotate_credentials(core, "prod", actor="UADMIN", propagation=no_wait)
    assert assert_finished(core, world["admin"]) != world["key"]["AccessKeyId"]


@pytest.mark.parametrize("step", key_rotation.STEPS[:-1])
def test_a_crash_after_any_step_leaves_a_working_saved_key_and_the_next_run_resumes(
    core, world, aws_calls, no_wait, step
):
    def crash(done: str) -> None:
        if done == step:
            raise Crash(done)

    with pytest.raises(Crash):
        rotate_credentials(core, "prod", actor="UADMIN", propagation=no_wait, after_step=crash)
    assert_the_saved_key_works(core, world["admin"])
    created = len(aws_calls.params("CreateAccessKey"))
    rotate_credentials(core, "prod", actor="scheduler", propagation=no_wait)
    assert assert_finished(core, world["admin"]) != world["key"]["AccessKeyId"]
    # Resuming never makes another key.
    assert len(aws_calls.params("CreateAccessKey")) == created == 1


def test_a_user_with_two_keys_already_is_refused_with_the_reason(core, world, aws_calls):
    world["admin"].create_access_key(UserName="roleup")
    with pytest.raises(RequestConflict, match="already has two access keys") as caught:
        rotate_credentials(core, "prod", actor="UADMIN")
    assert "IAM allows no third" in str(caught.value)
    assert "CreateAccessKey" not in aws_calls.names
    assert saved_pair(core)["aws_access_key_id"] == world["key"]["AccessKeyId"]


def test_a_role_integration_has_nothing_to_rotate(core, aws_calls):
    with core.sessions.begin() as session:
        session.add(
            Integration(
                name="staging",
                role_arn="arn:aws:iam::123456789012:role/RoleUp",
                created_by="UADMIN",
            )
        )
    with pytest.raises(NothingToRotate, match="nothing to rotate"):
        rotate_credentials(core, "staging", actor="UADMIN")
    assert aws_calls.names == []


def test_the_schedule_rotates_keys_whose_days_have_passed(core, world, no_wait):
    with core.sessions.begin() as session:
        session.execute(
            update(Integration).values(
                rotate_every_days=30, credentials_changed_at=utcnow() - timedelta(days=29)
            )
        )
    assert key_rotation.due(core) == []
    assert key_rotation.due(core, now=utcnow() + timedelta(days=1, minutes=1)) == ["prod"]
    with core.sessions.begin() as session:
        session.execute(
            update(Integration).values(credentials_changed_at=utcnow() - timedelta(days=31))
        )
    assert key_rotation.rotate_due(core, propagation=no_wait) == []
    assert assert_finished(core, world["admin"]) != world["key"]["AccessKeyId"]
    assert key_rotation.due(core) == []  # counted again from the new key


def leave_a_pending_key(core: Any, no_wait: Propagation) -> None:
    """A rotation that stopped after creating its key: the CLI and the hourly job both resume it."""

    def crash(done: str) -> None:
        if done == "created":
            raise Crash(done)

    with pytest.raises(Crash):
        rotate_credentials(core, "prod", actor="UADMIN", propagation=no_wait, after_step=crash)


def test_a_run_giving_up_the_key_another_has_validated_leaves_the_old_key_in_use(
    core, world, aws_calls, no_wait
):
    # The scheduled job gives the pending key up (it did not work from there yet) while the
    # operator's run has just validated it: the give-up used to delete it in IAM, and the
    # operator's run then saved that deleted key over the old one, whose secret it erased.
    leave_a_pending_key(core, no_wait)
    pending = saved_pair(core)  # still the old key: the new one is only pending
    errors: list[RoleUpError] = []

    def scheduler_gives_up(done: str) -> None:
        if done != "validated":
            return
        # Its GetCallerIdentity with the old key passes, the new key's never does.
        aws_calls.fail("GetCallerIdentity", "InvalidClientTokenId", times=99, after=1)
        with pytest.raises(RoleUpError) as caught:
            rotate_credentials(core, "prod", actor="scheduler", propagation=no_wait)
        errors.append(caught.value)
        aws_calls.faults.clear()

    with pytest.raises(RequestConflict, match="given up by another rotation"):
        rotate_credentials(
            core, "prod", actor="UADMIN", propagation=no_wait, after_step=scheduler_gives_up
        )
    assert len(errors) == 1
    assert assert_the_saved_key_works(core, world["admin"]) == pending["aws_access_key_id"]
    assert keys_in_iam(world["admin"]) == {pending["aws_access_key_id"]: "Active"}
    rotate_credentials(core, "prod", actor="UADMIN", propagation=no_wait)
    assert assert_finished(core, world["admin"]) != world["key"]["AccessKeyId"]


def test_a_run_giving_up_a_key_another_has_switched_to_leaves_it_alone(
    core, world, aws_calls, no_wait
):
    # The other order: the scheduled job's last attempt fails just after the operator's run
    # has switched to the key (the old one not yet deactivated); giving it up used to delete
    # the key now in use.
    leave_a_pending_key(core, no_wait)

    def pause_after_the_switch(done: str) -> None:
        if done == "saved":
            raise Crash(done)  # the operator's run, caught between its steps

    def operator_switches_meanwhile(seconds: float) -> None:
        aws_calls.faults.clear()
        with pytest.raises(Crash):
            rotate_credentials(
                core, "prod", actor="UADMIN", propagation=no_wait, after_step=pause_after_the_switch
            )
        aws_calls.fail("GetCallerIdentity", "InvalidClientTokenId", times=1)

    aws_calls.fail("GetCallerIdentity", "InvalidClientTokenId", times=1, after=1)
    with pytest.raises(RoleUpError, match="rejected"):
        rotate_credentials(
            core,
            "prod",
            actor="scheduler",
            propagation=Propagation(attempts=2, sleep=operator_switches_meanwhile),
        )
    switched_to = assert_the_saved_key_works(core, world["admin"])
    assert switched_to != world["key"]["AccessKeyId"]
    rotate_credentials(core, "prod", actor="UADMIN", propagation=no_wait)
    new_id = assert_finished(core, world["admin"])
    assert new_id == switched_to
    assert [action for action, _ in audit_of(core)].count("integration.key_rotated") == 1


def running_onboarding(core: Any, *, lease_left: timedelta) -> str:
    """An onboarding through prod that a worker is running now (its lease `lease_left` ahead):
    its IAM client was built with the key prod held when it started."""
    with core.sessions.begin() as session:
        integration_id = session.scalar(select(Integration.id).where(Integration.name == "prod"))
        payload = typed_payload(core, "onboard", integration_id, {"username": "alice"})
        row = Request(
            id="0f0f0f0f-0000-4000-8000-000000000001",
            integration_id=integration_id,
            kind="onboard",
            payload=kind_of("onboard").dump(payload),
            requester="UMANAGER",
            state="running",
            lease_owner="worker-2",
            lease_expires_at=utcnow() + lease_left,
        )
        session.add(row)
        return row.id


def test_the_old_key_stays_active_while_a_request_runs_with_it_and_a_rerun_finishes(
    core, world, no_wait
):
    # Deactivated under a running onboarding, the old key failed its next call halfway, and
    # the same client could not undo the half-made user either.
    request_id = running_onboarding(core, lease_left=timedelta(minutes=5))
    outcome = rotate_credentials(core, "prod", actor="scheduler", propagation=no_wait)
    assert outcome.done == ["created", "validated", "saved"]
    assert outcome.waiting_for == [request_id]
    assert "stays active until 1 running request finish" in outcome.summary()
    new_id = assert_the_saved_key_works(core, world["admin"])
    old_id = world["key"]["AccessKeyId"]
    assert keys_in_iam(world["admin"]) == {old_id: "Active", new_id: "Active"}
    old = boto3.client(
        "sts",
        region_name="us-east-1",
        aws_access_key_id=old_id,
        aws_secret_access_key=world["key"]["SecretAccessKey"],
        aws_session_token="",
    )
    assert old.get_caller_identity()["Arn"].endswith(":user/roleup")  # the worker's calls work
    assert key_rotation.due(core) == ["prod"]  # the hourly job comes back to it
    with core.sessions.begin() as session:
        session.execute(update(Request).values(state="done", lease_owner=None))
    rotate_credentials(core, "prod", actor="scheduler", propagation=no_wait)
    assert assert_finished(core, world["admin"]) == new_id


def test_a_request_left_running_by_a_dead_worker_does_not_hold_the_old_key(core, world, no_wait):
    running_onboarding(core, lease_left=timedelta(minutes=-1))  # its lease has run out
    outcome = rotate_credentials(core, "prod", actor="scheduler", propagation=no_wait)
    assert outcome.waiting_for == [] and outcome.done == list(key_rotation.STEPS)
    assert_finished(core, world["admin"])
