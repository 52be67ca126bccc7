"""Offboarding cuts access first and fastest: the three cuts are in flight together, and the
cleanup steps run four at a time, never more; the checklist still reads in order.

Concurrency is shown by rendezvous, never by timing: a call held until the others it should run
beside have been sent too. Run one after the other, the first would wait alone and the test fails.
"""

from __future__ import annotations

import boto3
import pytest

from bot.services import offboard_steps
from bot.services.errors import StepFailed
from bot.services.offboard_steps import (
    CLEANUP_CONCURRENCY,
    CLEANUP_STEPS,
    CUT_STEPS,
    OFFBOARD_STEPS,
)
from tests.support.concurrency import MEETING_SECONDS, Rendezvous  # noqa: F401
from tests.support.iam_users import furnish_user, gone


@pytest.fixture
def client(iam, aws_calls):
    return aws_calls.attach(boto3.client("iam", region_name="us-east-1"))


def test_the_three_cuts_are_in_flight_together(core, make_integration, iam, client, aws_calls):
    furnish_user(iam)
    integration = make_integration()
    cuts = Rendezvous(["PutUserPolicy", "DeleteLoginProfile", "UpdateAccessKey"], size=3)
    aws_calls.on_call = cuts.hooks
    reported: list[tuple[str, str]] = []

    assert offboard_steps.offboard_user(client, integration, "bob", lambda *r: reported.append(r))

    assert cuts.alone == []  # each cut was sent while the other two were
    assert sorted(cuts.arrived) == ["DeleteLoginProfile", "PutUserPolicy", "UpdateAccessKey"]
    assert gone(iam, "bob")
    # The ends are reported in the checklist's order; each step ran before it was done.
    assert [s for s, st in reported if st == "done"] == OFFBOARD_STEPS
    assert sorted(s for s, st in reported if st == "running") == sorted(OFFBOARD_STEPS)
    for step in OFFBOARD_STEPS:
        assert reported.index((step, "running")) < reported.index((step, "done"))
    # Nothing is removed before all three cuts answered.
    first_cleanup = aws_calls.writes.index("DeleteAccessKey")
    assert {"PutUserPolicy", "DeleteLoginProfile", "UpdateAccessKey"} <= set(
        aws_calls.writes[:first_cleanup]
    )


def test_the_cleanup_runs_four_steps_at_a_time_and_never_more(
    core, make_integration, iam, client, aws_calls
):
    furnish_user(iam)
    integration = make_integration()
    lists = {
        "access_keys": "ListAccessKeys",
        "signing_certificates": "ListSigningCertificates",
        "ssh_keys": "ListSSHPublicKeys",
        "service_credentials": "ListServiceSpecificCredentials",
        "mfa_devices": "ListMFADevices",
        "inline_policies": "ListUserPolicies",
        "attached_policies": "ListAttachedUserPolicies",
        "groups": "ListGroupsForUser",
    }
    assert list(lists) == list(CLEANUP_STEPS)
    reported: list[tuple[str, str]] = []

    def report(step: str, status: str) -> None:
        reported.append((step, status))
        if (step, status) == ("deactivate_keys", "done"):
            # Access is cut: from now on, hold the cleanup's first reads.
            aws_calls.on_call = cleanup.hooks
        if (step, status) == ("delete_user", "running"):
            aws_calls.on_call = {}  # the last steps, one after the other, read the same lists

    cleanup = Rendezvous(list(lists.values()), size=CLEANUP_CONCURRENCY)
    assert offboard_steps.offboard_user(client, integration, "bob", report)

    assert CLEANUP_CONCURRENCY == 4
    assert cleanup.alone == []  # four cleanup steps were under way together
    assert sorted(cleanup.arrived) == sorted(lists[s] for s in CLEANUP_STEPS[:4])
    assert 2 <= len(cleanup.threads) <= CLEANUP_CONCURRENCY  # and never more than four
    assert gone(iam, "bob")
    assert [s for s, st in reported if st == "done"] == OFFBOARD_STEPS


def test_a_failed_cut_and_a_failed_cleanup_hide_nothing_else(
    core, make_integration, iam, client, aws_calls
):
    """Two cleanup steps failing at once: both are reported and named, every other removal is
    made, the user stays; the next run finishes."""
    furnish_user(iam)
    integration = make_integration()
    aws_calls.fail("DeleteSigningCertificate", "ServiceFailure")
    aws_calls.fail("RemoveUserFromGroup", "ServiceFailure")
    reported: list[tuple[str, str]] = []

    with pytest.raises(StepFailed) as caught:
        offboard_steps.offboard_user(client, integration, "bob", lambda *r: reported.append(r))

    failed = [s for s, st in reported if st == "failed"]
    assert failed == ["signing_certificates", "groups"]
    assert caught.value.step == "signing_certificates"
    message = str(caught.value)
    assert "Delete signing certificates" in message and "Remove from groups" in message
    assert "Run it again" in message
    done = [s for s, st in reported if st == "done"]
    assert done == [s for s in (*CUT_STEPS, *CLEANUP_STEPS) if s not in failed]
    assert not gone(iam, "bob")

    assert offboard_steps.offboard_user(client, integration, "bob", lambda *r: None)
    assert gone(iam, "bob")
